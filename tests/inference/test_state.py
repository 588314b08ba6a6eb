"""textrnn.inference.state: the recurrent state's two layouts and its rows."""

import pytest
import torch

from conftest import tiny_lm as tiny
from textrnn.inference import state as states


def test_from_module_state_matches_stepper_layout():
    model = tiny("lstm")
    _, state = model(torch.randint(0, 11, (2, 3)))
    layers = states.from_module(state)
    assert len(layers) == 2 and layers[1][0].shape == (2, 8)
    h, c = states.to_module(layers)
    assert torch.equal(h, state[0]) and torch.equal(c, state[1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rows_are_stacked_selected_and_repeated(cell):
    a, b = states.zeros(cell, 2, 1, 4), states.zeros(cell, 2, 2, 4)
    a = [tuple(t + 1 for t in layer) if isinstance(layer, tuple) else layer + 1 for layer in a]
    both = states.stack([a, b])  # rows: a, b, b
    first = lambda layer: layer[0] if isinstance(layer, tuple) else layer  # noqa: E731
    assert [first(layer).shape for layer in both] == [(3, 4), (3, 4)]
    picked = states.select(both, torch.tensor([2, 0]))
    assert first(picked[0])[0].sum() == 0 and first(picked[0])[1].sum() == 4
    assert torch.equal(first(states.row(both, 0)[1]), first(a[1]))
    assert first(states.repeat(a, 3)[0]).shape == (3, 4)
    assert torch.equal(states.flat(states.unflat(states.flat(states.to_module(both))))[0],
                       states.flat(states.to_module(both))[0])


def test_detach_cuts_the_graph_and_keeps_none():
    h = torch.ones(1, 2, 3, requires_grad=True) * 2
    assert not states.detach((h, h))[0].requires_grad and states.detach(None) is None
