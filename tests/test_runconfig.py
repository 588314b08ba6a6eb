"""The typed run configuration: config.json written from and read into RunConfig, with its schema
version; old checkpoints (version 0, the shipped ones) still load; a damaged file is one line."""

import json
import shutil

import pytest
import torch

from conftest import TINY, one_line_error, run_cli
from textrnn import checkpoint
from textrnn.api import load
from textrnn.config import TrainConfig, default
from textrnn.errors import TextRNNError
from textrnn.runconfig import SCHEMA, RunConfig
from textrnn.training.lm import train_language_model


def _config(run_dir):
    return json.loads((run_dir / "config.json").read_text(encoding="utf-8"))


def _copy(run_dir, dest, change=None):
    """A copy of the run in ``dest`` (no last/), its config.json's content passed through ``change``."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("last", ".lock"))
    if change is not None:
        (dest / "config.json").write_text(json.dumps(change(_config(run_dir))), encoding="utf-8")
    return dest


def _outputs(ck, text="First Citizen"):
    ids = torch.tensor([ck.tokenizer.encode(text).tolist()])
    with torch.no_grad():
        return ck.model(ids)[0]


@pytest.mark.parametrize("which", ["lm_run", "int_clf", "conditioned_run"])
def test_a_run_writes_its_run_config_and_reads_it_back(which, request):
    run_dir = request.getfixturevalue(which)
    written = _config(run_dir)
    assert written["schema"] == SCHEMA == 1
    run = checkpoint.load(run_dir).run
    assert run.to_dict() == written  # the file is the RunConfig, nothing else
    assert RunConfig.from_dict(run.to_dict()) == run
    assert RunConfig.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_both_pipelines_write_one_schema(lm_run, int_clf, conditioned_run):
    lm, clf, conditioned = (checkpoint.read_run(r) for r in (lm_run, int_clf, conditioned_run))
    assert _config(lm_run).keys() == _config(int_clf).keys()
    assert _config(lm_run)["data"].keys() == _config(int_clf)["data"].keys()
    assert (lm.task, lm.labels, lm.condition) == ("lm", None, None)
    assert (clf.task, clf.labels, clf.condition, clf.data.text_column, clf.data.label_column) == (
        "classify", [0, 1], None, "text", "label")
    assert conditioned.condition.column == "label" and conditioned.condition.labels == ["down", "up"]
    assert lm.tokenizer.kind == "char" and lm.tokenizer.vocab_size == lm.model.vocab_size
    assert lm.data.train_tokens > 0 and lm.data.encoding == "utf-8" and lm.distributed.world_size == 1


def test_a_version_0_config_written_by_hand_gives_the_same_model(lm_run, tmp_path):
    old = _copy(lm_run, tmp_path / "old", lambda c: {k: v for k, v in c.items() if k != "schema"})
    assert "schema" not in _config(old)
    new, loaded = checkpoint.load(lm_run), checkpoint.load(old)
    assert loaded.run == new.run and loaded.run.schema == SCHEMA  # read into the current layout
    assert torch.equal(_outputs(loaded), _outputs(new))


def test_a_version_0_config_evaluates_as_the_run(lm_run, tmp_path, tiny_corpus):
    """Scoring reads seq_len and the encoding from the run configuration, of either version."""
    old = _copy(lm_run, tmp_path / "old", lambda c: {k: v for k, v in c.items() if k != "schema"})
    scores = [load(r).evaluate(tiny_corpus)[0] for r in (lm_run, old)]
    assert scores[0]["loss"] == scores[1]["loss"] and scores[0]["tokens"] == scores[1]["tokens"]


def _version_0_classifier(config):
    """A classifier's config.json as textrnn wrote it before the schema: columns apart, init_from in data,
    no lr_scales, distributed, condition, fit or export fields."""
    data = dict(config["data"])
    columns = {"text": data.pop("text_column"), "label": data.pop("label_column")}
    data["init_from"] = None
    for key in ("condition_column", "dataset", "val_file", "train_bytes", "val_bytes", "train_chars", "val_chars",
                "train_tokens", "val_tokens"):
        data.pop(key)
    return {"textrnn_version": "0.1.0", "task": "classify", "labels": config["labels"], "columns": columns,
            "model": config["model"], "tokenizer": config["tokenizer"], "train": config["train"], "data": data}


def test_a_version_0_classifier_loads_with_its_columns(int_clf, tmp_path):
    old = _copy(int_clf, tmp_path / "old", _version_0_classifier)
    run = checkpoint.read_run(old)
    assert (run.data.text_column, run.data.label_column, run.init_from, run.lr_scales) == ("text", "label", None, {})
    texts = ["a great fine film", "a bad dull film"]
    old_clf, new_clf = load(old, task="classify"), load(int_clf, task="classify")
    assert [lab for lab, _ in old_clf.classify(texts)] == [lab for lab, _ in new_clf.classify(texts)]
    assert run.calibration is None  # (its probabilities at temperature 1: the model's own)
    assert torch.equal(old_clf.model(torch.tensor([[1, 2, 3]]), torch.tensor([3])),
                       new_clf.model(torch.tensor([[1, 2, 3]]), torch.tensor([3])))


def test_a_version_0_classifier_names_the_model_it_started_from():
    config = {"task": "classify", "labels": ["a", "b"], "data": {"init_from": "english-char", "files": ["t.csv"]},
              "model": {"vocab_size": 9, "num_classes": 2}, "columns": {"text": "review", "label": "stars"}}
    run = RunConfig.from_dict(config)
    assert run.init_from.run == "english-char" and run.init_from.path is None
    assert run.data.text_column == "review" and run.data.files == ["t.csv"]


def test_a_missing_field_takes_the_default_the_code_uses():
    run = RunConfig.from_dict({"model": {"vocab_size": 9}})  # version 0, no task, no train section
    assert run.task == "lm" and run.train == TrainConfig() and run.train.max_len == default("max_len") == 512
    assert run.tokenizer.kind is None and run.data.encoding is None and run.distributed.world_size == 1
    clf = RunConfig.from_dict({"task": "classify", "labels": [0, 1], "model": {"vocab_size": 9, "num_classes": 2},
                               "train": {"seq_len": 64}})
    assert clf.train.max_len == 512 and clf.train.seq_len == 64


def test_unknown_keys_are_ignored(lm_run):
    config = _config(lm_run)
    run = RunConfig.from_dict({**config, "future": 1, "model": {**config["model"], "future": 2},
                               "data": {**config["data"], "future": 3}})
    assert run == RunConfig.from_dict(config) and "future" not in json.dumps(run.to_dict())


def test_the_shipped_checkpoints_load_from_their_version_0_files():
    for name in ("english-char", "sst2"):
        assert "schema" not in _config(checkpoint.SHIPPED[name])  # (not rewritten)
    lm = checkpoint.load("english-char")
    assert lm.task == "lm" and lm.run.model.layers == 2 and lm.run.train.seq_len == 256
    assert lm.run.data.encoding == "utf-8" and lm.run.weights_dtype == "float16" and lm.run.fit["chose"]
    assert lm.run.label_aliases is None and lm.run.calibration is None
    clf = checkpoint.load("sst2")
    assert clf.task == "classify" and clf.run.labels == ["negative", "positive"] and clf.run.train.max_len == 512
    assert clf.run.label_aliases == {"0": "negative", "1": "positive"}  # the labels it was trained on
    assert (clf.run.data.text_column, clf.run.data.label_column) == ("sentence", "label")
    assert clf.run.embedding_dtype == clf.run.recurrent_dtype == "int8" and clf.model.int8_products
    assert RunConfig.from_dict(clf.run.to_dict()) == clf.run
    assert load("sst2", task="classify").classify("a great , moving film")[0] == "positive"


def test_a_config_without_label_aliases_or_calibration_reads_as_before(int_clf, tmp_path):
    """Files written before the two fields (of either schema) read as they did: labels as they are, no aliases,
    temperature 1; a user's run keeps its own label names and has no aliases."""
    for change in (_version_0_classifier, lambda c: {k: v for k, v in c.items()
                                                     if k not in ("label_aliases", "calibration")}):
        run = checkpoint.read_run(_copy(int_clf, tmp_path / str(len(list(tmp_path.iterdir()))), change))
        assert run.labels == [0, 1] and run.label_aliases is None and run.calibration is None
    assert checkpoint.read_run(int_clf).label_aliases is None


