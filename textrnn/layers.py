"""AWD-LSTM regularization for the recurrent stack (Merity et al. 2018), on PyTorch's fused kernels.

* :func:`locked_dropout`: variational dropout, one mask per sequence shared by its time steps.
* :class:`RecurrentStack`: runs an ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` module with weight drop
  (DropConnect on the hidden-to-hidden weights, a new mask per forward) and, optionally, one
  layer at a time with locked dropout between the layers. Either way each layer is one call of
  the fused cuDNN / oneDNN kernel (:func:`torch.func.functional_call` with substituted
  weights), never a per-time-step Python loop, and the parameters stay those of the one
  multi-layer module (so checkpoint names and the state layout ``(layers, B, H)`` are unchanged).
  A :class:`~textrnn.mincells.MinRNN` (minGRU, minLSTM) has no hidden-to-hidden weights to drop
  (the configuration refuses weight drop with one) and applies the locked dropout between its
  layers itself: it is simply called.
"""

from __future__ import annotations

import warnings
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

State = Union[Tensor, tuple[Tensor, Tensor]]

RECURRENT_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Zero features of ``x`` (B, T, D) with probability ``p``, the same features at every time
    step of a sequence (one mask per sequence), rescaled by 1 / (1 - p); identity at eval."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)  # (B, 1, D)
    return x * mask  # (B, T, D)


class RecurrentStack:
    """How an encoder runs its recurrent module ``rnn`` (which owns the weights).

    ``weight_drop``: DropConnect probability on every ``weight_hh_l*`` in training.
    ``hidden_dropout``: locked dropout between layers; when positive (and there are several
    layers) the layers run one at a time through weightless single-layer "shell" modules on
    the meta device, given layer k's weights; ``between`` is the ordinary dropout the
    multi-layer module applies between its layers (kept in the per-layer path too).
    """

    def __init__(self, rnn: nn.Module, weight_drop: float, hidden_dropout: float, between: float):
        self.rnn, self.weight_drop, self.hidden_dropout, self.between = rnn, weight_drop, hidden_dropout, between
        self.shells: list[nn.RNNBase] = []
        if hidden_dropout > 0 and rnn.num_layers > 1 and isinstance(rnn, nn.RNNBase):  # (a MinRNN's is its own)
            kwargs = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
            self.shells = [type(rnn)(rnn.input_size if k == 0 else rnn.hidden_size, rnn.hidden_size, 1,
                                     batch_first=True, device="meta", **kwargs)
                           for k in range(rnn.num_layers)]

    @property
    def plain(self) -> bool:
        """Whether the module can simply be called (no weight drop, no per-layer dropout)."""
        return self.weight_drop == 0 and not self.shells

    def weights(self, training: bool) -> dict[str, Tensor]:
        """The module's weights by name, ``weight_hh_l*`` dropped (a fresh mask) in training."""
        weights = dict(self.rnn.named_parameters())
        if training and self.weight_drop > 0:
            for k in range(self.rnn.num_layers):
                name = f"weight_hh_l{k}"
                weights[name] = F.dropout(weights[name], self.weight_drop, training=True)  # (G*H, H)
        return weights

    def __call__(self, x: Tensor, state: Optional[State], training: bool) -> tuple[Tensor, State]:
        """``x`` (B, T, E) -> outputs (B, T, H) and the state, each tensor (layers, B, H)."""
        if self.plain:
            return self.rnn(x, state)
        weights = self.weights(training)
        with warnings.catch_warnings():  # on CUDA: substituted weights are not in the flat buffer
            warnings.filterwarnings("ignore", message=".*single contiguous chunk of memory.*")
            if not self.shells:
                return functional_call(self.rnn, weights, (x, state))
            return self._per_layer(x, state, weights, training)

    def _per_layer(self, x: Tensor, state: Optional[State], weights: dict[str, Tensor],
                   training: bool) -> tuple[Tensor, State]:
        last = len(self.shells) - 1
        finals = []
        for k, shell in enumerate(self.shells):
            layer_state = None
            if state is not None:
                layer_state = tuple(s[k : k + 1] for s in state) if isinstance(state, tuple) else state[k : k + 1]
            own = {f"{name}_l0": weights[f"{name}_l{k}"] for name in RECURRENT_PARAMS}
            x, final = functional_call(shell, own, (x, layer_state))  # (B, T, H), each (1, B, H)
            finals.append(final)
            if k < last:
                x = locked_dropout(F.dropout(x, self.between, training), self.hidden_dropout, training)
        if isinstance(finals[0], tuple):
            return x, (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals]))  # (layers, B, H)
        return x, torch.cat(finals)  # (layers, B, H)
