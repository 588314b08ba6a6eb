"""What :class:`textrnn.training.trainer.Trainer` (``train_loop``) trains on: one task class per kind of model.

A task owns its batches, its loss and its evaluation, and whatever state is carried
between batches; the trainer stays generic.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..inference.classify import evaluate as classification_metrics
from ..inference.classify import predict_ids
from ..data.batches import ClassBatches, LMBatches
from ..inference.scoring import loss_metrics, score_tokens
from .distributed import Dist
from ..inference.state import detach as detach_state
from ..model import Classifier, LanguageModel, State


class LMTask:
    """Language modelling for :func:`textrnn.training.trainer.train_loop`: carried state, next-token loss;
    validation scores every token of ``val`` (ids or a token file,
    see :func:`textrnn.inference.scoring.score_tokens`)."""

    def __init__(self, train: LMBatches, val: Any, device: torch.device, chars_per_val_token: float,
                 dist: Optional[Dist] = None, ar: float = 0.0, tar: float = 0.0):
        self.train, self.val, self.device = train, val, device
        self.ar, self.tar = ar, tar  # activation regularization: the training loss only
        self.chars_per_val_token = chars_per_val_token
        self.dist = dist or Dist()
        self.state: Optional[State] = None

    def steps_per_epoch(self) -> int:
        return self.train.windows_in_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        self.state = None  # streams restart at a new offset: nothing to carry

    def batches(self, epoch: int, start: int):
        for w in range(start, self.train.windows_in_epoch(epoch)):
            yield self.train.chunk(epoch, w)

    def loss(self, model: LanguageModel, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        chunk = batch.to(self.device, non_blocking=True)  # (B, T + 1)
        x, y = chunk[:, :-1], chunk[:, 1:]
        if not (self.ar or self.tar):
            nll, state = model(x, self.state, targets=y)  # (B, T): no (B, T, V) logits with an adaptive softmax
            self.state = detach_state(state)
            return nll.mean(), x.numel()
        nll, state, out = model(x, self.state, return_outputs=True, targets=y)  # (B, T), Outputs (B, T, H)
        self.state = detach_state(state)
        loss = nll.mean()
        if self.ar:  # AR: large activations cost
            loss = loss + self.ar * out.dropped.float().pow(2).mean()
        if self.tar and out.raw.shape[1] > 1:  # TAR: fast-changing activations cost
            loss = loss + self.tar * (out.raw[:, 1:] - out.raw[:, :-1]).float().pow(2).mean()
        return loss, x.numel()

    def evaluate(self, model: LanguageModel) -> dict[str, float]:
        total, count = score_tokens(model, self.val, self.train.seq_len, self.device, rank=self.dist.rank,
                                    world=self.dist.world)
        total, count = self.dist.all_sum([total, count], self.device)
        return loss_metrics(total, count, self.chars_per_val_token, "val")

    def is_better(self, metrics, best) -> bool:
        return best is None or metrics["val_loss"] < best["val_loss"]

    def carry_state(self) -> dict[str, torch.Tensor]:
        if self.state is None:
            return {}
        # float32 on the CPU: a run may resume on another device or at another precision
        if isinstance(self.state, tuple):
            return {"h": self.state[0].float().cpu(), "c": self.state[1].float().cpu()}
        return {"h": self.state.float().cpu()}

    def load_carry_state(self, tensors: dict[str, torch.Tensor]) -> None:
        def put(t: torch.Tensor) -> torch.Tensor:
            return t.to(self.device, torch.float32)

        if "c" in tensors:
            self.state = (put(tensors["h"]), put(tensors["c"]))
        elif "h" in tensors:
            self.state = put(tensors["h"])


class ClassifyTask:
    """Text classification for :func:`textrnn.training.trainer.train_loop`: length-bucketed batches,
    cross-entropy, accuracy / macro-F1 / per-class precision and recall on validation."""

    def __init__(self, train: ClassBatches, val_ids: Sequence[np.ndarray], val_labels: np.ndarray,
                 label_names: Sequence[Any], device: torch.device):
        self.train, self.val_ids, self.val_labels = train, list(val_ids), np.asarray(val_labels)
        self.label_names, self.device = list(label_names), device
        self._epoch, self._order = -1, []

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def start_epoch(self, epoch: int) -> None:
        pass

    def batches(self, epoch: int, start: int):
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self.train.epoch_batches(epoch)
        for index in self._order[start:]:
            yield self.train.batch(index)

    def loss(self, model: Classifier, batch) -> tuple[torch.Tensor, int]:
        ids, lengths, labels = batch
        logits = model(ids.to(self.device, non_blocking=True), lengths)  # (B, C)
        return F.cross_entropy(logits, labels.to(self.device, non_blocking=True)), int(lengths.sum())

    def evaluate(self, model: Classifier) -> dict[str, Any]:
        probs = predict_ids(model, self.val_ids)  # (N, C)
        picked = np.clip(probs[np.arange(len(probs)), self.val_labels], 1e-12, None)
        m = classification_metrics(self.val_labels, probs.argmax(axis=1), self.label_names)
        return {"val_loss": round(float(-np.log(picked).mean()), 5), "val_acc": m["accuracy"],
                "val_macro_f1": m["macro_f1"], "val_per_class": m["per_class"]}

    def is_better(self, metrics, best) -> bool:
        return best is None or (metrics["val_acc"], -metrics["val_loss"]) > (best["val_acc"], -best["val_loss"])

    def carry_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_carry_state(self, tensors: dict[str, torch.Tensor]) -> None:
        pass
