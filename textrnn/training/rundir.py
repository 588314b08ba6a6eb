"""The run directory during training: one job at a time, never overwritten by mistake,
resumed only with options that agree, and written as checkpoints are due.

The files themselves (config.json, weights, last/, metrics.jsonl) are
:mod:`textrnn.checkpoint`'s; this module decides when which is written:

- :func:`open_run` checks ``--out`` / ``--resume`` / ``--force`` and holds :class:`RunLock`;
- :func:`check_resume` compares the given options with the saved run;
- :func:`execute` runs the trainer, replacing an old run (``--force``) only once the new
  one starts, samples text after each evaluation (language models), and writes metrics,
  samples, best weights (the averaged ones when they scored better, ``--average``) and
  ``last/`` at every checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from .. import checkpoint
from ..config import RESUMABLE, TrainConfig
from ..data.corpus import GLOB_CHARS
from ..errors import TextRNNError
from ..inference.scoring import evaluate_model, loss_metrics
from ..runconfig import RunConfig
from ..tokenizer import Tokenizer
from .averaging import best_weights
from .distributed import Dist
from .trainer import Progress, TrainerState, train_loop

LOCK = ".lock"


@dataclass
class RunResult:
    """What a training run produced."""

    path: Path
    best: Optional[dict[str, Any]]
    steps: int
    elapsed_s: float
    stopped_by: Optional[str]
    tokens_seen: int
    test: Optional[dict[str, Any]] = None  # test_* metrics of --test-file (language models)
    folds: Optional[dict[str, Any]] = None  # a classifier's --folds cross-validation (training.folds.summary)


def default_run_dir(first_input: str | Path) -> Path:
    """``checkpoints/<name>``: a file's stem, a folder's name, a glob's fixed part
    (``books/*.txt`` -> ``books``)."""
    parts = Path(first_input).parts
    fixed = next((i for i, part in enumerate(parts) if set(part) & GLOB_CHARS), len(parts))
    path = Path(*parts[:fixed]) if fixed else Path(".")
    name = path.stem if fixed == len(parts) else path.name
    if name in ("", ".", ".."):
        name = path.resolve().name or "corpus"
    return Path("checkpoints") / name


def _unusable(run_dir: Path, e: OSError) -> TextRNNError:
    return TextRNNError(f"--out {run_dir}: cannot create or write the run directory ({e.strerror or e}); "
                        "choose another --out")


class RunLock:
    """Exclusive use of a run directory by one training process.

    An ``flock`` on ``<run>/.lock``: a second ``textrnn train`` on the same directory is
    refused, and since the kernel drops the lock when its process dies (even by SIGKILL),
    a crashed run never leaves the directory stuck. A no-op where ``fcntl`` is missing.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK
        self.fd: Optional[int] = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # Windows
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise _unusable(self.path.parent, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise TextRNNError(f"{self.path.parent}: another textrnn process (pid {holder}) is training "
                               "into this directory; wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


def _check_out(out: Path, resume: bool, force: bool) -> bool:
    """Whether ``out`` holds a run to resume; an error when it holds one that the options
    would overwrite, or something else."""
    try:
        if out.exists() and not out.is_dir():
            raise TextRNNError(f"--out {out}: is a file; give a directory for the run")
        existed = out.is_dir() and any(p.name != LOCK for p in out.iterdir())
    except OSError as e:
        raise _unusable(out, e) from None
    if existed and not resume and not force:
        raise TextRNNError(f"{out}: a run already exists there; pass --resume to continue it, "
                           f"--force to overwrite it, or --out to choose another directory")
    if existed and not (out / checkpoint.CONFIG).exists():
        raise TextRNNError(f"{out}: exists and is not a textrnn run; choose another --out")
    if resume and not existed:
        raise TextRNNError(f"--resume: {out} has no run to resume; drop --resume to start a new one")
    return bool(resume)


@contextlib.contextmanager
def open_run(out: Path, resume: bool, force: bool, dist: Optional[Dist] = None) -> Iterator[bool]:
    """Lock the run directory for this job and check it; yields True when an existing
    run is to be resumed. The lock is held (by rank 0) until the run ends."""
    dist = dist or Dist()
    lock = RunLock(out)
    created = not out.exists()
    resuming = dist.agree(lambda: _check_out(out, resume, force))
    dist.agree(lambda: lock.__enter__() if dist.is_main else None)
    try:
        yield resuming  # (--force replaces the old run only once the new one starts: execute)
    finally:
        lock.__exit__()
        if created and dist.is_main and [p.name for p in out.iterdir()] == [LOCK]:
            shutil.rmtree(out, ignore_errors=True)  # failed before writing anything: leave no trace


def check_resume(out: Path, task: str, model_opts: dict, train_opts: dict, tokenizer: Optional[str],
                 data_sha: str, data_names: Sequence[str], dist: Optional[Dist] = None,
                 data_what: str = "text") -> RunConfig:
    """The saved configuration of the run in ``out``, after checking that the given options agree
    (``data_what`` names what ``data_sha`` covers, for the message)."""
    saved = checkpoint.read_run(out)
    world, now = saved.distributed.world_size, (dist or Dist()).world
    if world != now:
        raise TextRNNError(f"--resume {out}: the run was trained by {world} process(es), this job has "
                           f"{now}; resume with torchrun --nproc-per-node {world} "
                           "(the data layout depends on it)")
    if saved.task != task:
        raise TextRNNError(f"--resume {out}: that run trains a {saved.task} model, not a {task} model")
    diffs = [f"{k}: checkpoint has {getattr(saved.model, k)!r}, given {v!r}"
             for k, v in model_opts.items() if getattr(saved.model, k) != v]
    diffs += [f"{k}: checkpoint has {getattr(saved.train, k)!r}, given {v!r}"
              for k, v in train_opts.items()
              if k not in RESUMABLE and getattr(saved.train, k) != getattr(TrainConfig(**{k: v}), k)]
    if tokenizer is not None and tokenizer != saved.tokenizer.kind:
        diffs.append(f"tokenizer: checkpoint has {saved.tokenizer.kind!r}, given {tokenizer!r}")
    if saved.data.sha256 != data_sha:
        diffs.append(f"data: checkpoint was trained on {', '.join(saved.data.files)}, "
                     f"given {', '.join(data_names)} (different {data_what})")
    if diffs:
        raise TextRNNError(f"--resume {out}: options contradict the checkpoint: " + "; ".join(diffs))
    return saved


def remove_leftovers(run_dir: Path) -> None:
    """Delete temporary files and directories a killed process left half-written: ours
    (``.last.*/``, ``.*.tmp``) and safetensors' own (``.tmpXXXXXX``, written before it renames)."""
    for p in Path(run_dir).glob(".*"):
        if p.name.startswith(".last.") and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif (p.name.endswith(".tmp") or p.name.startswith(".tmp")) and p.is_file():
            p.unlink(missing_ok=True)


