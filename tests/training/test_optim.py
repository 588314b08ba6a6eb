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
