"""minGRU and minLSTM (textrnn.mincells): the window's scan equals the cells' equations step by step."""

import pytest
import torch

from conftest import tiny_lm
from textrnn.config import ModelConfig
from textrnn.errors import TextRNNError
from textrnn.mincells import MinRNN, SequentialScan, coefficients, log_coefficients, log_scan, recurrence
from textrnn.model import Classifier


def reference(cell, layer_weights, x, h0):
    """The paper's equations, one step at a time, in float64: ``layer_weights`` [(W, b)] per layer,
    ``x`` (B, T, E), ``h0`` (layers, B, H) -> the last layer's outputs (B, T, H) and the final h (layers, B, H)."""
    g = lambda v: torch.where(v >= 0, v + 0.5, torch.sigmoid(v))  # noqa: E731
    finals = []
    for k, (w, b) in enumerate(layer_weights):
        h, outs = h0[k].double(), []
        for t in range(x.shape[1]):
            pre = x[:, t].double() @ w.double().t() + b.double()
            if cell == "mingru":
                zk, v = pre.chunk(2, dim=-1)
                z = torch.sigmoid(zk)
                h = (1 - z) * h + z * g(v)
            else:
                fk, ik, v = pre.chunk(3, dim=-1)
                f, i = torch.sigmoid(fk), torch.sigmoid(ik)
                h = f / (f + i) * h + i / (f + i) * g(v)
            outs.append(h)
        x = torch.stack(outs, dim=1)
        finals.append(h)
    return x, torch.stack(finals)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_the_window_equals_the_step_by_step_reference_from_a_carried_state(cell, layers):
    model = tiny_lm(cell, layers)
    rnn = model.encoder.rnn
    ids = torch.randint(0, 11, (3, 40))
    h0 = torch.randn(layers, 3, 8) * 2  # negative values too: the log-space scan's h0 term is split out
    with torch.no_grad():
        x = model.encoder.inputs(ids)
        out, h = rnn(x, h0)
        weights = [(getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"bias_ih_l{k}")) for k in range(layers)]
        want, want_h = reference(cell, weights, x, h0)
    torch.testing.assert_close(out.double(), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(h.double(), want_h, rtol=0, atol=1e-5)


def test_the_log_space_scan_equals_the_sequential_one_with_any_initial_state():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 64, 5, generator=g).double() * 0.98 + 0.01
    b = torch.rand(2, 64, 5, generator=g).double() * 3 + 1e-3
    h0 = torch.tensor([[0.0, -1.5, 2.0, -1e-3, 1.0]]).double().expand(2, -1)
    torch.testing.assert_close(log_scan(a.log(), b.log(), h0), SequentialScan.apply(a, b, h0))
    a32, b32 = a.float(), b.float()
    torch.testing.assert_close(log_scan(a32.log(), b32.log(), h0.float()),
                               SequentialScan.apply(a32, b32, h0.float()), rtol=1e-5, atol=1e-5)


def test_the_sequential_scan_has_the_gradient_of_its_recurrence():
    g = torch.Generator().manual_seed(1)
    inputs = (torch.rand(2, 6, 3, generator=g, dtype=torch.double) + 0.1,
              torch.randn(2, 6, 3, generator=g, dtype=torch.double), torch.randn(2, 3, generator=g, dtype=torch.double))
    assert torch.autograd.gradcheck(SequentialScan.apply, tuple(t.requires_grad_() for t in inputs))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_the_padded_bidirectional_classifier_equals_each_row_alone(cell):
    torch.manual_seed(0)
    model = Classifier(ModelConfig(vocab_size=20, cell=cell, hidden=8, embed=6, layers=2, bidirectional=True,
                                   num_classes=3, dropout=0.0)).eval()
    lengths = torch.tensor([7, 3, 5, 1])
    ids = torch.randint(1, 20, (4, 7))
    for i, n in enumerate(lengths):
        ids[i, n:] = 0
    with torch.no_grad():
        batched = model(ids, lengths)
        single = torch.cat([model(ids[i:i + 1, :n], lengths[i:i + 1]) for i, n in enumerate(lengths)])
        torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
        padded = ids.clone()
        for i, n in enumerate(lengths):
            padded[i, n:] = 13  # the padding's value does not matter
        torch.testing.assert_close(model(padded, lengths), batched)
        out, last = model.encoder.forward_padded(ids, lengths)
    assert (out[1, 3:] == 0).all() and out.shape == (4, 7, 16)
    # the backward direction's last state is its state after the row's first token: its output there
    torch.testing.assert_close(last[:, 8:], out[:, 0, 8:])
    torch.testing.assert_close(last[:, :8], out[torch.arange(4), lengths - 1, :8])


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_weight_drop_is_a_one_line_error_and_locked_dropout_between_layers_trains(cell):
    with pytest.raises(TextRNNError) as e:
        ModelConfig(vocab_size=11, cell=cell, weight_drop=0.2)
    assert "\n" not in str(e.value) and "--weight-drop" in str(e.value) and cell in str(e.value)
    model = tiny_lm(cell, 2, hidden_dropout=0.5, dropout=0.1).train()
    loss = model(torch.randint(0, 11, (2, 5)))[0].logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.rnn.parameters())
    assert isinstance(model.encoder.rnn, MinRNN) and not any("weight_hh" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_the_scan_runs_in_float32_under_autocast(dtype):
    model = tiny_lm("minlstm", 2).train()
    with torch.autocast("cpu", dtype=dtype):
        raw, state = model.encoder(torch.randint(0, 11, (2, 5)))
        loss = model(torch.randint(0, 11, (2, 5)))[0].float().logsumexp(-1).mean()
    loss.backward()
    assert raw.dtype == state.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_the_gpus_log_space_form_equals_the_cpus_sequential_one_with_its_gradients(cell):
    """What a GPU runs (the log-space coefficients and scan) against what a CPU runs, on the CPU: outputs
    and gradients, from a carried state of either sign, pre-activations up to +-12 (saturated gates). The
    log-space form loses digits as the window's log A_t grows (here 4e-5 to 9e-5 at magnitudes 3 to 11;
    the sequential one 1e-6, both against float64): hence 1e-4."""
    g = torch.Generator().manual_seed(4)
    pre = (torch.randn(2, 48, 3 * 6 if cell == "minlstm" else 2 * 6, generator=g) * 4).clamp(-12, 12)
    h0 = torch.randn(2, 6, generator=g)
    results = []
    for scan in ("log", "sequential"):
        x, h = pre.clone().requires_grad_(), h0.clone().requires_grad_()
        if scan == "log":
            out = log_scan(*log_coefficients(cell, x), h)
        else:
            out = SequentialScan.apply(*coefficients(cell, x), h)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out, x.grad, h.grad))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_on_a_gpu_the_scan_equals_the_cpus_also_under_bf16_autocast(cell):
    pre, h0 = torch.randn(3, 64, 3 * 8 if cell == "minlstm" else 16) * 3, torch.randn(3, 8)
    want = recurrence(cell, pre, h0)
    torch.testing.assert_close(recurrence(cell, pre.cuda(), h0.cuda()).cpu(), want, rtol=1e-4, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = recurrence(cell, pre.cuda().bfloat16(), h0.cuda())
    assert got.dtype == torch.float32
