"""The training loop: one generic :class:`Trainer` (:func:`train_loop`) for every model textrnn trains.

It knows nothing of what it trains or of the terminal. A :class:`Task` supplies batches,
the loss and the evaluation; the trainer runs AdamW with gradient clipping and a warm-up +
cosine schedule, evaluates every ``eval_every`` steps and at the end, stops on epochs /
steps / time / Ctrl-C, and reports through two callbacks:

- ``on_progress(Progress)`` every ``report_every`` steps and after every evaluation (the CLI draws its bar here);
- ``on_checkpoint(TrainerState, best: bool)`` when a checkpoint is due (the caller
  decides how to write it).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Protocol

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import TextRNNError
from .averaging import Averager, evaluate_both
from .distributed import Dist
from .gradients import GradStats
from .optim import frozen_groups, lr_at, make_optimizer
from .runtime import autocast_dtype, capture_rng, restore_rng


class Task(Protocol):
    """What ``train_loop`` needs from a model-specific task (language modelling, classification)."""

    def steps_per_epoch(self) -> int: ...

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        """Training batches of ``epoch`` from index ``start`` on."""

    def start_epoch(self, epoch: int) -> None:
        """Reset per-epoch carried state (e.g. the LM's hidden state)."""

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, int]:
        """Mean loss of a batch and the number of tokens (or examples) it covers."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics; must include ``val_loss``."""

    def is_better(self, metrics: dict[str, float], best: Optional[dict[str, float]]) -> bool: ...

    def carry_state(self) -> dict[str, torch.Tensor]:
        """Tensors to save for exact resume (e.g. the carried hidden state)."""

    def load_carry_state(self, tensors: dict[str, torch.Tensor]) -> None: ...


@dataclass
class Progress:
    """A snapshot for progress displays."""

    step: int
    epoch: int
    fraction: float  # of the whole run, 0..1
    elapsed_s: float
    train_loss: Optional[float]
    val_loss: Optional[float]
    tokens_per_s: float
    lr: float
    event: str  # "step" | "eval" | "end"
    metrics: Optional[dict[str, float]] = None
    sample: Optional[str] = None  # text sampled after this evaluation (set by the LM pipeline)