def _start(out: Path, run: RunConfig, tok: Tokenizer, model: torch.nn.Module, resuming: bool,
           dist: Dist) -> tuple[Optional[TrainerState], list[dict[str, Any]], list[dict[str, Any]]]:
    """The trainer state, metrics and samples to go on from: the run's ``last/`` when resuming
    (its weights loaded into ``model``), else none, after the run's files are (re)written."""
    if resuming and checkpoint.last_dir(out) is not None:
        if dist.is_main:
            remove_leftovers(out)
        dist.barrier()
        state = TrainerState.from_dict(checkpoint.load_trainer_state(out))
        checkpoint.load_weights(model, checkpoint.last_dir(out) / checkpoint.WEIGHTS)
        # (a --test-file result is of the run before: it is scored again at the end)
        return state, *([m for m in checkpoint.read_metrics(out, name) if m["step"] <= state.step
                         and m.get("event") != "test"] for name in (checkpoint.METRICS, checkpoint.SAMPLES))
    if dist.is_main:  # a new run (or one stopped before its first save: start it again)
        for p in out.iterdir():  # an old run that --force replaces (open_run checked it is one)
            if p.name != LOCK:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        checkpoint.write_run_files(out, run, tok)
    return None, [], []


def execute(out: Path, run: RunConfig, tok: Tokenizer, model: torch.nn.Module, task: Any,
            tcfg: TrainConfig, resuming: bool, on_progress: Optional[Callable[[Progress], None]],
            report_every: int, optimizer: Optional[torch.optim.Optimizer] = None,
            dist: Optional[Dist] = None, sample: Optional[Callable[[torch.nn.Module], str]] = None) -> RunResult:
    """Run ``train_loop`` with checkpointing into ``out`` (fresh, or resumed from ``out/last``).
    In a distributed job only rank 0 writes; every rank resumes from the same files.
    ``sample(model)``: text to keep in ``samples.jsonl`` and hand to ``on_progress`` (``Progress.sample``)
    after each evaluation (rank 0 only); it must leave the model in training mode and the RNGs untouched."""
    dist = dist or Dist()
    state, metrics, samples = _start(out, run, tok, model, resuming, dist)

    def on_checkpoint(st: TrainerState, best: bool) -> None:
        if not dist.is_main:
            return
        checkpoint.write_metrics(out, metrics)
        if sample is not None:
            checkpoint.write_metrics(out, samples, checkpoint.SAMPLES)
        if best:  # (the averaged weights when they scored better: --average)
            with best_weights(model, st.best, st.average):
                checkpoint.save_weights(model, out / checkpoint.WEIGHTS)
        checkpoint.save_last(out, model, st.to_dict())

    def progress(p: Progress) -> None:
        if p.event == "eval" and p.metrics is not None:
            metrics.append(p.metrics)  # (written with the checkpoint that follows every evaluation)
            if sample is not None and dist.is_main:
                p.sample = sample(model)
                samples.append({"step": p.step, "text": p.sample})
        if on_progress:
            on_progress(p)

    final = train_loop(model, task, tcfg, state=state, optimizer=optimizer, on_progress=progress,
                       on_checkpoint=on_checkpoint, report_every=report_every, dist=dist)
    return RunResult(out, final.best, final.step, final.elapsed_s, final.stopped_by, final.tokens_seen)


def test_run(result: RunResult, test_file: str | os.PathLike, device: torch.device) -> RunResult:
    """``train --test-file``: the run's best weights scored on ``test_file``; ``test_*`` appended
    to its metrics.jsonl and returned in ``result.test``."""
    ck = checkpoint.load(result.path, device=device)
    found = evaluate_model(ck.model, ck.tokenizer, ck.run, [test_file])[0]
    test = {"event": "test", "step": (result.best or {}).get("step", result.steps), "test_file": str(test_file),
            **loss_metrics(found["loss"] * found["scored"], found["scored"], found["chars"] / found["tokens"], "test"),
            "test_word_ppl": round(found["word_perplexity"], 3), "test_tokens": found["tokens"]}
    checkpoint.write_metrics(result.path, [*checkpoint.read_metrics(result.path), test])
    return dataclasses.replace(result, test=test)
