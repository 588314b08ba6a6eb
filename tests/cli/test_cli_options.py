"""train's options are generated from the declarations in textrnn.config: one per declared field,
help with the declared defaults, only given options passed on, choices checked before torch."""

import json
import subprocess
import sys
import types
import typing

import click
import pytest
from click.testing import CliRunner

from textrnn import process
from textrnn.cli import cli
from textrnn.cli.options import DECLARED, flag_name, show
from textrnn.cli.train import train_command
from textrnn.config import MODEL_OPTIONS, OPTIONS, TRAIN_OPTIONS, ModelConfig, TrainConfig
from textrnn.declare import options_of


def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def _help_records() -> dict[str, str]:
    ctx = click.Context(train_command, info_name="train")
    return {p.name: p.get_help_record(ctx)[1] for p in train_command.params if isinstance(p, click.Option)}


def test_every_declared_option_is_a_train_option_and_vice_versa():
    names = {p.name for p in train_command.params if isinstance(p, click.Option)}
    assert names == set(OPTIONS)
    assert {f.name for f in options_of(ModelConfig)} == MODEL_OPTIONS <= names
    assert {f.name for f in options_of(TrainConfig)} == TRAIN_OPTIONS <= names
    for p in train_command.params:
        if isinstance(p, click.Option):
            assert flag_name(p.name) in p.opts and p.default is None


def test_help_shows_the_declared_defaults():
    records = _help_records()
    fields = {f.name: f for cls in DECLARED for f in options_of(cls)}
    for name in ("hidden", "embed", "seq_len", "seed", "lr", "cell", "encoding"):
        f = fields[name]
        shown = f"{show(f.default)} with --no-fit" if f.metadata["fitted"] else show(f.default)
        assert f"default: {shown}" in records[name] or f"; {shown}" in records[name], records[name]
        classify = f.metadata["defaults"].get("classify")
        if classify is not None:
            assert f"classify: {show(classify)}" in records[name]
    for name in ("lr", "warmup_steps"):
        assert f"fine-tuning (--init-from): {show(fields[name].metadata['defaults']['finetune'])}" in records[name]
    for name in ("cell", "device", "precision", "tokenizer"):
        assert " | ".join(fields[name].metadata["choices"]) in records[name]
    epochs = fields["epochs"].metadata
    assert f"default: {show(epochs['unlimited'])}" in records["epochs"]
    assert f"classify: {show(epochs['defaults']['classify'])}" in records["epochs"]
    out = " ".join(run(["train", "--help"]).output.split())  # as printed (wrapped lines joined)
    f = fields["hidden"]
    assert f"--hidden INTEGER {f.metadata['help']} [default: fitted to the corpus and budget; {f.default} " in out


def test_types_follow_the_annotations():
    params = {p.name: p for p in train_command.params if isinstance(p, click.Option)}
    assert params["hidden"].type is click.INT and params["lr"].type is click.FLOAT
    assert params["tie_weights"].is_flag and "--no-tie-weights" in params["tie_weights"].secondary_opts
    assert params["compile"].is_flag and "--no-compile" in params["compile"].secondary_opts
    assert "--unidirectional" in params["bidirectional"].secondary_opts
    assert params["resume"].is_flag and not params["resume"].secondary_opts
    assert isinstance(params["out"].type, click.Path) and "-o" in params["out"].opts
    assert params["max_time"].type is click.STRING  # parsed from text: "5m"


def _value(f, annotation):
    """A valid, non-default value for a declared option, as argv and as the pipeline gets it."""
    kind = annotation
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
    if f.metadata["choices"]:
        return [flag_name(f.name), f.metadata["choices"][-1]], f.metadata["choices"][-1]
    if f.name == "adaptive_cutoffs":  # (the one parsed option that is not a duration)
        return [flag_name(f.name), "2,5"], "2,5"
    if f.metadata["parse"]:
        return [flag_name(f.name), "5m"], "5m"
    if kind is bool:
        return [flag_name(f.name)], True
    if kind is int:
        return [flag_name(f.name), "7"], 7
    if kind is float:
        return [flag_name(f.name), "0.25"], 0.25
    return [flag_name(f.name), "x"], "x"


def _capture(monkeypatch, name):
    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        return types.SimpleNamespace(stopped_by=None, best={}, steps=0, elapsed_s=0.0, path="run")

    monkeypatch.setattr(f"textrnn.api.{name}", fake)
    return seen


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_each_config_option_reaches_the_pipeline(cls, monkeypatch):
    hints = typing.get_type_hints(cls)
    for f in options_of(cls):
        argv, value = _value(f, hints[f.name])
        task = f.metadata["only"] or "lm"
        seen = _capture(monkeypatch, "train_classifier" if task == "classify" else "train")
        res = run(["train", "data.csv" if task == "classify" else "corpus.txt", *argv])
        assert res.exit_code == 0, (f.name, res.output)
        given = {k: v for k, v in seen.items() if k not in ("on_progress", "on_prepare", "on_note")}
        assert given == {f.name: value}, f.name  # only what was given is passed on


def test_only_given_options_are_passed(monkeypatch):
    seen = _capture(monkeypatch, "train")
    assert run(["train", "corpus.txt", "--hidden", "12"]).exit_code == 0
    assert "encoding" not in seen and "resume" not in seen and seen["hidden"] == 12
    assert run(["train", "corpus.txt", "--resume", "--encoding", "utf-8", "--no-compile"]).exit_code == 0
    assert seen["encoding"] == "utf-8" and seen["resume"] is True and seen["compile"] is False


def test_hidden_reaches_the_saved_model_config(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(["train", str(tiny_corpus), "--hidden", "12", "--embed", "8", "--batch-size", "4", "--seq-len", "16",
               "--max-steps", "2", "--out", "run"])
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["hidden"] == 12 and config["model"]["embed"] == 8


def test_cli_configures_the_process_before_a_command(monkeypatch):
    calls = []
    monkeypatch.setattr(process, "configure_process", lambda: calls.append(1))
    res = run(["train", "--cell", "x"])
    assert res.exit_code == 2 and calls == [1]


CHECK = """import sys
from textrnn.cli import main
sys.argv = ["textrnn", "train", *{args!r}]
try:
    main()
except SystemExit as e:
    print(e.code, "torch" in sys.modules)
"""


@pytest.mark.parametrize("args, fragment", [
    (["--cell", "lstmx"], "--cell must be one of lstm, gru, rnn"),
    (["--tokenizer", "bytes"], "--tokenizer must be one of char, word, bpe"),
    (["--device", "tpu"], "--device must be one of auto, cpu, cuda, mps"),
    (["--precision", "fp8"], "--precision must be one of"),
    (["--task", "tag"], "--task must be lm or classify"),
    (["--max-time", "soon"], "--max-time: cannot parse 'soon'"),
    (["--max-len", "9"], "--max-len is for classifiers; add --task classify"),
    (["--bidirectional"], "--bidirectional is for classifiers; add --task classify"),
    (["--label-column", "y"], "--label-column is for classifiers; add --task classify"),
    (["x.csv", "--dataset", "csv", "--task", "classify"], "--dataset trains language models"),
    (["--layers", "two"], "--layers"),
])
def test_option_errors_are_one_line_exit_2_without_torch(args, fragment):
    out = subprocess.run([sys.executable, "-c", CHECK.format(args=args)], capture_output=True, text=True)
    assert out.stdout.split() == ["2", "False"], (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], out.stderr
