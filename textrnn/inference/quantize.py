"""int8 weights: stored with one scale per row, and multiplied in int8 where the CPU allows.

``textrnn export --int8`` stores the embedding and the recurrent weight matrices as int8 with a
float scale per row (:func:`quantize_rows`; they load back as float, ``q * scale``). A model
exported so runs its step-by-step products on a CPU in int8 (:class:`Int8Product`): a
classifier's CpuReader its hidden-to-hidden products, a language model's Stepper every product
whose input is a hidden state (hidden side, upper layers' input side, output layer). The hidden
state of an LSTM, GRU or tanh RNN lies in [-1, 1], so it is
put on a fixed grid of 2/127 (7 bits: products of two such codes and an int8 weight cannot
saturate the 16-bit sums of AVX2's int8 instructions) and multiplied with the int8 rows in exact
integer arithmetic, then scaled back: about twice as fast as the float32 product here, and each
row's result depends on that row alone (the grid is fixed, not fitted to the batch).
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor


def quantize_rows(weight: Tensor) -> tuple[Tensor, Tensor]:
    """``weight`` (R, C) as int8 codes (R, C) and a float32 scale per row (R,): ``weight ~ codes * scale``,
    each row's largest magnitude at +-127 (an all-zero row keeps a tiny scale and zero codes)."""
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    return torch.round(weight / scale.unsqueeze(1)).to(torch.int8), scale


class Int8Product:
    """``x @ weight.T (+ bias)`` for a fixed ``weight`` (out, in) and inputs ``x`` in [-1, 1], in
    int8 on a CPU: ``x`` on the grid :data:`STEP` (codes 0..128 around :data:`ZERO`), ``weight`` per
    row (:func:`quantize_rows`). Made by :meth:`make`, which gives None where PyTorch has no int8
    product for this CPU (or it disagrees with the exact arithmetic it stands for)."""

    STEP = 2 / 127  # the input grid: [-1, 1] in 127 steps (7 bits)
    ZERO = 64  # the code of 0

    def __init__(self, packed, bias: Optional[Tensor]):
        self.packed, self.bias = packed, bias

    @classmethod
    def make(cls, weight: Tensor, bias: Optional[Tensor] = None) -> Optional["Int8Product"]:
        if weight.device.type != "cpu":
            return None
        codes, scale = quantize_rows(weight)
        try:
            with warnings.catch_warnings():  # PyTorch marks its quantized tensors as deprecated
                warnings.simplefilter("ignore")
                q = torch._make_per_channel_quantized_tensor(codes, scale.double(), torch.zeros(len(scale),
                                                             dtype=torch.long), 0)
                product = cls(torch.ops.quantized.linear_prepack(q, None), bias)
                x = torch.linspace(-1, 1, 3 * weight.shape[1]).reshape(3, -1)
                got = product(x)
        except (AttributeError, RuntimeError, NotImplementedError):  # no such operators, or not on this CPU
            return None
        exact = torch.round(x / cls.STEP) * cls.STEP @ (codes.float() * scale.unsqueeze(1)).t()
        if bias is not None:
            exact += bias
        return product if torch.allclose(got, exact, rtol=1e-4, atol=1e-4) else None

    def __call__(self, x: Tensor, add: Optional[Tensor] = None) -> Tensor:
        """``x`` (N, in) in [-1, 1] -> (N, out) float32, plus ``add`` (N, out) when given (as
        :class:`textrnn.inference.stepper.Product`)."""
        y = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(x, self.STEP, self.ZERO, self.packed)
        if self.bias is not None:
            y.add_(self.bias)
        return y if add is None else y.add_(add)
