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
