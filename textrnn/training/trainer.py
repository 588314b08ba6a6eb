"""The training loop: one generic ``fit`` for every model textrnn trains.

``fit`` knows nothing of what it trains or of the terminal. A :class:`Task` supplies
batches, the loss and the evaluation; ``fit`` runs AdamW with gradient clipping and a
warm-up + cosine schedule, evaluates every ``eval_every`` steps and at the end, stops on
epochs / steps / time / Ctrl-C, and reports through two callbacks:

- ``on_progress(Progress)`` after every step and evaluation (the CLI draws its bar here);
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
from .distributed import Dist
from ..errors import TextRNNError
from ..memory import keep_freed_memory
from .runtime import autocast_dtype, capture_rng, restore_rng


class Task(Protocol):
    """What ``fit`` needs from a model-specific task (language modelling, classification)."""

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
    rank_rng: Optional[list] = None  # every rank's RNG states, in a distributed run
    rank_carry: Optional[list] = None  # every rank's carried state (each reads its own streams)
    scaler: Optional[dict] = None  # the fp16 gradient scaler's state
    stopped_by: Optional[str] = None  # "epochs" | "max_steps" | "max_time" | "interrupt"

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainerState":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def make_optimizer(model: nn.Module, cfg: TrainConfig,
                   lr_scales: Optional[dict[str, float]] = None) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings; parameters named in
    ``lr_scales`` train at that multiple of the learning rate."""
    groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decay = not (p.ndim < 2 or "embedding" in name)
            groups.setdefault((decay, (lr_scales or {}).get(name, 1.0)), []).append(p)
    param_groups = [{"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0, "lr_scale": scale}
                    for (decay, scale), ps in groups.items() if ps]
    kwargs = {"foreach": True} if next(model.parameters()).device.type != "mps" else {}
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(0.9, 0.99), **kwargs)


