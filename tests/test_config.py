"""Configuration: each option declared once; what the pipelines ask of options comes from the declarations."""

import dataclasses

import pytest

from textrnn.config import (MODEL_OPTIONS, OPTIONS, RESUMABLE, STOP_OPTIONS, TRAIN_OPTIONS, DataOptions, ModelConfig,
                            RunOptions, TrainConfig, check_options, default, model_config, option, options_of,
                            split_options, task_defaults, train_config)
from textrnn.errors import TextRNNError

FIELDS = {f.name: f for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}


def test_every_config_field_a_user_sets_is_a_declared_option():
    from_data = {"vocab_size", "num_classes", "condition_tokens"}
    assert MODEL_OPTIONS == {f.name for f in dataclasses.fields(ModelConfig)} - from_data
    assert TRAIN_OPTIONS == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(OPTIONS) == MODEL_OPTIONS | TRAIN_OPTIONS | {f.name for c in (RunOptions, DataOptions)
                                                            for f in dataclasses.fields(c)}
    assert all(f.metadata["help"] for f in OPTIONS.values())


def test_resumable_and_stop_options_come_from_the_declarations():
    assert RESUMABLE == {name for name in MODEL_OPTIONS | TRAIN_OPTIONS if FIELDS[name].metadata["resumable"]}
    assert STOP_OPTIONS == tuple(f.name for f in options_of(TrainConfig) if f.metadata["stop"])
    assert set(STOP_OPTIONS) == {"epochs", "max_steps", "max_time"}
    assert {"max_steps", "device", "compile"} <= RESUMABLE and not {"hidden", "lr", "seq_len"} & RESUMABLE


def test_option_declares_a_dataclass_field():
    @dataclasses.dataclass
    class Toy:
        width: int = option(3, "How wide.", classify=5, resumable=True)
        shape: str = option("round", "Which shape.", choices=("round", "square"))
        plain: int = 0

    assert Toy().width == 3 and Toy().shape == "round"
    assert [f.name for f in options_of(Toy)] == ["width", "shape"]
    width = options_of(Toy)[0]
    assert width.metadata["defaults"] == {"classify": 5} and width.metadata["resumable"]


def test_task_defaults_are_the_declared_classifier_defaults():
    declared = {n: f.metadata["defaults"]["classify"] for n, f in FIELDS.items()
                if "classify" in f.metadata.get("defaults", {}) and not f.metadata["stop"]}
    assert declared and task_defaults("classify", MODEL_OPTIONS | TRAIN_OPTIONS) == declared
    assert task_defaults("lm", MODEL_OPTIONS | TRAIN_OPTIONS) == {}
    clf = model_config("classify", {}, vocab_size=10)
    assert clf.hidden == FIELDS["hidden"].metadata["defaults"]["classify"] != ModelConfig(vocab_size=10).hidden
    assert model_config("classify", {"hidden": 12}, vocab_size=10).hidden == 12
    assert default("hidden", "classify") == clf.hidden and default("hidden") == FIELDS["hidden"].default
    assert default("tokenizer", "classify") == "word" and default("tokenizer") == "char"


def test_stop_defaults_apply_only_when_no_limit_is_given():
    epochs = FIELDS["epochs"].metadata
    assert TrainConfig().epochs == epochs["unlimited"] and TrainConfig(max_steps=5).epochs is None
    assert train_config("classify", {}).epochs == epochs["defaults"]["classify"]
    limited = train_config("classify", {"max_time": "5m"})
    assert limited.epochs is None and limited.max_time == 300.0
    assert train_config("lm", {}).epochs == epochs["unlimited"]


@pytest.mark.parametrize("options, message", [
    ({"cell": "lstmx"}, "--cell must be one of lstm, gru, rnn, mingru, minlstm, got 'lstmx'"),
    ({"tokenizer": "bytes"}, "--tokenizer must be one of char, word, bpe"),
    ({"device": "tpu"}, "--device must be one of auto"),
    ({"precision": "fp8"}, "--precision must be one of auto"),
    ({"task": "tag"}, "--task must be lm or classify, got 'tag'"),
    ({"max_time": "soon"}, "--max-time: cannot parse 'soon'"),
])
def test_check_options_uses_the_declared_choices_and_parsers(options, message):
    with pytest.raises(TextRNNError, match=message):
        check_options(options)


def test_check_options_ignores_what_it_does_not_declare():
    check_options({"cell": "gru", "max_time": "1h30m", "hidden": 3, "on_progress": None, "whatever": 1})


def test_configs_check_their_declared_choices():
    with pytest.raises(TextRNNError, match="--cell"):
        ModelConfig(vocab_size=10, cell="lstmx")
    with pytest.raises(TextRNNError, match="--precision"):
        TrainConfig(precision="fp8")


def test_split_options_rejects_unknown_names_and_drops_none():
    assert split_options({"hidden": 3, "lr": 0.1, "seq_len": None}) == ({"hidden": 3}, {"lr": 0.1})
    with pytest.raises(TypeError, match="frobs"):
        split_options({"frobs": 1})


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(seq_len=-1), dict(lr=0), dict(val_fraction=1.5),
                                 dict(device="tpu"), dict(max_time="soon")])
def test_train_config_validates(bad):
    with pytest.raises(TextRNNError):
        TrainConfig(**bad)


@pytest.mark.parametrize("name", ["input_dropout", "hidden_dropout", "output_dropout", "weight_drop"])
@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_regularization_probabilities_are_checked(name, value):
    with pytest.raises(TextRNNError, match=f"--{name.replace('_', '-')} must be in \\[0, 1\\), got {value}"):
        ModelConfig(vocab_size=5, **{name: value})


@pytest.mark.parametrize("name", ["ar", "tar"])
def test_activation_regularization_is_checked(name):
    with pytest.raises(TextRNNError, match=f"--{name} must be >= 0, got -1"):
        TrainConfig(**{name: -1})
    assert getattr(TrainConfig(**{name: 2.0}), name) == 2.0


def test_tie_weights_no_longer_needs_embed_equal_to_hidden():
    assert ModelConfig(vocab_size=5, embed=16, hidden=32, tie_weights=True).tie_weights
