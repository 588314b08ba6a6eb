"""Gradient norms for ``metrics.jsonl``: the total norm before clipping (mean and max since the
last evaluation), the share of steps clipped, and the mean norm of each layer's gradients.

:class:`GradStats` clips the gradients (as ``clip_grad_norm_`` does) and sums the norms in one
tensor on the device, so a step costs no device sync; :meth:`GradStats.metrics` reads it once,
at an evaluation. Under DDP every rank holds the same all-reduced gradients, so every rank
sums the same norms; with the fp16 GradScaler the norms are taken after unscaling. A step
whose gradients are not finite (the scaler then skips it) counts as a step but adds no norm.
"""

from __future__ import annotations

import re
from typing import Optional

import torch
from torch import nn

_LAYER = re.compile(r"^(weight|bias)_(ih|hh)_l(\d+)")  # nn.LSTM / GRU / RNN parameters: one group per layer
_SUM, _MAX, _CLIPPED, _FINITE, _STEPS = range(5)  # the accumulator's first slots; then one per group


def group_name(name: str) -> str:
    """The group of a named parameter: its module (``head``, ``encoder.embedding``), or for a
    recurrent layer's weights the module and the layer (``encoder.rnn.l1``; both directions)."""
    module, _, attr = name.rpartition(".")
    layer = _LAYER.match(attr)
    if layer:
        return f"{module}.l{layer.group(3)}" if module else f"l{layer.group(3)}"
    return module or attr


class GradStats:
    """Clip the gradients of ``params`` and accumulate their norms; ``saved`` restores the sums
    of a resumed run (:meth:`state`)."""

    def __init__(self, model: nn.Module, params: list[torch.nn.Parameter], device: torch.device,
                 saved: Optional[list[float]] = None):
        mine = {id(p) for p in params}
        named = [(n, p) for n, p in model.named_parameters() if id(p) in mine]  # (in the model's order)
        named += [("other", p) for p in params if id(p) not in {id(q) for _, q in named}]
        groups: dict[str, list[torch.nn.Parameter]] = {}
        for n, p in named:
            groups.setdefault(group_name(n), []).append(p)
        self.names, self.groups = list(groups), list(groups.values())
        size = _STEPS + 1 + len(self.groups)
        self.acc = torch.zeros(size, device=device)  # (5 + G,) float32
        if saved is not None and len(saved) == size:
            self.acc = torch.tensor(saved, device=device)

    def clip(self, max_norm: Optional[float]) -> torch.Tensor:
        """Clip the gradients to ``max_norm`` (none: no clipping) and add this step's norms; returns
        the total norm before clipping (a device tensor)."""
        per_group = torch.stack([torch.nn.utils.get_total_norm([p.grad for p in g if p.grad is not None],
                                                               foreach=True).float().to(self.acc.device)
                                 for g in self.groups])  # (G,)
        total = torch.linalg.vector_norm(per_group)  # ()
        if max_norm:
            torch.nn.utils.clip_grads_with_norm_([p for g in self.groups for p in g], max_norm, total,
                                                 foreach=True)
        finite = torch.isfinite(total)
        zero = torch.zeros((), device=total.device)
        kept = torch.where(finite, total, zero)
        clipped = (finite & (total > max_norm)).float() if max_norm else zero
        self.acc[:_STEPS + 1].add_(torch.stack([kept, zero, clipped, finite.float(), zero + 1]))
        self.acc[_MAX] = torch.maximum(self.acc[_MAX], kept)
        self.acc[_STEPS + 1:].add_(torch.where(finite, per_group, zero))
        return total

    def metrics(self) -> dict[str, float]:
        """The norms since the last call (one device sync), and restart the sums; none without steps."""
        acc = self.acc.tolist()
        self.acc.zero_()
        if not acc[_STEPS]:
            return {}
        finite = max(1.0, acc[_FINITE])
        out = {"grad_norm": acc[_SUM] / finite, "grad_norm_max": acc[_MAX],
               "grad_clipped": acc[_CLIPPED] / acc[_STEPS]}
        out.update({f"grad_norm/{n}": s / finite for n, s in zip(self.names, acc[_STEPS + 1:])})
        return out

    def state(self) -> list[float]:
        """The sums since the last evaluation, for exact resume."""
        return self.acc.tolist()
