"""Typed, self-validating configuration.

:class:`ModelConfig` describes the network, :class:`TrainConfig` how it is trained. Both
validate on construction and round-trip through plain dicts (they are saved in a
checkpoint's ``config.json``). Defaults are the tuned ones: they are what users get.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Optional

from .errors import TextRNNError

CELLS = ("lstm", "gru", "rnn")
TOKENIZERS = ("char", "word", "bpe")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _positive(name: str, value: float) -> None:
    if value is None or value <= 0:
        raise TextRNNError(f"--{name.replace('_', '-')} must be positive, got {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TextRNNError(
            f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, got {value!r}"
        )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def parse_duration(text: str | float | int | None) -> Optional[float]:
    """Parse ``45s``, ``5m``, ``1h30m``, ``90`` (seconds) into seconds; None stays None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = text.strip().lower().replace(" ", "")
        try:
            seconds = float(s)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION_PART.finditer(s):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)]
                pos = m.end()
            if pos != len(s) or not s:
                raise TextRNNError(
                    f"--max-time: cannot parse {text!r}; use a duration like 45s, 5m or 1h30m"
                ) from None
    if seconds <= 0:
        raise TextRNNError(f"--max-time must be positive, got {text!r}")
    return seconds


class _DictMixin:
    """Round-trip through plain dicts (``config.json``); unknown keys are ignored."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})


# Defaults that differ for the classifier (the dataclass defaults are the language model's).
CLASSIFIER_DEFAULTS: dict[str, Any] = {
    "hidden": 384, "embed": 256, "bidirectional": True, "dropout": 0.5, "embed_dropout": 0.1,
    "batch_size": 256, "lr": 4e-3, "warmup_steps": 50, "eval_every": 100, "save_every": 100,
    "weight_decay": 0.01,
}  # tuned on SST-2 (dev accuracy); see benchmarks/sst2_recipe.sh
CLASSIFIER_EPOCHS = 5.0  # when no --epochs / --max-steps / --max-time is given


@dataclass
class ModelConfig(_DictMixin):
    """The shape of the network. Saved in the checkpoint; enough to rebuild the model."""

    vocab_size: int
    """Number of token ids (set from the tokenizer)."""
    cell: str = "lstm"
    """Recurrent cell: ``lstm``, ``gru`` or ``rnn`` (tanh)."""
    layers: int = 1
    """Stacked recurrent layers."""
    hidden: int = 512
    """Hidden units per layer."""
    embed: int = 64
    """Token embedding size."""
    dropout: float = 0.0
    """Dropout on the embedding and on the recurrent output (and between layers). The
    default 0 suits short runs on small corpora (a 5-minute run underfits); raise it for
    long runs or larger models."""
    embed_dropout: float = 0.0
    """Drop whole word types from the embedding while training (AWD-LSTM's embedding
    dropout): every occurrence of a dropped token reads zeros in that step."""
    tie_weights: bool = False
    """Share the embedding matrix with the output layer (needs ``embed == hidden``)."""
    bidirectional: bool = False
    """Read the text both ways (classifier only: a language model must not see the future)."""
    num_classes: Optional[int] = None
    """Number of labels (classifier only; set from the data)."""

    def __post_init__(self) -> None:
        _choice("cell", self.cell, CELLS)
        for name in ("vocab_size", "layers", "hidden", "embed"):
            _positive(name, getattr(self, name))
        if self.num_classes is not None and self.num_classes < 2:
            raise TextRNNError(f"a classifier needs at least two classes, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise TextRNNError(f"--dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.embed_dropout < 1.0:
            raise TextRNNError(f"--embed-dropout must be in [0, 1), got {self.embed_dropout!r}")
        if self.tie_weights and self.embed != self.hidden:
            raise TextRNNError(
                f"--tie-weights needs --embed equal to --hidden (got {self.embed} and {self.hidden})"
            )


@dataclass
class TrainConfig(_DictMixin):
    """How a model is trained. Saved in the checkpoint for resume and provenance."""

    batch_size: int = 32
    """Number of parallel streams (LM) or texts per batch (classifier)."""
    seq_len: int = 128
    """Tokens per truncated-BPTT window (language model)."""
    max_len: int = 512
    """Classifier: texts are cut to their first ``max_len`` tokens."""
    lr: float = 6e-3
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and embeddings)."""
    warmup_steps: int = 100
    """Linear warm-up steps before the cosine decay."""
    min_lr_ratio: float = 0.05
    """The cosine schedule ends at ``lr * min_lr_ratio``."""
    clip: float = 1.0
    """Gradient-norm clipping threshold."""
    epochs: Optional[float] = None
    """Stop after this many passes over the training tokens (10 when no limit is given)."""
    max_steps: Optional[int] = None
    """Stop after this many optimizer steps."""
    max_time: Optional[float] = None
    """Stop after this many seconds of training (evaluation included)."""
    eval_every: int = 500
    """Evaluate on the validation set every this many steps (and at the end)."""
    save_every: int = 500
    """Write the ``last`` checkpoint every this many steps."""
    val_fraction: float = 0.1
    """Fraction of the corpus, taken from its end, held out for validation."""
    val_max_bytes: Optional[int] = 2_000_000
    """At most this many bytes are held out (so a 1 GB corpus does not spend 100 MB, and
    minutes per evaluation, on validation); None for no cap."""
    seed: int = 1234
    """Seed for weights, data order and dropout."""
    device: str = "auto"
    """``auto`` (CUDA when present, else MPS, else CPU), ``cpu``, ``cuda`` or ``mps``."""
    precision: str = "auto"
    """``auto`` (bf16 autocast on CUDA GPUs that have it, else fp16; float32 elsewhere),
    ``fp32``, ``bf16`` or ``fp16`` (CUDA only; with a gradient scaler)."""
    compile: bool = False
    """Run the training step through ``torch.compile``."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "max_len", "lr", "eval_every", "save_every"):
            _positive(name, getattr(self, name))
        for name in ("epochs", "max_steps"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        self.max_time = parse_duration(self.max_time)
        if self.warmup_steps < 0:
            raise TextRNNError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.clip is not None and self.clip <= 0:
            raise TextRNNError(f"--clip must be positive, got {self.clip}")
        if not 0.0 < self.val_fraction < 1.0:
            raise TextRNNError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise TextRNNError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise TextRNNError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if self.val_max_bytes is not None:
            _positive("val_max_bytes", self.val_max_bytes)
        if self.epochs is None and self.max_steps is None and self.max_time is None:
            self.epochs = 10.0  # about 5 minutes on tiny-shakespeare with a 2-core CPU


# -- what the pipelines ask of the options ---------------------------------------------
MODEL_OPTIONS = frozenset(f.name for f in dataclasses.fields(ModelConfig)) - {"vocab_size", "num_classes"}
"""ModelConfig fields a user sets (the rest come from the tokenizer and the labels)."""
TRAIN_OPTIONS = frozenset(f.name for f in dataclasses.fields(TrainConfig))
STOP_OPTIONS = ("epochs", "max_steps", "max_time")
RESUMABLE = frozenset({"epochs", "max_steps", "max_time", "eval_every", "save_every", "device", "precision",
                       "compile"})
"""Options a resumed run may change: when to stop, how often to report and save, where it runs."""


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The given (not None) options, as (model options, training options); unknown names
    are a TypeError (a programming mistake, not a user one)."""
    unknown = set(options) - MODEL_OPTIONS - TRAIN_OPTIONS
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    given = {k: v for k, v in options.items() if v is not None}
    return ({k: v for k, v in given.items() if k in MODEL_OPTIONS},
            {k: v for k, v in given.items() if k in TRAIN_OPTIONS})


def task_defaults(task: str, options: frozenset[str]) -> dict[str, Any]:
    """The defaults of ``task`` that differ from the dataclasses' (which are the language
    model's), restricted to ``options``."""
    defaults = CLASSIFIER_DEFAULTS if task == "classify" else {}
    return {k: v for k, v in defaults.items() if k in options}


def train_config(task: str, given: dict[str, Any]) -> TrainConfig:
    """A new run's TrainConfig: ``task``'s defaults overridden by the ``given`` options."""
    defaults = task_defaults(task, TRAIN_OPTIONS)
    if task == "classify" and not any(k in given for k in STOP_OPTIONS):
        defaults["epochs"] = CLASSIFIER_EPOCHS
    return TrainConfig(**{**defaults, **given})


def model_config(task: str, given: dict[str, Any], **fixed: Any) -> ModelConfig:
    """A new run's ModelConfig: ``task``'s defaults, the ``given`` options, then ``fixed``
    (vocab_size, num_classes, or a pretrained model's shape)."""
    return ModelConfig(**{**task_defaults(task, MODEL_OPTIONS), **given, **fixed})