def lr_at(cfg: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` by the end."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, fraction)))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cos)


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


def fit(
    model: nn.Module,
    task: Task,
    cfg: TrainConfig,
    *,
    state: Optional[TrainerState] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    on_checkpoint: Optional[Callable[[TrainerState, bool], None]] = None,
    report_every: int = 10,
    dist: Optional[Dist] = None,
) -> TrainerState:
    """Train ``model`` on ``task`` until a stop condition; returns the final trainer state.

    Pass ``state`` (and it restores the optimizer and RNG) to resume a run exactly. With
    ``dist`` (a torchrun job) the model trains as ``DistributedDataParallel``; the ranks
    agree every ``report_every`` steps on the loss, the elapsed time and whether to stop.
    """
    keep_freed_memory()
    dist = dist or Dist()
    device = next(model.parameters()).device
    optimizer = optimizer or make_optimizer(model, cfg)
    state = state or TrainerState()
    state.stopped_by = None  # a resumed run goes on whatever stopped it
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    if state.rank_rng is not None and len(state.rank_rng) == dist.world:
        restore_rng(state.rank_rng[dist.rank])
    elif state.rng is not None:
        restore_rng(state.rng)
    amp_dtype = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    if scaler is not None and state.scaler:
        scaler.load_state_dict(state.scaler)

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    train_model: nn.Module = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    if state.rank_carry is not None and len(state.rank_carry) == dist.world:
        task.load_carry_state(state.rank_carry[dist.rank])
    elif state.carry:
        task.load_carry_state(state.carry)

    steps_per_epoch = task.steps_per_epoch()
    total_steps = math.inf
    if cfg.epochs is not None:
        total_steps = max(1, int(round(cfg.epochs * steps_per_epoch)))
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    params = [p for g in optimizer.param_groups for p in g["params"]]

    last_eval_s = 0.0  # how long an evaluation takes: reserved at the end of a timed run
    start_elapsed = state.elapsed_s
    t0 = time.perf_counter()
    synced_elapsed = start_elapsed  # distributed: the ranks' common clock, read at sync points
    window_t, window_tokens = t0, 0
    # the mean training loss since the last evaluation, accumulated on the device (no sync per step)
    loss_sum = torch.tensor(state.loss_sum, device=device)
    loss_count = state.loss_count
    train_loss: Optional[float] = state.loss_sum / state.loss_count if state.loss_count else None
    val_loss = state.last_val_loss
    tokens_per_s = 0.0

    def elapsed() -> float:
        return start_elapsed + time.perf_counter() - t0

    def clock() -> float:
        """Elapsed time for decisions: every rank must take the same ones."""
        return synced_elapsed if dist.active else elapsed()

    def fraction() -> float:
        f = state.step / total_steps if total_steps != math.inf else 0.0
        if cfg.max_time is not None:
            f = max(f, clock() / max(1e-9, cfg.max_time - last_eval_s))
        return min(1.0, f)

    def time_or_signal() -> Optional[str]:
        """Why to stop now, if a signal came or time is up (at sync points, in a distributed run)."""
        nonlocal synced_elapsed, last_eval_s
        signal_name = stop.signal
        if dist.active:
            if state.step % report_every:
                return None
            synced_elapsed, code, last_eval_s = dist.all_max(
                [elapsed(), _SIGNALS[signal_name], last_eval_s], device)
            signal_name = _SIGNAL_NAMES[code]
        if signal_name:
            return signal_name
        if cfg.max_time is not None and clock() + last_eval_s >= cfg.max_time:
            return "max_time"
        return None

    def snapshot(event: str, metrics=None) -> Progress:
        return Progress(state.step, state.epoch, fraction(), elapsed(), train_loss, val_loss,
                        tokens_per_s, optimizer.param_groups[0]["lr"], event, metrics)

    def evaluate() -> None:
        nonlocal val_loss, last_eval_s, loss_count
        if loss_count:
            mean_train_loss()
        t = time.perf_counter()
        model.eval()
        with torch.inference_mode(), autocast():
            metrics = task.evaluate(model)
        model.train()
        last_eval_s = time.perf_counter() - t
        if dist.active:  # every rank reserves the same time for the last evaluation
            last_eval_s = dist.all_max([last_eval_s], device)[0]
        val_loss = state.last_val_loss = metrics["val_loss"]
        metrics = {"step": state.step, "epoch": state.epoch, "elapsed_s": round(elapsed(), 3),
                   "train_loss": train_loss, **metrics, "tokens_per_s": round(tokens_per_s, 1)}
        better = task.is_better(metrics, state.best)
        if better:
            state.best = metrics
        loss_sum.zero_()
        loss_count = 0
        if on_progress:
            on_progress(snapshot("eval", metrics))
        save(best=better)

    def ranks_loss_sum() -> float:
        """The running loss sum, averaged over the ranks (this rank's own in one process)."""
        return dist.all_sum([float(loss_sum)], device)[0] / dist.world

    def mean_train_loss(summed: Optional[float] = None) -> None:
        nonlocal train_loss
        train_loss = (ranks_loss_sum() if summed is None else summed) / loss_count
        if not math.isfinite(train_loss):
            raise TextRNNError(
                f"training diverged: the loss became {train_loss} by step {state.step}; "
                "the last good checkpoint is kept; lower --lr or --clip and resume"
            )

    def save(best: bool) -> None:
        if on_checkpoint is None:
            return
        # (distributed: every rank resumes with the ranks' mean, so the reported mean stays exact)
        state.loss_sum, state.loss_count = ranks_loss_sum(), loss_count
        if loss_count:
            mean_train_loss(state.loss_sum)  # never save weights that a non-finite loss has reached
        state.elapsed_s = elapsed()
        state.optimizer = optimizer.state_dict()
        state.rng = capture_rng()
        state.rank_rng = dist.gather(state.rng) if dist.active else None
        state.scaler = scaler.state_dict() if scaler is not None else None
        state.carry = task.carry_state()
        state.rank_carry = dist.gather(state.carry) if dist.active else None
        if dist.active:  # a write that fails on rank 0 (disk full) stops every rank, with its message
            dist.agree(lambda: on_checkpoint(state, best))
        else:
            on_checkpoint(state, best)
        state.optimizer = None  # do not keep references to a copy around

    model.train()
    stop = _StopFlag()
    with stop.installed():
        while state.stopped_by is None:
            if state.batch_in_epoch == 0:
                task.start_epoch(state.epoch)
            for batch in task.batches(state.epoch, state.batch_in_epoch):
                if state.step >= total_steps:
                    state.stopped_by = "max_steps" if cfg.max_steps == state.step else "epochs"
                    break
                why = time_or_signal()
                if why:
                    state.stopped_by = why
                    break
                lr = lr_at(cfg, state.step, fraction())
                for g in optimizer.param_groups:
                    g["lr"] = lr * g["lr_scale"]
                with autocast():
                    loss, n_tokens = task.loss(train_model, batch)
                n_tokens *= dist.world
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if cfg.clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip, foreach=True)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                loss_sum += loss.detach().float()
                loss_count += 1
                window_tokens += n_tokens
                state.step += 1
                state.batch_in_epoch += 1
                state.tokens_seen += n_tokens

                if state.step % report_every == 0 or state.step == 1:
                    mean_train_loss()
                    now = time.perf_counter()
                    tokens_per_s = window_tokens / max(1e-9, now - window_t)
                    window_t, window_tokens = now, 0
                    if on_progress:
                        on_progress(snapshot("step"))
                if state.step % cfg.eval_every == 0:
                    evaluate()
                elif state.step % cfg.save_every == 0:
                    save(best=False)
            else:  # the epoch ran out
                state.epoch += 1
                state.batch_in_epoch = 0
                continue
    if state.stopped_by in ("interrupt", "terminate"):
        save(best=False)  # stop promptly: no final evaluation
    elif state.step == 0 or state.step % cfg.eval_every != 0:
        evaluate()  # (a run that stopped right after an evaluation is already saved)
    state.elapsed_s = elapsed()
    if on_progress:
        on_progress(snapshot("end", state.best))
    return state
