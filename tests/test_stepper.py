"""The one-token sampler cell equals the model's forward pass."""

import pytest
import torch

from conftest import tiny_lm as tiny
from textrnn.stepper import Stepper


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 3])
def test_stepper_equals_forward(cell, layers):
    model = tiny(cell, layers)
    ids = torch.randint(0, 11, (3, 7))
    full, _ = model(ids)
    with torch.inference_mode():
        step = model.stepper()
        state = step.initial_state(3)
        for t in range(7):
            logits, state = step(ids[:, t], state)
            torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", [
    dict(embed=6, tie_weights=True),  # hidden 8: a projection before the tied head
    dict(embed=8, tie_weights=True),
    dict(hidden_dropout=0.3, weight_drop=0.5, input_dropout=0.2, output_dropout=0.2),  # per-layer modules
    dict(embed=6, tie_weights=True, hidden_dropout=0.3, weight_drop=0.5),
])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepper_equals_forward_with_the_regularization_options(cell, options):
    model = tiny(cell, 3, **options)
    ids = torch.randint(0, 11, (3, 7))
    full, _ = model(ids)
    with torch.inference_mode():
        step = model.stepper(banned=[4])
        state = step.initial_state(3)
        for t in range(7):
            logits, state = step(ids[:, t], state)
            expected = full[:, t].clone()
            expected[:, 4] = float("-inf")
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(model.head.bias).all()  # banning does not touch the model


def test_from_module_state_matches_stepper_layout():
    model = tiny("lstm")
    _, state = model(torch.randint(0, 11, (2, 3)))
    layers = Stepper.from_module_state(state)
    assert len(layers) == 2 and layers[1][0].shape == (2, 8)
