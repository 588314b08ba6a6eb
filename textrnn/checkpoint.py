"""The checkpoint directory: everything a trained model needs, and nothing executable.

::

    checkpoints/<run>/
      config.json         the run's configuration (textrnn.runconfig.RunConfig): model, tokenizer kind,
                          training options, data, textrnn version, schema version
      tokenizer.json      the HF tokenizers file
      model.safetensors   the best weights (lowest validation loss / best accuracy)
      metrics.jsonl       one JSON object per evaluation
      samples.jsonl       language models: the text sampled after each evaluation ({"step", "text"})
      last/               the latest state, for --resume
        model.safetensors
        trainer.pt        optimizer, schedule position, data position, RNG, carried state,
                          the averaged weights (--average; training.averaging)

Every file is written under a temporary name, flushed to disk and renamed into place,
and ``last/`` is replaced as a whole directory, so a crash never leaves a torn
checkpoint. Loading never runs pickled code: weights come from safetensors and the
trainer state through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import files
from .errors import TextRNNError
from .runconfig import RunConfig, task_of
from .tokenizer import Tokenizer

CONFIG, TOKENIZER, WEIGHTS, METRICS, SAMPLES, LAST, TRAINER = (
    "config.json", "tokenizer.json", "model.safetensors", "metrics.jsonl", "samples.jsonl", "last", "trainer.pt")


def _cannot_write(path: Path, reason: object) -> TextRNNError:
    return TextRNNError(f"{path}: cannot write the checkpoint ({reason}); "
                        "the previous checkpoint is kept; free disk space or choose --out")


def write_file(dest: str | os.PathLike, data: bytes | str) -> None:
    """Write a checkpoint file whole (:func:`textrnn.files.atomic_write`); a failure is a TextRNNError."""
    try:
        files.atomic_write(dest, data)
    except OSError as e:
        raise _cannot_write(Path(dest), e.strerror or e) from None


def _weights_to_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors as CPU copies, each tied alias once (the first name: loading re-ties the
    rest). Copies, because on CUDA an ``nn.LSTM``'s weights are views into one flat cuDNN buffer,
    which safetensors refuses to save as it is."""
    kept: dict[tuple, str] = {}
    tensors = {}
    for name, t in model.state_dict().items():
        alias = (t.device, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)
        if alias in kept:
            continue
        kept[alias] = name
        tensors[name] = t.detach().to("cpu", copy=True).contiguous()
    return tensors


