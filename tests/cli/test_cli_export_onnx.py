"""``textrnn export --format onnx`` end to end: the export's sample.py, run where PyTorch (and textrnn)
cannot be imported, writes what ``textrnn generate --greedy`` writes."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("onnx", reason='the onnx extra is not installed: pip install -e ".[onnx]"')
pytest.importorskip("onnxruntime", reason='the onnx extra is not installed: pip install -e ".[onnx]"')

from conftest import FIXTURES, TINY, one_line_error, run_cli  # noqa: E402

BLOCKED = ("torch", "textrnn")


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory):
    """A folder that, first on PYTHONPATH, makes ``import torch`` and ``import textrnn`` fail."""
    root = tmp_path_factory.mktemp("no_torch")
    for name in BLOCKED:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} cannot be imported here')\n")
    return root


def _python(no_torch, *args):
    """Python run with ``no_torch`` first on its path, from that folder (not from the repository)."""
    env = {**os.environ, "PYTHONPATH": str(no_torch), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, cwd=no_torch, timeout=120)


def _export(run, dest):
    res = run_cli(["export", str(run), str(dest), "--format", "onnx"])
    assert res.exit_code == 0, res.output
    return dest


def _sample(export, no_torch, *args):
    """sample.py's stdout (bytes), run from another folder where torch and textrnn cannot be imported."""
    res = _python(no_torch, str(export / "sample.py"), *args)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def _generate(run, *args):
    res = run_cli(["generate", "-c", str(run), "--greedy", *args])
    assert res.exit_code == 0, res.output
    return res.stdout_bytes


@pytest.fixture(scope="module")
def char_export(tmp_path_factory):
    """A tiny char LM trained with ``textrnn train``, and its ONNX export."""
    root = tmp_path_factory.mktemp("onnx_cli")
    options = [a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    res = run_cli(["train", str(FIXTURES / "tiny.txt"), "--out", str(root / "run"), "--max-steps", "20",
                   "--layers", "2", "--device", "cpu", *options])
    assert res.exit_code == 0, res.output
    return root / "run", _export(root / "run", root / "onnx")


def test_torch_and_textrnn_cannot_be_imported_where_sample_py_runs(no_torch):
    for name in BLOCKED:
        res = _python(no_torch, "-c", f"import {name}")
        assert res.returncode != 0 and f"{name} cannot be imported here" in res.stderr.decode()


def test_sample_py_greedy_writes_what_generate_greedy_writes(char_export, no_torch):
    run, export = char_export
    files = ["model.json", "prompt.onnx", "sample.py", "step.onnx", "tokenizer.json"]
    assert sorted(p.name for p in export.iterdir()) == files
    for prompt in ("First Citizen:", ""):
        expected = _generate(run, "--prompt", prompt, "--length", "150")
        assert _sample(export, no_torch, "--prompt", prompt, "--length", "150", "--greedy") == expected


def test_sample_py_sampling(char_export, no_torch):
    _, export = char_export
    greedy = _sample(export, no_torch, "-p", "First", "-n", "80", "--greedy")
    once = _sample(export, no_torch, "-p", "First", "-n", "80", "--temp", "0.8", "--top-p", "0.9", "--seed", "3")
    assert once == _sample(export, no_torch, "-p", "First", "-n", "80", "--temp", "0.8", "--top-p", "0.9",
                           "--seed", "3")
    assert once.startswith(b"First") and once != greedy
    assert _sample(export, no_torch, "-p", "First", "-n", "80", "--top-k", "1", "--seed", "4") == greedy
    assert _sample(export, no_torch, "-p", "First", "-n", "80", "--top-p", "1e-9", "--seed", "5") == greedy
    res = _python(no_torch, str(export / "sample.py"), "--temp", "0")
    assert res.returncode == 2 and b"--temp must be from 0.001 to 1000, got 0.0; use --greedy" in res.stderr
    res = _python(no_torch, str(export / "sample.py"), "--prompt", "\u0416")
    assert res.returncode == 2 and res.stderr.decode().startswith("error: --prompt has characters the model never")


def test_sample_py_takes_the_sampling_options_of_textrnn(char_export, no_torch):
    run, export = char_export
    free = _generate(run, "--prompt", "First", "--length", "150").decode()
    stop = free[30:32]
    for options in (["--stop", stop], ["--ban", "e"], ["--ban", free[20:22], "--stop", "\\n\\n"]):
        expected = _generate(run, "--prompt", "First", "--length", "150", *options)
        assert _sample(export, no_torch, "--prompt", "First", "--length", "150", "--greedy", *options) == expected
    stopped = _generate(run, "--prompt", "First", "--length", "150", "--stop", stop).decode()
    assert stopped == free[: free.index(stop)] + "\n"
    meta = json.loads((export / "model.json").read_text(encoding="utf-8"))
    assert [o["flag"] for o in meta["sampling"]] == ["--length", "--temp", "--top-k", "--top-p", "--greedy", "--stop",
                                                     "--ban", "--num-samples", "--seed"]
    for bad in (["--temp", "inf"], ["--top-p", "0"], ["--stop", ""], ["--seed", "-1"]):  # textrnn's checks, its texts
        res = _python(no_torch, str(export / "sample.py"), *bad)
        cli = run_cli(["generate", "-c", str(run), *bad])
        assert res.returncode == cli.exit_code == 2
        assert res.stderr.decode().strip().splitlines()[-1] == "sample.py: " + cli.stderr.strip()


def _untrained_run(root, kind, text, condition=None, **model):
    """A run directory of an untrained language model (its greedy text is as good a test as a trained one's)."""
    import torch

    from textrnn import checkpoint
    from textrnn.condition import markers, token_ids
    from textrnn.config import ModelConfig
    from textrnn.model import LanguageModel
    from textrnn.runconfig import Condition, RunConfig, TokenizerInfo
    from textrnn.tokenizer import train_tokenizer

    labels = list(markers(condition)) if condition else []
    lines = [f"{m} {text}" for m in markers(labels).values()] or [text]
    tokenizer = train_tokenizer(kind, lines, vocab_size=300)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, hidden=16, embed=8,
                      condition_tokens=token_ids(labels, tokenizer) if labels else None, **model)
    torch.manual_seed(0)
    net = LanguageModel(cfg)
    with torch.no_grad():  # weights large enough for varied text (PyTorch's initial ones repeat one token)
        for p in net.parameters():
            p.normal_(0, 1.0)
    run = RunConfig(task="lm", model=cfg, tokenizer=TokenizerInfo(kind=kind),
                    condition=Condition(column="label", labels=labels) if labels else None)
    checkpoint.write_run_files(root, run, tokenizer)
    checkpoint.save_weights(net, root / checkpoint.WEIGHTS)
    return root


