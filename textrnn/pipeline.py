"""Wiring the stages into a training run (the function ``textrnn train`` calls).

corpus files -> read -> split -> tokenizer -> ids -> LMBatches -> LanguageModel -> fit
-> checkpoint directory. Each stage is a plain call into its module; this file only
decides the order, the run directory and what is saved when.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__, checkpoint
from .config import ModelConfig, TrainConfig
from .data import LMBatches, compact_ids, eval_batches, read_corpus, split_validation
from .errors import TextRNNError
from .model import LanguageModel, State, detach_state
from .tokenizer import Tokenizer, chunks, train_tokenizer
from .trainer import Progress, TrainerState, fit, seed_everything

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "tinyshakespeare.txt"
MODEL_FIELDS = {"cell", "layers", "hidden", "embed", "dropout", "tie_weights"}
TRAIN_FIELDS = set(TrainConfig.__dataclass_fields__)
# options a resumed run may change: when to stop, how often to report and save
RESUMABLE_CHANGES = {"epochs", "max_steps", "max_time", "eval_every", "save_every", "device"}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TextRNNError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TextRNNError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)


class LMTask:
    """Language modelling for :func:`textrnn.train.fit`: carried state, next-token loss."""

    def __init__(self, train: LMBatches, val: LMBatches, device: torch.device, chars_per_val_token: float):
        self.train, self.val, self.device = train, val, device
        self.chars_per_val_token = chars_per_val_token
        self.state: Optional[State] = None

    def steps_per_epoch(self) -> int:
        return self.train.windows_in_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        self.state = None  # streams restart at a new offset: nothing to carry

    def batches(self, epoch: int, start: int):
        for w in range(start, self.train.windows_in_epoch(epoch)):
            yield self.train.window(epoch, w)

    def loss(self, model: LanguageModel, batch) -> tuple[torch.Tensor, int]:
        x, y = (t.to(self.device, non_blocking=True) for t in batch)  # (B, T) each
        logits, state = model(x, self.state)  # (B, T, V)
        self.state = detach_state(state)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten()), x.numel()

    def evaluate(self, model: LanguageModel) -> dict[str, float]:
        total, count, state = 0.0, 0, None
        for x, y in self.val:
            x, y = x.to(self.device), y.to(self.device)
            logits, state = model(x, state)
            total += float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
            count += y.numel()
        loss = total / count
        return {"val_loss": round(loss, 5), "val_ppl": round(math.exp(min(loss, 50.0)), 3),
                "val_bpc": round(loss / self.chars_per_val_token / math.log(2), 5)}

    def is_better(self, metrics, best) -> bool:
        return best is None or metrics["val_loss"] < best["val_loss"]

    def carry_state(self) -> dict[str, torch.Tensor]:
        if self.state is None:
            return {}
        if isinstance(self.state, tuple):
            return {"h": self.state[0].cpu(), "c": self.state[1].cpu()}
        return {"h": self.state.cpu()}

    def load_carry_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if "c" in tensors:
            self.state = (tensors["h"].to(self.device), tensors["c"].to(self.device))
        elif "h" in tensors:
            self.state = tensors["h"].to(self.device)


@dataclass
class RunResult:
    """What a training run produced."""

    path: Path
    best: Optional[dict[str, Any]]
    steps: int
    elapsed_s: float
    stopped_by: Optional[str]
    tokens_seen: int


def default_run_dir(corpus: Sequence[str | Path]) -> Path:
    return Path("checkpoints") / Path(corpus[0]).stem


def _prepare_run_dir(out: Path, resume: bool, force: bool) -> bool:
    """Returns True when an existing run is to be resumed."""
    exists = out.exists() and any(out.iterdir()) if out.is_dir() else out.exists()
    if out.exists() and not out.is_dir():
        raise TextRNNError(f"--out {out}: is a file; give a directory for the run")
    if resume:
        if not (out / checkpoint.CONFIG).exists():
            raise TextRNNError(f"--resume: {out} has no run to resume; drop --resume to start a new one")
        return True
    if exists:
        if not force:
            raise TextRNNError(f"{out}: a run already exists there; pass --resume to continue it, "
                               f"--force to overwrite it, or --out to choose another directory")
        if not (out / checkpoint.CONFIG).exists():
            raise TextRNNError(f"{out}: exists and is not a textrnn run; --force only replaces runs; choose another --out")
        shutil.rmtree(out)
    return False


def _differences(saved: dict[str, Any], given: dict[str, Any]) -> list[str]:
    return [f"{k}: checkpoint has {saved.get(k)!r}, given {v!r}" for k, v in given.items()
            if k in saved and saved.get(k) != v]


def train_language_model(
    corpus: Optional[Sequence[str | Path]] = None,
    *,
    out: Optional[str | Path] = None,
    tokenizer: str = "char",
    vocab_size: Optional[int] = None,
    val_file: Optional[str | Path] = None,
    encoding: str = "utf-8",
    resume: bool = False,
    force: bool = False,
    on_progress: Optional[Callable[[Progress], None]] = None,
    report_every: int = 10,
    **options: Any,
) -> RunResult:
    """Train a language model on text files and write its checkpoint directory.

    ``options`` are :class:`ModelConfig` and :class:`TrainConfig` fields (``hidden=256``,
    ``max_time="5m"``, ...); those not given take the tuned defaults, or on ``resume``
    the run's own values. ``on_progress`` is called every ``report_every`` steps and
    after each evaluation.
    """
    unknown = set(options) - MODEL_FIELDS - TRAIN_FIELDS
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    options = {k: v for k, v in options.items() if v is not None}
    corpus = [Path(c) for c in (corpus or [DEFAULT_CORPUS])]
    out = Path(out) if out is not None else default_run_dir(corpus)
    resuming = _prepare_run_dir(out, resume, force)

    text = read_corpus(corpus, encoding)
    corpus_sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    if resuming:
        saved = checkpoint.read_config(out)
        diffs = _differences(saved["model"], {k: v for k, v in options.items() if k in MODEL_FIELDS})
        diffs += _differences(saved["train"], {k: v for k, v in options.items()
                                               if k in TRAIN_FIELDS - RESUMABLE_CHANGES})
        diffs += _differences(saved["tokenizer"], {"kind": tokenizer} if tokenizer != saved["tokenizer"]["kind"] else {})
        if saved["data"]["corpus_sha256"] != corpus_sha:
            diffs.append(f"corpus: checkpoint was trained on {', '.join(saved['data']['corpus'])}, "
                         f"given {', '.join(map(str, corpus))} (different text)")
        if diffs:
            raise TextRNNError(f"--resume {out}: options contradict the checkpoint: " + "; ".join(diffs))
        tcfg = TrainConfig.from_dict({**saved["train"], **{k: v for k, v in options.items() if k in TRAIN_FIELDS}})
        tok = Tokenizer.load(out / checkpoint.TOKENIZER, saved["tokenizer"]["kind"])
        mcfg = ModelConfig.from_dict(saved["model"])
        val_file = saved["data"].get("val_file")
    else:
        tcfg = TrainConfig(**{k: v for k, v in options.items() if k in TRAIN_FIELDS})

    if val_file is not None:
        train_text, val_text = text, read_corpus([val_file], encoding)
    else:
        train_text, val_text = split_validation(text, tcfg.val_fraction)
    if not resuming:
        tok = train_tokenizer(tokenizer, chunks([train_text]), vocab_size)
        mcfg = ModelConfig(vocab_size=tok.vocab_size, **{k: v for k, v in options.items() if k in MODEL_FIELDS})

    train_ids = compact_ids(tok.encode(train_text), tok.vocab_size)
    val_ids = compact_ids(tok.encode(val_text), tok.vocab_size)
    name = ", ".join(map(str, corpus))
    train_batches = LMBatches(train_ids, tcfg.batch_size, tcfg.seq_len, seed=tcfg.seed, name=name)
    val_batches = eval_batches(val_ids, tcfg.seq_len, name=f"{name} (validation part)" if val_file is None else str(val_file))

    device = resolve_device(tcfg.device)
    seed_everything(tcfg.seed)
    model = LanguageModel(mcfg).to(device)
    state = None
    metrics: list[dict[str, Any]] = []
    if resuming:
        raw = checkpoint.load_trainer_state(out)
        checkpoint.load_weights(model, checkpoint.last_dir(out) / checkpoint.WEIGHTS)
        model.to(device)
        state = TrainerState.from_dict(raw)
        metrics = [m for m in checkpoint.read_metrics(out) if m["step"] <= state.step]
    else:
        config = {
            "textrnn_version": __version__,
            "task": "lm",
            "model": mcfg.to_dict(),
            "tokenizer": {"kind": tok.kind, "vocab_size": tok.vocab_size, "requested_vocab_size": vocab_size},
            "train": tcfg.to_dict(),
            "data": {"corpus": [str(c) for c in corpus], "corpus_sha256": corpus_sha, "encoding": encoding,
                     "val_file": str(val_file) if val_file else None,
                     "train_chars": len(train_text), "val_chars": len(val_text),
                     "train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids))},
        }
        checkpoint.write_run_files(out, config, tok)

    task = LMTask(train_batches, val_batches, device, chars_per_val_token=len(val_text) / max(1, len(val_ids)))

    def on_checkpoint(st: TrainerState, best: bool) -> None:
        if best:
            checkpoint.save_weights(model, out / checkpoint.WEIGHTS)
        checkpoint.save_last(out, model, st.to_dict())

    def progress(p: Progress) -> None:
        if p.event == "eval" and p.metrics is not None:
            metrics.append(p.metrics)
            checkpoint.write_metrics(out, metrics)
        if on_progress:
            on_progress(p)

    final = fit(model, task, tcfg, state=state, on_progress=progress, on_checkpoint=on_checkpoint,
                report_every=report_every)
    return RunResult(out, final.best, final.step, final.elapsed_s, final.stopped_by, final.tokens_seen)
