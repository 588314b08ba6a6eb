"""The one-token sampler cell: a :class:`~textrnn.model.LanguageModel` evaluated one step
at a time, as fast as PyTorch allows on a CPU (tested equal to the model's ``forward``), and
:func:`prefill`, a prompt run through the network at once into the state the cell steps from."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .. import mincells
from ..config import MIN_CELLS
from ..model import LanguageModel
from . import state as states
from .quantize import Int8Product
from .state import LayerState, State


class Stepper:
    """Evaluates a :class:`LanguageModel` one token per call, as fast as PyTorch allows.

    ``nn.LSTM`` on a one-token input spends most of its time setting up; this does the
    cell arithmetic directly with weights prepared once (:class:`Product`), and folds the embedding and the
    first layer's input projection into one ``(V, gates*H)`` table, so a step is one
    row lookup plus one matrix-vector product per layer and one for the head (with an adaptive
    softmax: ``asm.log_prob``, log-probabilities). A conditioned model's label vector enters
    through a second, small table (its product by the first layer's input weights, one row per
    label), so each row of a batch may have its own label. The ``banned`` tokens get -inf. The result
    equals ``LanguageModel.forward`` (tested); for a model exported with ``--int8``
    (``model.int8_products``) the products run in int8 on a CPU (:class:`~textrnn.inference.quantize.Int8Product`:
    1.5-1.8x faster steps, logits within a few hundredths). A minGRU / minLSTM layer has no hidden-side
    product (its gates read only the input): a step is its input-side product and :func:`~textrnn.mincells.step`;
    its hidden state is positive and unbounded, so its products stay float32 (the int8 ones need inputs in
    [-1, 1]). Use under ``torch.inference_mode()``.
    """

    def __init__(self, model: LanguageModel, banned: Optional[Sequence[int]] = None):
        cfg = model.cfg
        self.cell, self.layers, self.hidden = cfg.cell, cfg.layers, cfg.hidden
        rnn = model.encoder.rnn
        with torch.no_grad():
            w_ih = [getattr(rnn, f"weight_ih_l{k}").detach() for k in range(cfg.layers)]
            b_ih = [getattr(rnn, f"bias_ih_l{k}").detach() for k in range(cfg.layers)]
            emb = model.encoder.embedding.weight.detach()
            # input side of layer 0 for every token: (V, G*H)
            self.table = torch.addmm(b_ih[0], emb, w_ih[0].t())
            self.label_table: Optional[Tensor] = None  # a conditioned model's: (labels + 1, G*H)
            if model.encoder.label_embedding is not None:
                self.label_table = model.encoder.label_embedding.weight.detach() @ w_ih[0].t()
            # every product below reads a hidden state, in [-1, 1] (but a minimal cell's)
            self.int8 = model.int8_products and cfg.cell not in MIN_CELLS
            if cfg.cell in MIN_CELLS:  # no hidden side: the gates read only the input
                self.hidden_side = [None] * cfg.layers
                self.input_side = [None] + [self._product(w, b) for w, b in zip(w_ih[1:], b_ih[1:])]
            else:
                self._prepare_hidden_side(rnn, w_ih, b_ih)
            self.asm, self.banned = model.asm, list(banned or [])
            if model.asm is None:
                self._fold_head(model, self.banned)

    def _prepare_hidden_side(self, rnn, w_ih: list[Tensor], b_ih: list[Tensor]) -> None:
        w_hh = [getattr(rnn, f"weight_hh_l{k}").detach() for k in range(self.layers)]
        b_hh = [getattr(rnn, f"bias_hh_l{k}").detach() for k in range(self.layers)]
        if self.cell == "gru":  # the hidden bias sits inside the reset gate for n
            self.hidden_side = [self._product(w, b) for w, b in zip(w_hh, b_hh)]
            self.input_side = [None] + [self._product(w, b) for w, b in zip(w_ih[1:], b_ih[1:])]
        else:  # LSTM / RNN: both biases simply add
            self.table = self.table + b_hh[0]
            self.hidden_side = [self._product(w) for w in w_hh]
            self.input_side = [None] + [self._product(w, bi + bh) for w, bi, bh in zip(w_ih[1:], b_ih[1:], b_hh[1:])]

    def _fold_head(self, model: LanguageModel, banned: list[int]) -> None:
        head_w, head_b = model.head.weight.detach(), model.head.bias.detach()  # (V, E or H), (V,)
        if model.proj is not None:  # fold the projection (H -> E) into the head: one product per step
            head_b = torch.addmv(head_b, head_w, model.proj.bias.detach())
            head_w = head_w @ model.proj.weight.detach()  # (V, H)
        if banned:
            head_b = head_b.clone()
            head_b[banned] = float("-inf")
        self.head = self._product(head_w, head_b)

    def _product(self, weight: Tensor, bias: Optional[Tensor] = None) -> Union[Product, Int8Product]:
        """The product by ``weight`` (an input in [-1, 1]): in int8 for a model exported with ``--int8``
        where the CPU has int8 products (:mod:`textrnn.inference.quantize`), else :class:`Product`."""
        return (self.int8 and Int8Product.make(weight, bias)) or Product(weight, bias)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """The zero state of ``batch`` rows."""
        return states.zeros(self.cell, self.layers, batch, self.hidden, device)

    def __call__(self, ids: Tensor, state: State, labels: Optional[Tensor] = None) -> tuple[Tensor, State]:
        """``ids`` (B,) -> logits (B, V) and the next state; ``labels`` (B,): a conditioned model's label of
        each row (1 + its index; 0 or None: none)."""
        x_proj = self.table.index_select(0, ids)  # (B, G*H)
        if self.label_table is not None:
            labels = torch.zeros_like(ids) if labels is None else labels
            x_proj = x_proj + self.label_table.index_select(0, labels)  # (B, G*H)
        new_state = []
        x = None
        for k in range(self.layers):
            if k > 0:
                x_proj = self.input_side[k](x)  # (B, G*H)
            layer_state, x = cell_step(self.cell, x_proj, state[k], self.hidden_side[k])
            new_state.append(layer_state)
        if self.asm is None:
            return self.head(x), new_state  # (B, V)
        logits = self.asm.log_prob(x.float())  # (B, V): adaptive softmax log-probabilities
        if self.banned:
            logits[:, self.banned] = float("-inf")
        return logits, new_state


def prefill(model: LanguageModel, ids: Union[Tensor, Sequence[Sequence[int]]], state: Optional[State] = None,
            labels: Optional[Tensor] = None) -> Optional[State]:
    """The :class:`Stepper` state after running ``ids`` (B, T) through the recurrent layers at once (no output
    layer), from ``state`` (None: zeros); ``labels`` (B,): a conditioned model's label of each row for every
    token (None: as the markers in ``ids`` say). ``state`` itself when T is 0. Use under ``torch.inference_mode()``."""
    device = next(model.parameters()).device
    ids = torch.as_tensor(ids, dtype=torch.long, device=device)  # (B, T)
    if ids.numel() == 0:
        return state
    per_token = None if labels is None else labels[:, None].expand(-1, ids.shape[1])  # (B, T)
    _, module_state = model.encoder(ids, None if state is None else states.to_module(state), labels=per_token)
    return states.from_module(module_state)


def cell_step(cell: str, x_proj: Tensor, state: LayerState,
              hidden_side: Optional[Product]) -> tuple[LayerState, Tensor]:
    """One step of one recurrent layer (PyTorch's gate order and equations). ``x_proj`` (B, G*H):
    the input times ``weight_ih`` plus ``bias_ih``, and for an LSTM or RNN plus ``bias_hh`` too
    (both biases simply add); ``hidden_side``: the product by ``weight_hh``, with ``bias_hh`` for a
    GRU only (its hidden bias sits inside the reset gate); None for a minGRU / minLSTM (no hidden side).
    ``state``: the layer's ``(h, c)`` (LSTM) or ``h`` (B, H). Returns the layer's new state and its
    output ``h`` (B, H)."""
    if cell in MIN_CELLS:
        h = mincells.step(cell, x_proj, state)  # (B, H)
        return h, h
    if cell == "lstm":
        h, c = lstm_update(hidden_side(state[0], x_proj), state[1])  # gates (B, 4H): i f g o
        return (h, c), h
    if cell == "gru":
        h = gru_update(x_proj, hidden_side(state), state)  # (B, 3H): r z n
        return h, h
    h = torch.tanh(hidden_side(state, x_proj))
    return h, h


class Product:
    """``x @ weight.T + bias`` (+ ``add``) for a fixed ``weight`` (out, in): the Stepper's matrix
    products, as fast as the device allows.

    On a CPU in float32 the weight is packed once into oneDNN's blocked layout and each product of
    two or more rows runs on it: ``addmm`` (MKL) packs its operand again on every call, which for
    the few rows of a batched sampling step costs more than the arithmetic (measured on a 2-core
    AMD EPYC, english-char's whole step: 3.5-5.6 -> 1.5-2.7 ms for 8 rows, 7.7-10.8 -> 5.2-7.9 ms
    for 64; one row stays on MKL's matrix-vector product, as fast). Elsewhere (CUDA, MPS, other
    dtypes, a PyTorch built without oneDNN or without these operators, or ``pack=False``: the ONNX
    export traces plain operators) it is ``addmm``. A packed product is checked against ``addmm``
    once, when made, and not used if they differ.
    """

    PACK_ROWS = 8  # the row count oneDNN's layout is chosen for (measured best for 1 to 64 rows)

    def __init__(self, weight: Tensor, bias: Optional[Tensor] = None, *, pack: bool = True):
        self.weight_t, self.bias = weight.t().contiguous(), bias  # (in, out), (out,) or None
        self.packed = _packed(weight, bias) if pack else None

    def __call__(self, x: Tensor, add: Optional[Tensor] = None) -> Tensor:
        if self.packed is not None and x.shape[0] > 1:  # (one row: MKL's matrix-vector product is as fast)
            y = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
            return y if add is None else y.add_(add)
        if add is None:
            return x @ self.weight_t if self.bias is None else torch.addmm(self.bias, x, self.weight_t)
        return torch.addmm(add if self.bias is None else add + self.bias, x, self.weight_t)


def _packed(weight: Tensor, bias: Optional[Tensor]) -> Optional[Tensor]:
    """``weight`` in oneDNN's layout for :class:`Product`, or None where that is not to be had."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return None
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), Product.PACK_ROWS)
        x = torch.linspace(-1, 1, 3 * weight.shape[1], dtype=weight.dtype).reshape(3, -1)
        got = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
        expected = torch.nn.functional.linear(x, weight, bias)
    except (AttributeError, RuntimeError):  # no such operators in this PyTorch, or they refuse
        return None
    return packed if torch.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True) else None


def lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM cell update from its pre-activations ``gates`` (..., 4H), in PyTorch's gate order
    i f g o (both biases included), and the cell state ``c`` (..., H): the new ``(h, c)``."""
    H = c.shape[-1]
    ifo = torch.sigmoid(gates)
    g = torch.tanh(gates[..., 2 * H : 3 * H])
    c = torch.addcmul(ifo[..., H : 2 * H] * c, ifo[..., :H], g)
    return ifo[..., 3 * H :] * torch.tanh(c), c


def gru_update(x_proj: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """One GRU cell update: ``x_proj`` the input side (..., 3H) with its bias, ``gh`` the hidden
    side (..., 3H) with its bias (it sits inside the reset gate for n), ``h`` (..., H): the new h."""
    H = h.shape[-1]
    rz = torch.sigmoid(x_proj[..., : 2 * H] + gh[..., : 2 * H])
    n = torch.tanh(torch.addcmul(x_proj[..., 2 * H :], rz[..., :H], gh[..., 2 * H :]))
    return n + rz[..., H:] * (h - n)
