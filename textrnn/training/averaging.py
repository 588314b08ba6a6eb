"""Weight averaging (``--average ema|swa``): an averaged copy of the weights, kept beside the training.

From ``--average-start`` (a fraction of the run) on, :meth:`Averager.update` folds the weights after
every optimizer step into a float32 copy on the model's device:

- ``swa``: the equal-weight running mean of the weights after every step since the start (AWD-LSTM's
  averaged SGD and SWA average every step): ``avg += (w - avg) / n`` for the n-th weights averaged;
- ``ema``: an exponential moving average, ``avg = d * avg + (1 - d) * w`` with ``d = --average-decay``.

Both start as a copy of the weights at the start step, so an EMA carries no bias towards its zero
start. The average never feeds back: the training goes on from the raw weights. :meth:`Averager.swapped`
puts the averaged weights into the model for an evaluation (or a save) and the raw ones back, bit for
bit. The averaged tensors are the parameters and any floating-point buffers (batch-norm statistics
would be averaged too; these models have none); other buffers are the model's own. Under DDP the
unwrapped module is averaged: every rank holds the same weights, so the same average.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from ..config import TrainConfig


def averaged_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors weight averaging covers, by name: every parameter (a tied one once) and every
    floating-point buffer."""
    tensors = dict(model.named_parameters())
    tensors.update((n, b) for n, b in model.named_buffers() if b.is_floating_point())
    return tensors


@contextlib.contextmanager
def swapped(model: nn.Module, tensors: dict[str, torch.Tensor]) -> Iterator[nn.Module]:
    """``model`` with ``tensors`` (by name, any device) copied into its weights; on leaving, its own
    weights are put back exactly."""
    live = averaged_tensors(model)
    if set(live) != set(tensors):
        raise RuntimeError(f"averaged weights do not match the model: {sorted(set(live) ^ set(tensors))[:3]}")
    with torch.no_grad():
        kept = {n: t.detach().clone() for n, t in live.items()}
        for n, t in live.items():
            t.copy_(tensors[n])
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, t in live.items():
                t.copy_(kept[n])


class Averager:
    """The averaged copy of a model's weights (``kind`` ``ema`` or ``swa``), started once the run's
    fraction reaches ``start``; ``count`` weights averaged so far (0: not started)."""

    def __init__(self, kind: str, start: float, decay: float = 0.999):
        if kind not in ("ema", "swa"):
            raise ValueError(f"unknown weight averaging {kind!r}")
        self.kind, self.start, self.decay = kind, start, decay
        self.count = 0
        self.start_step: Optional[int] = None
        self.tensors: dict[str, torch.Tensor] = {}

    @classmethod
    def of(cls, cfg: TrainConfig) -> Optional["Averager"]:
        """The averager ``cfg`` asks for (``--average``), or None."""
        return None if cfg.average == "off" else cls(cfg.average, cfg.average_start, cfg.average_decay)

    @property
    def started(self) -> bool:
        return self.count > 0

    def update(self, model: nn.Module, fraction: float, step: int) -> None:
        """After optimizer step ``step``, ``fraction`` of the run done: start (a copy of the weights)
        once ``fraction`` reaches the start, then fold every step's weights in."""
        if not self.started and fraction < self.start:
            return
        live = averaged_tensors(model)
        with torch.no_grad():
            if not self.started:
                self.tensors = {n: t.detach().to(torch.float32, copy=True) for n, t in live.items()}
                self.start_step = step
            else:
                weight = 1.0 - self.decay if self.kind == "ema" else 1.0 / (self.count + 1)
                for n, t in live.items():
                    self.tensors[n].lerp_(t.detach().float(), weight)  # avg + weight * (w - avg)
        self.count += 1

    def swapped(self, model: nn.Module):
        """A context in which ``model`` holds the averaged weights (see :func:`swapped`)."""
        return swapped(model, self.tensors)

    def state_dict(self) -> dict[str, Any]:
        """For exact resume (``last/trainer.pt``): the averaged tensors as float32 CPU copies, and the count."""
        return {"kind": self.kind, "count": self.count, "start_step": self.start_step,
                "tensors": {n: t.to("cpu", torch.float32, copy=True) for n, t in self.tensors.items()}}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        if state["kind"] != self.kind:
            raise RuntimeError(f"saved weight averaging is {state['kind']!r}, not {self.kind!r}")
        self.count, self.start_step = state["count"], state["start_step"]
        self.tensors = {n: t.to(device, torch.float32, copy=True) for n, t in state["tensors"].items()}


def evaluate_both(model: nn.Module, averager: Optional[Averager], evaluate: Callable[[nn.Module], dict],
                  is_better: Callable[[dict, Optional[dict]], bool]) -> tuple[dict, dict, Optional[dict]]:
    """Validate ``model`` (in eval mode, float32, no gradients) and, once ``averager`` has started, its
    averaged weights too. Returns (the raw weights' metrics, the ``avg_*`` fields for the metrics row,
    the averaged weights' metrics when they score better than the raw ones, else None)."""
    model.eval()
    with torch.inference_mode():
        raw = evaluate(model)
    averaged = None
    if averager is not None and averager.started:
        with averager.swapped(model), torch.inference_mode():
            averaged = evaluate(model)
    model.train()
    if averaged is None:
        return raw, {}, None
    better = is_better(averaged, raw)
    fields = {f"avg_{k}": v for k, v in averaged.items()}
    fields.update(avg_steps=averager.count, avg_better=better)
    return raw, fields, averaged if better else None


def best_weights(model: nn.Module, best: Optional[dict], average: Optional[dict]):
    """A context in which ``model`` holds the weights that scored ``best`` (a trainer state's ``best``
    and ``average``): the averaged ones when ``best["weights"]`` says so, else its own."""
    if best is not None and best.get("weights") == "average" and average is not None:
        return swapped(model, average["tensors"])
    return contextlib.nullcontext(model)
