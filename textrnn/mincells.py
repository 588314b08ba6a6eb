"""The minimal recurrent cells minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?").

Their gates read only the input, never the hidden state::

    minGRU:  z = sigmoid(W_z x),  h~ = g(W_h x),   h_t = (1 - z) * h_{t-1} + z * h~
    minLSTM: f = sigmoid(W_f x),  i = sigmoid(W_i x),  h~ = g(W_h x),
             h_t = f / (f + i) * h_{t-1} + i / (f + i) * h~

with the paper's positive ``g(x) = x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below. So a window is one
matrix product (every gate of every step at once) and the linear recurrence ``h_t = a_t * h_{t-1} + b_t``
(``a`` in (0, 1), ``b > 0``), solved as a scan (:func:`recurrence`); sampling is one cheap step
(:func:`step`) with a state of one tensor ``h`` per layer. The weights are named as ``nn.GRU``'s input
side (``weight_ih_l{k}``, ``bias_ih_l{k}``, ``_reverse`` for a second direction), rows in the order
z, h~ (minGRU) or f, i, h~ (minLSTM); there are no hidden-to-hidden weights.

The scan: on a CPU a sequential loop (:class:`SequentialScan`, with its own backward, which is the
same loop run backwards), exact to float32 rounding; measured on one thread (B 32, H 512, forward
and backward with the gates): 41 ms for 64 steps and 214 ms for 256, against 206 and 917 ms for the
log-space scan (whose error grows with the window: relative 6e-6 at 64 steps, 2.6e-5 at 256) and
about 200 and 930 ms for a chunked log-space one (16 or 32 steps per chunk). On other devices
the log-space scan (:func:`log_scan`: two cumulative ops, not T kernel launches). Under
``torch.onnx.export`` a TorchScript loop (an ONNX Loop, any length). The scan runs in float32,
also under autocast.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MIN_CELLS  # noqa: F401  (declared with the cells; here for the model's users)
from .layers import locked_dropout

GATES = {"mingru": 2, "minlstm": 3}  # blocks of H rows in weight_ih: z h~ | f i h~


def g(x: Tensor) -> Tensor:
    """The paper's positive activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """``log(g(x))``, without an overflow or a log of 0 on either side."""
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


def coefficients(cell: str, pre: Tensor) -> tuple[Tensor, Tensor]:
    """The pre-activations ``pre`` (..., G*H) of one layer -> ``a``, ``b`` (..., H) of ``h_t = a h_{t-1} + b``."""
    if cell == "mingru":
        k, v = pre.chunk(2, dim=-1)  # (..., H) each
        z = torch.sigmoid(k)
        return torch.sigmoid(-k), z * g(v)  # (1 - z, exactly), z h~
    f, i, v = pre.chunk(3, dim=-1)  # (..., H) each
    diff = F.softplus(-f) - F.softplus(-i)  # log i - log f: f / (f + i) = sigmoid(-diff), without dividing
    return torch.sigmoid(-diff), torch.sigmoid(diff) * g(v)  # two tiny gates (onnxruntime clamps sigmoid at +-18)