@dataclass
class TrainerState:
    """Everything beyond the weights that exact resume needs."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    tokens_seen: int = 0
    best: Optional[dict[str, float]] = None
    last_val_loss: Optional[float] = None  # of the latest evaluation (the progress bar shows it)
    optimizer: Optional[dict] = None
    rng: Optional[dict] = None
    carry: dict[str, torch.Tensor] = field(default_factory=dict)
    loss_sum: float = 0.0  # training losses summed since the last evaluation
    loss_count: int = 0
    grad_stats: Optional[list] = None  # gradient-norm sums since the last evaluation (gradients.GradStats)
    rank_rng: Optional[list] = None  # every rank's RNG states, in a distributed run
    rank_carry: Optional[list] = None  # every rank's carried state (each reads its own streams)
    scaler: Optional[dict] = None  # the fp16 gradient scaler's state
    stopped_by: Optional[str] = None  # "epochs" | "max_steps" | "max_time" | "patience" | "interrupt"
    average: Optional[dict] = None  # the averaged weights and their count (averaging.Averager.state_dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainerState":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


_SIGNALS = {None: 0.0, "interrupt": 1.0, "terminate": 2.0}  # (a number to all-reduce)
_SIGNAL_NAMES = {code: name for name, code in _SIGNALS.items()}


class _StopFlag:
    """SIGINT / SIGTERM ask the loop to stop at the next step boundary; a second Ctrl-C
    interrupts at once."""

    def __init__(self) -> None:
        self.signal: Optional[str] = None

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            if self.signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signal = "interrupt" if signum == signal.SIGINT else "terminate"

        for s in old:
            signal.signal(s, handler)
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


OnProgress = Callable[[Progress], None]
OnCheckpoint = Callable[[TrainerState, bool], None]  # (state, best): write a checkpoint


class Trainer:
    """One training run, set up (or resumed from ``state``) by ``__init__``; :func:`train_loop` runs it.

    :meth:`run` goes through the epochs batch by batch. Before each step :meth:`stop_reason` says whether
    to stop (steps or epochs done, a signal, time up); else :meth:`train_step` takes one AdamW step. Every
    ``report_every`` steps (and after the first) the mean training loss is reported; every ``eval_every``
    steps :meth:`evaluate` validates and saves, else every ``save_every`` :meth:`save` checkpoints. At the
    end the run is evaluated once more, unless it just was, or a signal stopped it (then it only saves).
    With ``--average`` each step also updates the averaged weights (:mod:`.averaging`); each evaluation then
    scores both, and ``state.best`` (what the best checkpoint saves) is whichever weights scored better.
    """

    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, *, state: Optional[TrainerState] = None,
                 optimizer: Optional[torch.optim.Optimizer] = None, on_progress: Optional[OnProgress] = None,
                 on_checkpoint: Optional[OnCheckpoint] = None, report_every: int = 10, dist: Optional[Dist] = None):
        self.model, self.task, self.cfg, self.report_every = model, task, cfg, report_every
        self.on_progress, self.on_checkpoint = on_progress, on_checkpoint
        self.dist = dist = dist or Dist()
        self.device = next(model.parameters()).device
        self.optimizer = optimizer = optimizer or make_optimizer(model, cfg)
        self.state = state = state or TrainerState()
        state.stopped_by = None  # a resumed run goes on whatever stopped it
        if state.optimizer is not None:
            optimizer.load_state_dict(state.optimizer)
        if state.rank_rng is not None and len(state.rank_rng) == dist.world:
            restore_rng(state.rank_rng[dist.rank])
        elif state.rng is not None:
            restore_rng(state.rng)
        self.averager = Averager.of(cfg)  # (--average; None: off)
        if self.averager is not None and state.average is not None:
            self.averager.load_state_dict(state.average, self.device)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.train_model: nn.Module = model  # what the training steps call
        if dist.active:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        if state.rank_carry is not None and len(state.rank_carry) == dist.world:
            task.load_carry_state(state.rank_carry[dist.rank])
        elif state.carry:
            task.load_carry_state(state.carry)
        steps_per_epoch = task.steps_per_epoch()
        self.total_steps = math.inf
        if cfg.epochs is not None:
            self.total_steps = max(1, int(round(cfg.epochs * steps_per_epoch)))
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.grads = GradStats(model, self.params, self.device, state.grad_stats)  # clips; norms for metrics
        self.last_eval_s = 0.0  # how long an evaluation takes: reserved at the end of a timed run
        self.start_elapsed, self.t0 = state.elapsed_s, time.perf_counter()
        self.synced_elapsed = self.start_elapsed  # distributed: the ranks' common clock, read at sync points
        self.window_t, self.window_tokens = self.t0, 0  # for tokens_per_s, since the last report
        self.loss_sum = torch.tensor(state.loss_sum, device=self.device)  # (): losses since the last evaluation
        self.loss_count = state.loss_count  # (the sum stays on the device: no sync per step)
        self.train_loss: Optional[float] = state.loss_sum / state.loss_count if state.loss_count else None
        self.val_loss, self.tokens_per_s = state.last_val_loss, 0.0
        self.stop = _StopFlag()

    def _autocast(self):
        dtype = self.amp_dtype  # (None: float32, no autocast)
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def elapsed(self) -> float:
        """Training seconds so far, earlier runs of a resumed one included."""
        return self.start_elapsed + time.perf_counter() - self.t0

    def _clock(self) -> float:
        """Elapsed time for decisions: every rank must take the same ones."""
        return self.synced_elapsed if self.dist.active else self.elapsed()

    def fraction(self) -> float:
        """How much of the run is done, 0..1: of the steps, or of the time less the last evaluation's."""
        f = self.state.step / self.total_steps if self.total_steps != math.inf else 0.0
        if self.cfg.max_time is not None:
            f = max(f, self._clock() / max(1e-9, self.cfg.max_time - self.last_eval_s))
        return min(1.0, f)

    def stop_reason(self) -> Optional[str]:
        """Why to stop before the next step, if at all (distributed: time and signals at sync points)."""
        if self.state.step >= self.total_steps:
            return "max_steps" if self.cfg.max_steps == self.state.step else "epochs"
        signal_name = self.stop.signal
        if self.dist.active:
            if self.state.step % self.report_every:
                return None
            self.synced_elapsed, code, self.last_eval_s = self.dist.all_max(
                [self.elapsed(), _SIGNALS[signal_name], self.last_eval_s], self.device)
            signal_name = _SIGNAL_NAMES[code]
        if signal_name:
            return signal_name
        if self.cfg.max_time is not None and self._clock() + self.last_eval_s >= self.cfg.max_time:
            return "max_time"
        best = self.state.best
        if self.cfg.patience and best and self.state.step - best["step"] >= self.cfg.patience * self.cfg.eval_every:
            return "patience"  # (from the saved state alone: exact on --resume)
        return None

    def run(self) -> TrainerState:
        """Train until a stop condition; returns the final trainer state."""
        state = self.state
        self.model.train()
        with self.stop.installed():
            while state.stopped_by is None:
                self._run_epoch()
        if state.stopped_by in ("interrupt", "terminate"):
            self.save(best=False)  # stop promptly: no final evaluation
        elif state.step == 0 or state.step % self.cfg.eval_every != 0:
            self.evaluate()  # (a run that stopped right after an evaluation is already saved)
        state.elapsed_s = self.elapsed()
        if self.on_progress:
            self.on_progress(self.snapshot("end", state.best))
        return state

    def _run_epoch(self) -> None:
        """Train on the rest of the current epoch, or until ``stop_reason`` sets ``state.stopped_by``."""
        state = self.state
        if state.batch_in_epoch == 0:
            self.task.start_epoch(state.epoch)
        for batch in self.task.batches(state.epoch, state.batch_in_epoch):
            state.stopped_by = self.stop_reason()
            if state.stopped_by:
                return
            self.train_step(batch)
            if state.step % self.report_every == 0 or state.step == 1:
                self._report()
            if state.step % self.cfg.eval_every == 0:
                self.evaluate()
            elif state.step % self.cfg.save_every == 0:
                self.save(best=False)
        state.epoch += 1  # the epoch ran out
        state.batch_in_epoch = 0

    def train_step(self, batch: Any) -> None:
        """One optimizer step on ``batch`` at the scheduled learning rate, and the counters."""
        cfg, optimizer, scaler, state = self.cfg, self.optimizer, self.scaler, self.state
        fraction = self.fraction()
        lr = lr_at(cfg, state.step, fraction)
        for g in optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"]
        with self._autocast():
            loss, n_tokens = self.task.loss(self.train_model, batch)  # loss: () mean over the batch
        n_tokens *= self.dist.world
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        for g in frozen_groups(optimizer, fraction):  # (gradual unfreezing) no step, no moments, not clipped
            for p in g["params"]:
                p.grad = None
        self.grads.clip(cfg.clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        self.loss_sum += loss.detach().float()  # () float32, on the device
        self.loss_count += 1
        self.window_tokens += n_tokens
        state.step += 1
        state.batch_in_epoch += 1
        state.tokens_seen += n_tokens
        if self.averager is not None:
            self.averager.update(self.model, self.fraction(), state.step)

    def _report(self) -> None:
        """The mean training loss and the speed since the last report, to ``on_progress``."""
        self._mean_train_loss()
        now = time.perf_counter()
        self.tokens_per_s = self.window_tokens / max(1e-9, now - self.window_t)
        self.window_t, self.window_tokens = now, 0
        if self.on_progress:
            self.on_progress(self.snapshot("step"))

    def snapshot(self, event: str, metrics: Optional[dict[str, float]] = None) -> Progress:
        return Progress(self.state.step, self.state.epoch, self.fraction(), self.elapsed(), self.train_loss,
                        self.val_loss, self.tokens_per_s, self.optimizer.param_groups[0]["lr"], event, metrics)

    def evaluate(self) -> None:
        """Validate, record the metrics (the best too), restart the training-loss mean, and save."""
        state = self.state
        if self.loss_count:
            self._mean_train_loss()
        t = time.perf_counter()  # (in float32 at any --precision: the figures textrnn evaluate gives)
        metrics, avg_fields, averaged = evaluate_both(self.model, self.averager, self.task.evaluate,
                                                      self.task.is_better)
        self.last_eval_s = time.perf_counter() - t
        if self.dist.active:  # every rank reserves the same time for the last evaluation
            self.last_eval_s = self.dist.all_max([self.last_eval_s], self.device)[0]
        self.val_loss = state.last_val_loss = metrics["val_loss"]
        metrics = {"step": state.step, "epoch": state.epoch, "elapsed_s": round(self.elapsed(), 3),
                   "train_loss": self.train_loss, **metrics, **avg_fields, "tokens_per_s": round(self.tokens_per_s, 1),
                   **self.grads.metrics()}
        scored = metrics if averaged is None else {**metrics, **averaged, "weights": "average"}  # (what best saves)
        better = self.task.is_better(scored, state.best)
        if better:
            state.best = scored
        self.loss_sum.zero_()
        self.loss_count = 0
        if self.on_progress:
            self.on_progress(self.snapshot("eval", metrics))
        self.save(best=better)

    def _ranks_loss_sum(self) -> float:
        """The running loss sum, averaged over the ranks (this rank's own in one process)."""
        return self.dist.all_sum([float(self.loss_sum)], self.device)[0] / self.dist.world

    def _mean_train_loss(self, summed: Optional[float] = None) -> None:
        """Set ``train_loss`` to the mean since the last evaluation; a non-finite one is an error."""
        self.train_loss = (self._ranks_loss_sum() if summed is None else summed) / self.loss_count
        if not math.isfinite(self.train_loss):
            raise TextRNNError(f"training diverged: the loss became {self.train_loss} by step {self.state.step}; "
                               "the last good checkpoint is kept; lower --lr or --clip and resume")

    def save(self, best: bool) -> None:
        """Fill ``state`` with all that exact resume needs and hand it to ``on_checkpoint``."""
        if self.on_checkpoint is None:
            return
        state, dist = self.state, self.dist
        # (distributed: every rank resumes with the ranks' mean, so the reported mean stays exact)
        state.loss_sum, state.loss_count = self._ranks_loss_sum(), self.loss_count
        if self.loss_count:
            self._mean_train_loss(state.loss_sum)  # never save weights that a non-finite loss has reached
        state.elapsed_s = self.elapsed()
        state.grad_stats = self.grads.state()
        state.optimizer = self.optimizer.state_dict()
        state.rng = capture_rng()
        state.rank_rng = dist.gather(state.rng) if dist.active else None
        state.scaler = self.scaler.state_dict() if self.scaler is not None else None
        state.carry = self.task.carry_state()
        state.rank_carry = dist.gather(state.carry) if dist.active else None
        state.average = self.averager.state_dict() if self.averager is not None else None
        if dist.active:  # a write that fails on rank 0 (disk full) stops every rank, with its message
            dist.agree(lambda: self.on_checkpoint(state, best))
        else:
            self.on_checkpoint(state, best)
        state.optimizer = state.average = None  # do not keep references to a copy around


def train_loop(model: nn.Module, task: Task, cfg: TrainConfig, *, state: Optional[TrainerState] = None,
               optimizer: Optional[torch.optim.Optimizer] = None, on_progress: Optional[OnProgress] = None,
               on_checkpoint: Optional[OnCheckpoint] = None, report_every: int = 10, dist: Optional[Dist] = None
               ) -> TrainerState:
    """Train ``model`` on ``task`` until a stop condition (see :class:`Trainer`); returns the final state.

    Pass ``state`` to resume a run exactly. With ``dist`` (a torchrun job) the model trains as DDP and the
    ranks agree every ``report_every`` steps on the loss, the elapsed time and whether to stop."""
    return Trainer(model, task, cfg, state=state, optimizer=optimizer, on_progress=on_progress,
                   on_checkpoint=on_checkpoint, report_every=report_every, dist=dist).run()
