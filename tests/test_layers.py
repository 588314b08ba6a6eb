"""AWD-LSTM regularization: locked dropout, weight drop on the fused kernel, per-layer runs."""

import pytest
import torch
from torch.profiler import profile

from conftest import run_in_chunks, tiny_lm as tiny
from textrnn.layers import locked_dropout

REGULARIZED = dict(input_dropout=0.3, hidden_dropout=0.3, output_dropout=0.3, weight_drop=0.5)


def test_locked_mask_is_the_same_at_every_time_step():
    torch.manual_seed(0)
    x = locked_dropout(torch.ones(4, 9, 50), 0.5, training=True)  # (B, T, D)
    assert torch.equal(x, x[:, :1].expand_as(x))  # one mask per sequence, shared by its steps
    assert not torch.equal(x[0], x[1])  # ... and a mask per sequence
    assert set(x.unique().tolist()) == {0.0, 2.0}  # rescaled by 1 / (1 - p)
    assert torch.equal(locked_dropout(torch.ones(4, 9, 50), 0.5, training=False), torch.ones(4, 9, 50))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("option", list(REGULARIZED))
def test_off_at_eval_equals_the_unregularized_model(cell, option):
    plain = tiny(cell, 3)
    model = tiny(cell, 3, **{option: REGULARIZED[option]})
    model.load_state_dict(plain.state_dict())  # same parameter names as without the option
    ids = torch.randint(0, 11, (3, 7))
    expected, expected_state = plain(ids)
    out, state = model(ids)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(state, expected_state)
    torch.testing.assert_close(model(ids)[0], out, rtol=0, atol=0)  # deterministic at eval


@pytest.mark.parametrize("option", list(REGULARIZED))
def test_on_in_training_and_the_same_seed_gives_the_same_masks(option):
    model = tiny("lstm", 3, **{option: REGULARIZED[option]}).train()
    ids = torch.randint(0, 11, (3, 7))

    def seeded(seed):
        torch.manual_seed(seed)
        return model(ids)[0]

    assert torch.equal(seeded(1), seeded(1))
    assert not torch.equal(seeded(1), seeded(2))
    assert not torch.allclose(seeded(1), model.eval()(ids)[0])


def test_weight_drop_masks_only_the_hidden_weights_and_gradients_reach_them():
    model = tiny("lstm", 2, weight_drop=0.5).train()
    rnn = model.encoder.rnn
    raw = {n: p.detach().clone() for n, p in rnn.named_parameters()}
    torch.manual_seed(0)
    weights = model.encoder.stack.weights(training=True)
    for name, w in weights.items():
        if name.startswith("weight_hh"):
            assert 0.2 < (w == 0).float().mean() < 0.8
            kept = w != 0
            torch.testing.assert_close(w[kept], raw[name][kept] * 2)
        else:
            assert w is getattr(rnn, name)
    model(torch.randint(0, 11, (2, 5)))[0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rnn.parameters())
    assert dict(model.encoder.stack.weights(training=False)) == dict(rnn.named_parameters())


def _profiled_ops(model, seq_len):
    ids = torch.randint(0, 11, (2, seq_len))
    with profile() as prof:
        model(ids)
    return [e.name for e in prof.events()]


@pytest.mark.parametrize("options", [dict(weight_drop=0.5), dict(weight_drop=0.5, hidden_dropout=0.3)])
def test_weight_drop_keeps_the_fused_kernel(options):
    model = tiny("lstm", 2, **options).train()
    short, long = _profiled_ops(model, 4), _profiled_ops(model, 64)
    fused = ("aten::lstm", "mkldnn_rnn", "_cudnn_rnn", "_thnn_fused_lstm_cell")
    assert any(any(f in name for f in fused) for name in short)
    assert len(long) == len(short)  # no per-time-step ops


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_per_layer_run_keeps_the_state_layout_and_carries_state(cell):
    model = tiny(cell, 3, hidden_dropout=0.3)
    assert model.encoder.stack.shells  # the layers run one at a time
    ids = torch.randint(0, 11, (2, 12))
    full, final = model(ids)
    h = final[0] if cell == "lstm" else final
    assert h.shape == (3, 2, 8)
    chunked, state = run_in_chunks(model, ids)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(state, final)