@pytest.mark.parametrize("kind, model, args", [
    ("word", dict(cell="gru", adaptive_softmax=True, adaptive_cutoffs="20,80"), ["-p", "First Citizen"]),
    ("bpe", dict(cell="rnn", layers=2), ["-p", "Citizen"]),
    ("char", dict(layers=2), ["-p", "good", "--condition", "pos"]),
    ("char", dict(cell="minlstm", layers=2), ["-p", "First"]),
    ("word", dict(cell="mingru"), ["-p", "First Citizen"]),
])
def test_sample_py_greedy_decodes_as_generate_for_every_tokenizer(kind, model, args, tmp_path, no_torch):
    text = (FIXTURES / "tiny.txt").read_text(encoding="utf-8")
    run = _untrained_run(tmp_path / "run", kind, text, condition=["neg", "pos"] if "--condition" in args else None,
                         **model)
    export = _export(run, tmp_path / "onnx")
    expected = _generate(run, *args, "--length", "60")
    assert _sample(export, no_torch, *args, "--length", "60", "--greedy") == expected
    meta = json.loads((export / "model.json").read_text(encoding="utf-8"))
    assert meta["tokenizer"] == kind and meta["log_probs"] == model.get("adaptive_softmax", False)


def test_export_errors_are_one_line(char_export, tmp_path, monkeypatch):
    run, _ = char_export
    one_line_error(run_cli(["export", str(tmp_path), str(tmp_path / "a"), "--format", "onnx"]),
                   "not a textrnn checkpoint")
    one_line_error(run_cli(["export", str(run), str(tmp_path / "b"), "--format", "onnx", "--half"]),
                   "--half, --int8-embedding and --int8", "--format checkpoint")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    one_line_error(run_cli(["export", str(run), str(tmp_path / "c"), "--format", "onnx"]),
                   'pip install "textrnn[onnx]"', "onnxruntime")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("options", [["--half"], ["--int8-embedding"], ["--half", "--int8"]])
def test_sample_py_greedy_of_a_smaller_export(options, char_export, no_torch, tmp_path):
    """What sample.py's --greedy promises for a run exported smaller first: the ONNX functions compute in float32
    on the export's weights as loaded (float16 and int8 ones expanded to float32), so --greedy writes what
    ``textrnn generate --greedy`` writes for --half and --int8-embedding exports; for an --int8 export,
    which textrnn runs with int8 products on a CPU, it writes what the same weights give in float32."""
    from textrnn import checkpoint

    run, _ = char_export
    small = tmp_path / "small"
    res = run_cli(["export", str(run), str(small), *options])
    assert res.exit_code == 0, res.output
    export = _export(small, tmp_path / "onnx")
    got = _sample(export, no_torch, "--prompt", "First Citizen:", "--length", "150", "--greedy")
    same = small
    if "--int8" in options:  # the int8 export's weights as a float32 run, which textrnn multiplies in float32
        same = tmp_path / "float"
        shutil.copytree(small, same)
        config = json.loads((same / "config.json").read_text(encoding="utf-8"))
        assert config.pop("recurrent_dtype") == config.pop("embedding_dtype") == "int8"
        (same / "config.json").write_text(json.dumps(config), encoding="utf-8")
        ck = checkpoint.load(small)
        assert ck.model.int8_products and not checkpoint.load(same).model.int8_products
        checkpoint.save_weights(ck.model, same / checkpoint.WEIGHTS)
    assert got == _generate(same, "--prompt", "First Citizen:", "--length", "150")