def save_weights(model: torch.nn.Module, dest: str | os.PathLike) -> None:
    dest = Path(dest)
    tmp = files.temp_beside(dest)
    try:
        save_file(_weights_to_save(model), str(tmp), metadata={"format": "pt"})
        files.commit(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(dest, e.strerror or e) from None


def config_json(run: RunConfig) -> str:
    """config.json's text for ``run``."""
    return json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n"


def write_run_files(run_dir: Path, run: RunConfig, tokenizer: Tokenizer) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_file(run_dir / TOKENIZER, tokenizer.to_json())
    write_file(run_dir / CONFIG, config_json(run))


def write_metrics(run_dir: Path, metrics: list[dict[str, Any]], name: str = METRICS) -> None:
    """Write ``metrics.jsonl`` (or with ``name=SAMPLES``, ``samples.jsonl``): one JSON object a line."""
    write_file(Path(run_dir) / name, "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in metrics))


def read_metrics(run_dir: Path, name: str = METRICS) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (or ``samples.jsonl``); none if the file is missing."""
    path = Path(run_dir) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def save_last(run_dir: Path, model: torch.nn.Module, trainer_state: dict[str, Any]) -> None:
    """Replace ``last/`` as a whole: build it beside, then swap it in by renames."""
    run_dir = Path(run_dir)
    buffer = io.BytesIO()
    torch.save(trainer_state, buffer)  # in memory first: a failure here is a bug, not a full disk
    try:
        tmp = files.temp_dir(run_dir, ".last.")
    except OSError as e:
        raise _cannot_write(run_dir, e.strerror or e) from None
    try:
        save_weights(model, tmp / WEIGHTS)
        with open(tmp / TRAINER, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:  # any failure (a TextRNNError from save_weights too): no half-built last/
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise _cannot_write(run_dir, e.strerror or e) from None
        raise
    last, old = run_dir / LAST, run_dir / (LAST + ".old")
    if last.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(last, old)
    os.replace(tmp, last)
    files.fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)


def last_dir(run_dir: Path) -> Optional[Path]:
    """The newest complete ``last/`` (or ``last.old/`` if a crash hit between the renames)."""
    for name in (LAST, LAST + ".old"):
        d = Path(run_dir) / name
        if (d / WEIGHTS).exists() and (d / TRAINER).exists():
            return d
    return None


def load_trainer_state(run_dir: Path) -> dict[str, Any]:
    d = last_dir(run_dir)
    if d is None:
        raise TextRNNError(f"{run_dir}: has no saved training state to resume from; train it again with --force")
    try:
        return torch.load(d / TRAINER, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise TextRNNError(f"{d / TRAINER}: unreadable or unsafe trainer state ({str(e).splitlines()[0]}); "
                           "the checkpoint is damaged") from None


def require_run(path: str | os.PathLike) -> Path:
    """``path``, if it is a run directory (it has a config.json); else a one-line error."""
    path = Path(path)
    if not path.exists():
        raise TextRNNError(f"{path}: no such checkpoint; give a directory made by `textrnn train`")
    if not path.is_dir() or not (path / CONFIG).exists():
        raise TextRNNError(f"{path}: not a textrnn checkpoint (no {CONFIG}); give a directory made by `textrnn train`")
    return path


def read_run(path: str | os.PathLike) -> RunConfig:
    """The run directory ``path``'s config.json, read into a :class:`RunConfig` (any schema version);
    a missing or damaged file is a one-line error."""
    path = require_run(path)
    try:
        data = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TextRNNError(f"{path / CONFIG}: unreadable ({e}); the checkpoint is damaged") from None
    return RunConfig.from_dict(data, str(path / CONFIG))


@dataclass
class Checkpoint:
    """A loaded checkpoint: its directory, run configuration, tokenizer and model (in eval mode)."""

    path: Path
    run: RunConfig
    tokenizer: Tokenizer
    model: torch.nn.Module

    @property
    def task(self) -> str:
        return self.run.task


def build_model(run: RunConfig) -> torch.nn.Module:
    """The (untrained) network ``run`` describes."""
    from .model import Classifier, LanguageModel

    return LanguageModel(run.model) if run.task == "lm" else Classifier(run.model)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load ``path`` into ``model`` (on any device). Tied aliases saved once count as loaded; an
    export's int8 embedding (weight = int8 * per-row scale) is expanded."""
    if not path.exists():
        raise TextRNNError(f"{path}: missing; the checkpoint is incomplete")
    try:
        state = load_file(str(path), device="cpu")
        for key in [k for k in state if k.endswith(".int8")]:
            base = key[: -len(".int8")]
            state[base] = state.pop(key).float() * state.pop(base + ".scale").float().unsqueeze(1)
        missing, unexpected = model.load_state_dict(state, strict=False)
        own = model.state_dict()
        loaded = {own[n].data_ptr() for n in state if n in own}
        missing = [n for n in missing if own[n].data_ptr() not in loaded]  # tied aliases
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError) as e:
        raise TextRNNError(f"{path}: unreadable or does not match config.json ({str(e).splitlines()[0]})") from None
    if missing or unexpected:
        raise TextRNNError(f"{path}: weights do not match config.json (missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]})")


def load(path: str | os.PathLike, *, which: str = "best", device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint directory, or a shipped model by name (``which`` = ``best`` or ``last`` weights)."""
    path = locate(path)
    if which not in ("best", "last"):
        raise TextRNNError(f"which must be 'best' or 'last', got {which!r}")
    if path.name in (LAST, LAST + ".old") and not (path / CONFIG).exists():
        path, which = path.parent, "last"
    run = read_run(path)
    tokenizer = Tokenizer.load(path / TOKENIZER, run.tokenizer.kind)
    if run.model.vocab_size != tokenizer.vocab_size:
        raise TextRNNError(f"{path}: tokenizer.json has {tokenizer.vocab_size} tokens but the model "
                           f"expects {run.model.vocab_size}; the checkpoint is inconsistent")
    model = build_model(run)
    weights = path / WEIGHTS
    if which == "last":
        d = last_dir(path)
        if d is None:
            raise TextRNNError(f"{path}: has no last/ checkpoint (it is an export, or its run saved none); "
                               "load the best weights instead")
        weights = d / WEIGHTS
    load_weights(model, weights)
    model.int8_products = run.recurrent_dtype == "int8"
    model.to(device).eval()
    return Checkpoint(path, run, tokenizer, model)


# Models that come with textrnn, by name: the fallback when ./checkpoints has none of a kind, and
# what --checkpoint / --init-from / textrnn.load take by name (checkpoints/README.md describes them).
SHIPPED = {name: Path(__file__).resolve().parent.parent / "checkpoints" / name for name in ("english-char", "sst2")}


def locate(run: str | os.PathLike) -> Path:
    """The run directory ``run``, or where it names no directory, the shipped model of that name."""
    path = Path(run)
    if not path.exists() and str(run) in SHIPPED:
        return SHIPPED[str(run)]
    return path


def _runs_of(task: str, dirs) -> list[tuple[float, Path]]:
    found = []
    for d in dirs:
        try:
            data = json.loads((d / CONFIG).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or task_of(data) != task:  # (a damaged one is told when loaded)
                continue
        except (OSError, ValueError):
            continue
        if (d / WEIGHTS).exists():
            found.append(((d / WEIGHTS).stat().st_mtime, d))
    return found


def find_latest(root: str | os.PathLike = "checkpoints", task: str = "lm") -> Path:
    """The most recently trained checkpoint of ``task`` under ``root``, else the one
    textrnn ships for that task (``english-char``, the SST-2 sentiment classifier)."""
    root = Path(root)
    found = _runs_of(task, [c.parent for c in root.glob(f"*/{CONFIG}")] if root.is_dir() else [])
    found = found or _runs_of(task, SHIPPED.values())
    if not found:
        what = "language model" if task == "lm" else "classifier"
        raise TextRNNError(f"no trained {what} under {root}/; train one with `textrnn train` "
                           "or pass --checkpoint DIR")
    return max(found)[1]
