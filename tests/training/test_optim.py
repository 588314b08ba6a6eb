"""The learning-rate schedule."""

import math

import pytest

from textrnn.config import TrainConfig
from textrnn.training.optim import lr_at


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1, max_steps=100)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(0.1)
    assert lr_at(cfg, 9, 0.09) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert lr_at(cfg, 99, 1.0) == pytest.approx(0.1)


def test_discriminative_rates_fall_by_the_decay_per_layer_down_to_the_embedding():
    from textrnn.config import ModelConfig, TrainConfig
    from textrnn.model import LanguageModel
    from textrnn.training.optim import layer_lr_scales, make_optimizer

    model = LanguageModel(ModelConfig(vocab_size=10, layers=2, hidden=8, embed=4))
    scales = layer_lr_scales(model, 2.0)
    assert scales["head.weight"] == 1 and scales["encoder.rnn.weight_hh_l1"] == 0.5
    assert scales["encoder.rnn.bias_ih_l0"] == 0.25 and scales["encoder.embedding.weight"] == 0.125
    assert layer_lr_scales(model, 1.0) == {}
    groups = make_optimizer(model, TrainConfig(), lr_scales=scales).param_groups
    assert sorted({g["lr_scale"] for g in groups}) == [0.125, 0.25, 0.5, 1.0]


def test_gradual_unfreezing_thaws_one_layer_more_every_fraction_from_the_top():
    from textrnn.config import ModelConfig, TrainConfig
    from textrnn.model import LanguageModel
    from textrnn.training.optim import frozen_groups, make_optimizer, thaw_fractions

    model = LanguageModel(ModelConfig(vocab_size=10, layers=2, hidden=8, embed=4))
    thaw = thaw_fractions(model, 0.2)
    assert "head.weight" not in thaw  # the output layer trains from the start
    assert thaw["encoder.rnn.weight_hh_l1"] == pytest.approx(0.2)
    assert thaw["encoder.rnn.bias_ih_l0"] == pytest.approx(0.4)
    assert thaw["encoder.embedding.weight"] == pytest.approx(0.6)
    assert thaw_fractions(model, 0.0) == {}
    optimizer = make_optimizer(model, TrainConfig(), thaw_at=thaw)
    frozen = lambda fraction: {id(p) for g in frozen_groups(optimizer, fraction) for p in g["params"]}  # noqa: E731
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in frozen(0.0)} == set(thaw)
    assert {names[i] for i in frozen(0.3)} == {n for n in thaw if n.endswith("_l0") or "embedding" in n}
    assert {names[i] for i in frozen(0.5)} == {"encoder.embedding.weight"}
    assert frozen(0.61) == set()


def test_a_tied_embedding_is_the_output_layer_and_trains_from_the_start():
    from textrnn.config import ModelConfig
    from textrnn.model import LanguageModel
    from textrnn.training.optim import layer_lr_scales, thaw_fractions

    for embed in (8, 4):  # tied directly; tied through a projection (hidden 8 -> embed 4)
        model = LanguageModel(ModelConfig(vocab_size=10, layers=2, hidden=8, embed=embed, tie_weights=True))
        assert model.head.weight is model.encoder.embedding.weight
        thaw = thaw_fractions(model, 0.2)
        assert "encoder.embedding.weight" not in thaw and thaw["encoder.rnn.weight_hh_l0"] == pytest.approx(0.4)
        assert layer_lr_scales(model, 2.0)["encoder.embedding.weight"] == 1


def test_unfreeze_every_needs_a_pretrained_model_and_a_fraction():
    from textrnn.errors import TextRNNError
    from textrnn.training.optim import check_unfreeze

    with pytest.raises(TextRNNError, match="--init-from"):
        check_unfreeze(TrainConfig(unfreeze_every=0.1), None)
    check_unfreeze(TrainConfig(unfreeze_every=0.1), "english-char")
    with pytest.raises(TextRNNError, match="--unfreeze-every"):
        TrainConfig(unfreeze_every=1.0)