def test_label_aliases_and_calibration_round_trip():
    from textrnn.runconfig import Calibration

    config = {"task": "classify", "labels": ["neg", "pos"], "label_aliases": {"0": "neg", "1": "pos"},
              "calibration": {"temperature": 1.5, "fitted_on": "dev.tsv", "rows": 10},
              "model": {"vocab_size": 9, "num_classes": 2}}
    run = RunConfig.from_dict(config)
    assert run.label_aliases == {"0": "neg", "1": "pos"}
    assert run.calibration == Calibration(1.5, "dev.tsv", 10)
    assert RunConfig.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def _drop(section, key):
    return lambda c: {**c, section: {k: v for k, v in c[section].items() if k != key}}


DAMAGE = {
    "not an object": (lambda c: [c], "holds list, not a JSON object"),
    "schema": (lambda c: {**c, "schema": "one"}, "schema 'one' is not a version number"),
    "task": (lambda c: {**c, "task": "translate"}, "unknown task 'translate'"),
    "no model": (lambda c: {k: v for k, v in c.items() if k != "model"}, "the model section is missing"),
    "no vocab_size": (_drop("model", "vocab_size"), "model has no vocab_size"),
    "hidden 0": (lambda c: {**c, "model": {**c["model"], "hidden": 0}},
                 "the model section is invalid (--hidden must be positive, got 0)"),
    "train a list": (lambda c: {**c, "train": [1]}, "train is not a JSON object"),
    "seq_len a string": (lambda c: {**c, "train": {**c["train"], "seq_len": "x"}},
                         "train.seq_len is 'x', not a whole number"),
    "tokenizer a string": (lambda c: {**c, "tokenizer": "char"}, "tokenizer is not a JSON object"),
    "tokenizer kind": (lambda c: {**c, "tokenizer": {**c["tokenizer"], "kind": "morse"}},
                       "unknown tokenizer kind 'morse'"),
    "encoding a number": (lambda c: {**c, "data": {**c["data"], "encoding": 8}},
                          "data.encoding is 8, not a string or null"),
    "condition labels": (lambda c: {**c, "condition": {"column": "l", "labels": "ab"}},
                         "condition.labels is 'ab', not a list of strings"),
    "condition without labels": (lambda c: {**c, "condition": {"column": "l"}}, "condition has no labels"),
    "world size": (lambda c: {**c, "distributed": {"world_size": "2"}},
                   "distributed.world_size is '2', not a whole number"),
    "labels of a language model": (lambda c: {**c, "labels": "ab"}, "labels is 'ab', not a list or null"),
    "dtype": (lambda c: {**c, "weights_dtype": "int4"}, "unknown weights_dtype 'int4'"),
    "aliases a list": (lambda c: {**c, "label_aliases": ["0"]}, "label_aliases is ['0'], not a JSON object or null"),
    "temperature a string": (lambda c: {**c, "calibration": {"temperature": "hot"}},
                             "calibration.temperature is 'hot', not a number"),
    "temperature 0": (lambda c: {**c, "calibration": {"temperature": 0}},
                      "calibration.temperature is 0, not a positive number"),
    "no temperature": (lambda c: {**c, "calibration": {"rows": 3}}, "calibration has no temperature"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_a_damaged_config_is_one_line_naming_the_file_and_the_field(name, lm_run, tmp_path):
    damage, what = DAMAGE[name]
    run = _copy(lm_run, tmp_path / "run", damage)
    with pytest.raises(TextRNNError) as e:
        checkpoint.load(run)
    assert str(e.value) == f"{run / 'config.json'}: {what}; the checkpoint is damaged"


@pytest.mark.parametrize("aliases, what", [({"2": 5}, "label_aliases maps '2' to 5, which is not one of the labels"),
                                           ({"1": 0}, "label_aliases maps '1' to 0, but '1' is another label")])
def test_label_aliases_of_no_label_or_naming_another_label_are_damaged(aliases, what, int_clf, tmp_path):
    run = _copy(int_clf, tmp_path / "run", lambda c: {**c, "label_aliases": aliases})
    with pytest.raises(TextRNNError) as e:
        checkpoint.load(run)
    assert str(e.value) == f"{run / 'config.json'}: {what}; the checkpoint is damaged"


def test_a_classifier_whose_labels_do_not_match_its_model_is_damaged(int_clf, tmp_path):
    for labels in ([0, 1, 2], None):
        run = _copy(int_clf, tmp_path / str(labels), lambda c: {**c, "labels": labels})
        with pytest.raises(TextRNNError, match="the number of labels does not match the model; the checkpoint "
                                               "is damaged"):
            checkpoint.load(run)


@pytest.mark.parametrize("command", [["generate", "--length", "3"], ["evaluate", "FILE"]])
def test_the_commands_say_a_config_is_damaged_in_one_line(command, lm_run, tmp_path, tiny_corpus):
    run = _copy(lm_run, tmp_path / "run", lambda c: {**c, "train": {**c["train"], "seq_len": "x"}})
    args = [str(tiny_corpus) if a == "FILE" else a for a in command]
    one_line_error(run_cli([*args, "-c", str(run)]), f"{run / 'config.json'}: train.seq_len", "damaged")


def test_a_config_of_a_newer_schema_says_to_upgrade(lm_run, tmp_path):
    run = _copy(lm_run, tmp_path / "run", lambda c: {**c, "schema": SCHEMA + 1})
    with pytest.raises(TextRNNError, match=rf"config.json: written by a newer textrnn \(schema {SCHEMA + 1}; this "
                                           rf"one reads up to {SCHEMA}\); upgrade textrnn to load it"):
        checkpoint.load(run)


def test_resuming_a_version_0_run_without_a_newer_option_accepts_its_default(tmp_path, tiny_corpus):
    """A run trained before an option existed has no value for it in config.json: it ran with the default,
    so resuming with the option given at that default is no contradiction."""
    out = tmp_path / "run"
    opts = {k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")}
    train_language_model([tiny_corpus], out=out, max_steps=2, eval_every=2, save_every=2, fit=False, **opts)
    config = _config(out)
    del config["schema"], config["train"]["ar"], config["model"]["output_dropout"]
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    result = train_language_model([tiny_corpus], out=out, resume=True, max_steps=4, ar=0.0, output_dropout=0.0,
                                  eval_every=2, save_every=2, fit=False, **opts)
    assert result.steps == 4
