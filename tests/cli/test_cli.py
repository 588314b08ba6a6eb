"""End to end through click's CliRunner, and the one-line error contract."""

import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import one_line_error

from textrnn.cli import cli

TINY_ARGS = ["--hidden", "32", "--embed", "16", "--batch-size", "4", "--seq-len", "16",
             "--eval-every", "10", "--warmup-steps", "2"]


def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


@pytest.fixture
def trained(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(["train", str(tiny_corpus), "--max-steps", "20", *TINY_ARGS])
    assert res.exit_code == 0, res.output
    return tmp_path / "checkpoints" / "tiny"


def test_train_then_generate(trained):
    assert (trained / "model.safetensors").exists()
    res = run(["generate", "--prompt", "First", "--length", "60", "--temp", "0.8", "--seed", "1"])
    assert res.exit_code == 0
    assert res.stdout.startswith("First") and len(res.stdout.rstrip("\n")) == 5 + 60
    again = run(["generate", "-c", str(trained), "-p", "First", "-n", "60", "--temperature", "0.8", "--seed", "1"])
    assert again.stdout == res.stdout


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_train_then_generate_with_a_minimal_cell(cell, tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(["train", str(tiny_corpus), "--max-steps", "12", "--cell", cell, "--layers", "2", *TINY_ARGS])
    assert res.exit_code == 0, res.output
    assert f"2x32 {cell.upper()}" in res.output  # (the fit's message names the cell)
    res = run(["generate", "--prompt", "First", "--length", "40", "--seed", "1"])
    assert res.exit_code == 0 and res.stdout.startswith("First") and len(res.stdout.rstrip("\n")) == 5 + 40
    res = run(["train", str(tiny_corpus), "-o", "wd", "--cell", cell, "--weight-drop", "0.2", *TINY_ARGS])
    one_line_error(res, "--weight-drop", cell)


def test_generate_batched_and_top_p(trained):
    res = run(["generate", "--num-samples", "3", "--length", "20", "--top-p", "0.9", "--top-k", "5", "--seed", "2"])
    assert res.exit_code == 0
    assert res.stdout.count("--- sample") == 3


def test_train_resume_via_cli(trained, tiny_corpus):
    res = run(["train", str(tiny_corpus), "--max-steps", "30", "--resume"])
    assert res.exit_code == 0, res.output
    assert "30 steps" in res.output


def test_bad_inputs_exit_2_with_one_line(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1") * 400)
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 10)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    short = tmp_path / "short.txt"
    short.write_text("just a few words\n")
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    cases = [
        (["train", str(tmp_path / "missing.txt")], ["missing.txt", "no such file"]),
        (["train", str(empty_dir)], ["emptydir", "has no files"]),
        (["train", str(tmp_path / "nothing*.txt")], ["no file matches"]),
        (["train", str(empty)], ["empty"]),
        (["train", str(short)], ["shorter than one batch"]),
        (["train", str(binary)], ["binary"]),
        (["train", str(latin)], ["latin.txt", "byte 3", "--encoding"]),
        (["train", str(tiny_corpus), "--tokenizer", "bytes"], ["--tokenizer"]),
        (["train", str(tiny_corpus), "--cell", "lstmx"], ["--cell"]),
        (["train", str(tiny_corpus), "--hidden", "0"], ["--hidden"]),
        (["train", str(tiny_corpus), "--batch-size", "-3"], ["--batch-size"]),
        (["train", str(tiny_corpus), "--max-time", "soon"], ["--max-time", "soon"]),
        (["train", str(tiny_corpus), "--layers", "two"], ["--layers"]),
        (["generate", "--checkpoint", str(tmp_path / "nope")], ["no such checkpoint"]),
        (["generate", "--checkpoint", str(tmp_path)], ["not a textrnn checkpoint"]),
        (["generate", "--top-p", "0"], ["--top-p"]),
        (["generate", "--top-p", "1.5"], ["--top-p"]),
        (["generate", "--temp", "0"], ["--temp", "--greedy"]),
        (["frobnicate"], ["No such command"]),
    ]
    for args, fragments in cases:
        one_line_error(run(args), *fragments)


def test_generate_right_after_installation_samples_the_shipped_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./checkpoints
    res = run(["generate", "--length", "40", "--seed", "1", "--prompt", "The "])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("The ") and len(res.stdout) == len("The ") + 40 + 1
    assert "shipped english-char" in res.stderr
    again = run(["generate", "-c", "english-char", "--length", "40", "--seed", "1", "--prompt", "The "])
    assert again.stdout == res.stdout and "shipped" not in again.stderr  # by name: no note


def test_generate_without_any_model_is_one_error(tmp_path, monkeypatch):
    from textrnn import checkpoint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checkpoint, "SHIPPED", {})
    one_line_error(run(["generate"]), "no trained language model")


def test_generate_errors_that_need_a_model(trained):
    one_line_error(run(["generate", "--top-k", "100000"]), "--top-k")
    one_line_error(run(["generate", "--prompt", "Ж"]), "never saw")


def test_latin1_with_encoding_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café naïve déjà vu\n".encode("latin-1") * 100)
    res = run(["train", str(latin), "--encoding", "latin-1", "--max-steps", "2", *TINY_ARGS])
    assert res.exit_code == 0, res.output


def test_existing_run_is_not_overwritten(trained, tiny_corpus):
    before = (trained / "model.safetensors").read_bytes()
    one_line_error(run(["train", str(tiny_corpus), "--max-steps", "5"]), "--resume", "--force")
    assert (trained / "model.safetensors").read_bytes() == before


def test_python_m_and_help_do_not_import_torch():
    code = "import sys; from textrnn.cli import cli; import textrnn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    res = subprocess.run([sys.executable, "-m", "textrnn", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "generate" in res.stdout


def test_bulk_generation_to_jsonl_text_and_stdout(trained, tmp_path):
    import json

    out = tmp_path / "samples.jsonl"
    res = run(["generate", "--num-samples", "7", "--batch-size", "3", "--length", "15", "--seed", "5",
               "--prompt", "Th", "--temp", "0.7", "--output", str(out)])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["seed"] for r in records] == list(range(5, 12)) and all(r["prompt"] == "Th" for r in records)
    assert records[3]["temperature"] == 0.7 and len(records[3]["text"]) == 15 and res.stdout == ""
    single = run(["generate", "--length", "15", "--seed", "8", "--prompt", "Th", "--temp", "0.7"])
    assert single.stdout == "Th" + records[3]["text"] + "\n"  # sample 4 is seed 8's text
    text = tmp_path / "samples.txt"
    assert run(["generate", "--num-samples", "2", "--length", "15", "--seed", "5", "--prompt", "Th", "--temp", "0.7",
                "-o", str(text)]).exit_code == 0
    assert text.read_text(encoding="utf-8") == "".join(
        f"--- sample {r['sample']} (seed {r['seed']}) ---\nTh{r['text']}\n" for r in records[:2])
    piped = run(["generate", "--num-samples", "2", "--length", "15", "--seed", "5", "--prompt", "Th", "--temp", "0.7",
                 "--format", "jsonl"])
    assert [json.loads(line) for line in piped.stdout.splitlines()] == records[:2]


def test_bulk_generation_errors(trained, tmp_path):
    one_line_error(run(["generate", "--num-samples", "2", "-o", str(tmp_path / "s.csv")]), "s.csv", ".jsonl or .txt")
    one_line_error(run(["generate", "--num-samples", "2", "-o", str(tmp_path / "no" / "s.jsonl")]), "does not exist")
    one_line_error(run(["generate", "--batch-size", "0"]), "--batch-size")