def log_coefficients(cell: str, pre: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`coefficients` as logarithms: ``log a``, ``log b`` (..., H) (the paper's log-space forms)."""
    if cell == "mingru":
        k, v = pre.chunk(2, dim=-1)
        return -F.softplus(k), -F.softplus(-k) + log_g(v)
    f, i, v = pre.chunk(3, dim=-1)
    diff = F.softplus(-f) - F.softplus(-i)  # log i - log f
    return -F.softplus(diff), -F.softplus(-diff) + log_g(v)  # log f/(f+i), log i/(f+i) + log h~


def step(cell: str, pre: Tensor, h: Tensor) -> Tensor:
    """One step of one layer: ``pre`` (B, G*H) the input's pre-activations (with the bias), ``h`` (B, H) -> the
    new h (B, H)."""
    a, b = coefficients(cell, pre.float())
    return torch.addcmul(b, a, h.float())  # (B, H)


class SequentialScan(torch.autograd.Function):
    """``h_t = a_t h_{t-1} + b_t`` step by step: ``a``, ``b`` (B, T, H), ``h0`` (B, H) -> every h (B, T, H).
    The backward is the same recurrence backwards: ``dh_t = dy_t + a_{t+1} dh_{t+1}``, then
    ``db = dh``, ``da_t = dh_t h_{t-1}``, ``dh0 = a_1 dh_1``."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        a_t, b_t = a.transpose(0, 1).contiguous(), b.transpose(0, 1).contiguous()  # (T, B, H): each step contiguous
        out = torch.empty_like(b_t)  # (T, B, H)
        h = h0
        for t in range(a_t.shape[0]):
            h = torch.addcmul(b_t[t], a_t[t], h, out=out[t])  # (B, H)
        ctx.save_for_backward(a_t, out, h0)
        return out.transpose(0, 1)  # (B, T, H)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a_t, out, h0 = ctx.saved_tensors
        dh = grad.transpose(0, 1).contiguous()  # (T, B, H): becomes dL/dh_t, which is db
        for t in range(dh.shape[0] - 2, -1, -1):
            dh[t].addcmul_(a_t[t + 1], dh[t + 1])
        da = dh * torch.cat([h0[None], out[:-1]])  # (T, B, H): dh_t h_{t-1}
        return da.transpose(0, 1), dh.transpose(0, 1), dh[0] * a_t[0]


def log_scan(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` in log space (``b > 0``): ``log_a``, ``log_b`` (B, T, H), ``h0`` (B, H) of any
    sign -> every h (B, T, H). The h0 term is split out, so a zero or negative carried state is exact:
    ``h_t = A_t h0 + A_t sum_{s<=t} b_s / A_s`` with ``A_t = prod_{s<=t} a_s``."""
    log_A = log_a.cumsum(dim=1)  # (B, T, H)
    return log_A.exp() * h0[:, None] + (log_A + torch.logcumsumexp(log_b - log_A, dim=1)).exp()


@functools.lru_cache(maxsize=None)
def _scripted_scan():
    """The scan as TorchScript (made when first exported): ``torch.onnx.export`` writes its loop as an ONNX Loop
    over any length, where tracing :class:`SequentialScan` would fix the traced length."""

    def loop(a: Tensor, b: Tensor, h: Tensor) -> Tensor:
        outs = []
        for t in range(a.shape[1]):
            h = a[:, t] * h + b[:, t]
            outs.append(h)
        return torch.stack(outs, 1)

    return torch.jit.script(loop)


def recurrence(cell: str, pre: Tensor, h0: Tensor) -> Tensor:
    """Every step of one layer over a window: ``pre`` (B, T, G*H) the inputs' pre-activations, ``h0`` (B, H)
    -> the outputs (B, T, H), in float32 (autocast off: see the module's text for which scan runs where)."""
    with torch.autocast(pre.device.type, enabled=False):
        pre, h0 = pre.float(), h0.float()
        if torch.jit.is_tracing():  # (the ONNX export)
            return _scripted_scan()(*coefficients(cell, pre), h0)
        if pre.device.type == "cpu":
            return SequentialScan.apply(*coefficients(cell, pre), h0)
        return log_scan(*log_coefficients(cell, pre), h0)


def reverse(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Each row of ``x`` (B, T, ...) read backwards within its length (``lengths`` (B,), None: T); positions
    past a length hold the row's first step (what they hold is never read: the scan is causal)."""
    if lengths is None:
        return x.flip(1)
    steps = torch.arange(x.shape[1], device=x.device)
    index = (lengths.to(x.device)[:, None] - 1 - steps).clamp_min(0)  # (B, T)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class MinRNN(nn.Module):
    """A stack of minGRU or minLSTM layers, called as ``nn.GRU`` is (batch first): ``x`` (B, T, E), the state
    ``h`` (layers*D, B, H) or None (zeros) -> the outputs (B, T, D*H) and the final ``h`` (layers*D, B, H).
    Between layers: ``dropout`` (as ``nn.GRU``'s) and locked dropout ``hidden_dropout`` in training.
    ``lengths`` (B,): padded rows' lengths (a classifier's batches): each direction reads a row within its
    length (the backward one from its last token), and the final state is the state there."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, hidden_dropout: float = 0.0):
        super().__init__()
        if cell not in GATES:
            raise ValueError(f"not a minimal cell: {cell!r}")
        self.cell, self.input_size, self.hidden_size, self.num_layers = cell, input_size, hidden_size, num_layers
        self.dropout, self.hidden_dropout, self.bidirectional = dropout, hidden_dropout, bidirectional
        directions = 2 if bidirectional else 1
        for k in range(num_layers):
            width = input_size if k == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                self.register_parameter(f"weight_ih_l{k}{suffix}",
                                        nn.Parameter(torch.empty(GATES[cell] * hidden_size, width)))
                self.register_parameter(f"bias_ih_l{k}{suffix}", nn.Parameter(torch.empty(GATES[cell] * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in +-1/sqrt(H), as PyTorch's recurrent layers."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.cell}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
                + (", bidirectional=True" if self.bidirectional else ""))

    def forward(self, x: Tensor, state: Optional[Tensor] = None,
                lengths: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        B, H = x.shape[0], self.hidden_size
        directions = 2 if self.bidirectional else 1
        finals = []
        for k in range(self.num_layers):
            if k > 0:
                x = locked_dropout(F.dropout(x, self.dropout, self.training), self.hidden_dropout, self.training)
            outs = []
            for d, suffix in enumerate(["", "_reverse"][:directions]):
                h0 = state[k * directions + d] if state is not None else x.new_zeros(B, H)  # (B, H)
                inputs = x if d == 0 else reverse(x, lengths)  # (B, T, in)
                pre = F.linear(inputs, getattr(self, f"weight_ih_l{k}{suffix}"),
                               getattr(self, f"bias_ih_l{k}{suffix}"))  # (B, T, G*H)
                out = recurrence(self.cell, pre, h0).to(x.dtype)  # (B, T, H)
                finals.append(out[:, -1] if lengths is None else
                              out.gather(1, (lengths.to(x.device) - 1).view(B, 1, 1).expand(B, 1, H))[:, 0])  # (B, H)
                outs.append(out if d == 0 else reverse(out, lengths))
            x = torch.cat(outs, dim=-1) if directions > 1 else outs[0]  # (B, T, D*H)
        return x, torch.stack(finals)  # (B, T, D*H), (layers*D, B, H)
