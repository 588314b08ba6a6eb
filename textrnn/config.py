"""Typed, self-validating configuration, and the one declaration of every training option.

:class:`ModelConfig` describes the network, :class:`TrainConfig` how it is trained. Both
validate on construction and round-trip through plain dicts (they are saved in a
checkpoint's ``config.json``). Defaults are the tuned ones: they are what users get.

Every option of ``textrnn train`` is declared once, as a dataclass field made by
:func:`option`: its type (the annotation), its default, the classifier's default where it
differs, its help text, its choices, and whether a resumed run may change it. From these
declarations come the command-line options and their help (:mod:`textrnn.cli.options`),
the per-task defaults (:func:`task_defaults`), :data:`RESUMABLE` and the early checks of
:func:`check_options`. :class:`RunOptions` and :class:`DataOptions` declare the options
that are not part of the saved configs (the pipelines take them as keyword arguments).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .declare import (DictMixin, check_choice, check_choices, check_positive, check_probability, option,
                      options_of, parse_duration)
from .errors import TextRNNError

TASKS = ("lm", "classify")
CELLS = ("lstm", "gru", "rnn", "mingru", "minlstm")
MIN_CELLS = ("mingru", "minlstm")  # gates that read only the input: no hidden-to-hidden weights
TOKENIZERS = ("char", "word", "bpe")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AVERAGES = ("off", "ema", "swa")
VOCAB_SIZES = {"word": 20000, "bpe": 4096}  # a tokenizer's size when --vocab-size is not given


def parse_cutoffs(text: Optional[str]) -> Optional[str]:
    """``--adaptive-cutoffs``: ``"2000,10000"`` (increasing positive whole numbers) checked; None stays None."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts) or any(
            int(a) >= int(b) for a, b in zip(parts, parts[1:])):
        raise TextRNNError(f"--adaptive-cutoffs: cannot use {text!r}; give increasing positive whole numbers "
                           "below the vocabulary size, like 2000,10000")
    return ",".join(parts)


def auto_cutoffs(vocab_size: int) -> list[int]:
    """The adaptive softmax's cutoffs when --adaptive-cutoffs is not given: a head of the most
    frequent tenth of the vocabulary, a first tail cluster up to half of it, a second for the rest
    (20,000 words: 2000,10000; 4096 BPE tokens: 409,2048); cutoffs at 0 or past the end are dropped."""
    return sorted({c for c in (vocab_size // 10, vocab_size // 2) if 0 < c < vocab_size})


@dataclass
class RunOptions:
    """What ``textrnn train`` trains and where it writes (declarations of options)."""

    task: Optional[str] = option(None, "What to train.", choices=TASKS,
                                 default_text="classify for a .csv/.tsv/.jsonl input, else lm")
    out: Optional[Path] = option(None, "Run directory.", short="-o", default_text="checkpoints/<input name>")
    resume: bool = option(False, "Continue the run in --out from its last checkpoint.", off="")
    force: bool = option(False, "Overwrite an existing run in --out.", off="")
    folds: Optional[int] = option(None, "Before training on every row, estimate how good the classifier will be: "
                                        "train it K times, each time scoring the K-th part of the rows it did not "
                                        "see (stratified k-fold cross-validation; folds.json in the run).",
                                  only="classify", metavar="K")


@dataclass
class DataOptions:
    """What the run reads and how (declarations of options)."""

    tokenizer: str = option("char", "How text becomes tokens: char (Unicode code points), word, or bpe (byte-level).",
                            classify="word", choices=TOKENIZERS)
    vocab_size: Optional[int] = option(None, "Vocabulary cap (word) or size (bpe).",
                                       default_text=", ".join(f"{n} {k}" for k, n in VOCAB_SIZES.items()))
    val_file: Optional[Path] = option(None, "Validate on this file instead of holding out --val-fraction.")
    test_file: Optional[Path] = option(None, "At the end, score the best weights on this text file (test_* in "
                                             "metrics.jsonl; see textrnn evaluate).", only="lm")
    text_column: Optional[str] = option(None, "Table input: the text column.",
                                        default_text="a column named text, sentence, review, ...")
    label_column: Optional[str] = option(None, "The label column.", only="classify",
                                         default_text="a column named label, sentiment, ...")
    format: Optional[str] = option(None, "Input format (csv | tsv | jsonl | txt).", only="classify",
                                   default_text="by extension")
    init_from: Optional[Path] = option(None, "Start from this run (a run directory, or a shipped model's name: "
                                             "english-char, sst2): a language model fine-tunes a language model (its "
                                             "tokenizer, plus the corpus's new characters; its weights and size); a "
                                             "classifier takes a language model's tokenizer, embedding and recurrent "
                                             "layers, or a whole classifier (plus the rows' new words; its head as "
                                             "--head says).", metavar="RUN")
    head: str = option("auto", "Classifier --init-from a classifier: keep its output layer (its labels, matched by "
                               "name; the rows' labels must be among them), a new one for the rows' labels, or auto: "
                               "the matched labels' weights kept, new labels' new.", only="classify",
                       choices=("auto", "keep", "new"))
    condition_column: Optional[str] = option(None, "Table input: train one model on every row's text, conditioned on "
                                                   "its label in this column (then: generate --condition LABEL).",
                                             only="lm")
    encoding: str = option("utf-8", "Text encoding of the input (on --resume: the run's own unless given).")
    dataset: Optional[str] = option(None, "Train on a Hugging Face dataset (INPUTS are then its data files, for "
                                          "builders such as text, csv, json).", only="lm", metavar="NAME[:CONFIG]",
                                    misuse="--dataset trains language models; for a classifier give a labelled file")


@dataclass
class ModelConfig(DictMixin):
    """The shape of the network. Saved in the checkpoint; enough to rebuild the model."""

    vocab_size: int
    """Number of token ids (set from the tokenizer)."""
    cell: str = option("lstm", "Recurrent cell (rnn: a plain tanh RNN; mingru, minlstm: Feng et al. 2024's minimal "
                               "cells, gates that read only the input, trained with a parallel scan).", choices=CELLS)
    layers: int = option(1, "Stacked recurrent layers.", fitted=True)
    hidden: int = option(512, "Hidden units per layer.", classify=384, fitted=True)
    embed: int = option(64, "Token embedding size.", classify=256, fitted=True)
    # the language model's 0 suits short runs on small corpora (a 5-minute run underfits);
    # raise it for long runs or larger models
    dropout: float = option(0.0, "Dropout on the embedding, between layers and on the recurrent output.",
                            classify=0.5)
    embed_dropout: float = option(0.0, "Drop whole tokens from the embedding while training (AWD-LSTM): "
                                       "every occurrence of a dropped token reads zeros in that step.", classify=0.1)
    tie_weights: bool = option(False, "Language model: share the embedding with the output layer (when --embed "
                                      "differs from --hidden, through a hidden-to-embed projection).")
    # AWD-LSTM regularization (Merity et al. 2018); 0 leaves the network as without them
    input_dropout: float = option(0.0, "Locked dropout on the embedding output (one mask per sequence, the same "
                                       "at every time step).", only="lm", fitted=True)
    hidden_dropout: float = option(0.0, "Locked dropout between recurrent layers (the layers then run one at a "
                                        "time).", only="lm")
    output_dropout: float = option(0.0, "Locked dropout on the last layer's output, before the output layer.",
                                   only="lm", fitted=True)
    weight_drop: float = option(0.0, "Weight drop (DropConnect) on the hidden-to-hidden weights (a new mask per "
                                     "batch; the fused cuDNN/oneDNN kernel is kept).", only="lm", fitted=True)
    adaptive_softmax: bool = option(False, "Adaptive softmax output layer (Grave et al. 2017): frequent tokens in "
                                           "a small head, rare ones in smaller clusters; much faster with a large "
                                           "vocabulary (word, bpe). Not with --tie-weights.", only="lm", fitted=True)
    adaptive_cutoffs: Optional[str] = option(None, "Where the adaptive softmax's clusters start, as token ids (word "
                                                   "ids are ordered by frequency).", only="lm", parse=parse_cutoffs,
                                             default_text="a tenth and half of the vocabulary, e.g. 2000,10000")
    bidirectional: bool = option(False, "Read the text both ways (a language model must not see the future).",
                                 classify=True, only="classify", off="unidirectional")
    num_classes: Optional[int] = None
    """Number of labels (classifier only; set from the data)."""
    condition_tokens: Optional[list[int]] = None
    """A conditioned language model's label markers, as token ids in label order (set from the data;
    see :mod:`textrnn.condition`)."""

    def __post_init__(self) -> None:
        check_choices(self)
        for name in ("vocab_size", "layers", "hidden", "embed"):
            check_positive(name, getattr(self, name))
        if self.num_classes is not None and self.num_classes < 2:
            raise TextRNNError(f"a classifier needs at least two classes, got {self.num_classes}")
        for name in ("dropout", "embed_dropout"):
            check_probability(name, getattr(self, name))
        for name in ("input_dropout", "hidden_dropout", "output_dropout", "weight_drop"):
            check_probability(name, getattr(self, name))
        if self.weight_drop and self.cell in MIN_CELLS:
            raise TextRNNError(f"--weight-drop drops hidden-to-hidden weights, which --cell {self.cell} has none of "
                               "(its gates read only the input); drop --weight-drop or choose lstm, gru or rnn")
        self._check_adaptive()

    def cutoffs(self) -> list[int]:
        """The adaptive softmax's cluster boundaries (see :func:`auto_cutoffs`)."""
        given = parse_cutoffs(self.adaptive_cutoffs)
        return [int(c) for c in given.split(",")] if given else auto_cutoffs(self.vocab_size)

    def _check_adaptive(self) -> None:
        if not self.adaptive_softmax:
            return
        if self.num_classes is not None:
            raise TextRNNError("--adaptive-softmax is for language models; drop it for a classifier")
        if self.tie_weights:
            raise TextRNNError("--adaptive-softmax has its own output weights; drop --tie-weights or "
                               "--adaptive-softmax")
        cutoffs = self.cutoffs()
        if not cutoffs or cutoffs[-1] >= self.vocab_size:
            raise TextRNNError(f"--adaptive-cutoffs {self.adaptive_cutoffs or 'auto'}: every cutoff must be below "
                               f"the vocabulary size {self.vocab_size}; give smaller ones or a larger --vocab-size")


@dataclass
class TrainConfig(DictMixin):
    """How a model is trained. Saved in the checkpoint for resume and provenance."""

    batch_size: int = option(32, "Parallel streams (language model) or texts (classifier) per batch.",
                             classify=256, adapt=16, fitted=True)
    seq_len: int = option(128, "Language model: tokens per truncated-BPTT window.", fitted=True)
    max_len: int = option(512, "Cut texts to their first this many tokens.", only="classify")
    lr: float = option(6e-3, "Peak learning rate (AdamW).", classify=4e-3, finetune=2e-3, adapt=1e-3)
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and embeddings).")
    warmup_steps: int = option(100, "Linear warm-up steps before the cosine decay.", classify=50, finetune=20,
                               adapt=10)
    min_lr_ratio: float = option(0.05, "The cosine schedule ends at --lr times this.")
    clip: float = option(1.0, "Gradient-norm clipping threshold.")
    epochs: Optional[float] = option(None, "Stop after this many passes over the training data.", stop=True,
                                     unlimited=10.0, classify=5.0, adapt=10.0, resumable=True)
    max_steps: Optional[int] = option(None, "Stop after this many optimizer steps.", stop=True, resumable=True)
    max_time: Optional[float] = option(None, "Stop after this long, evaluation included: 45s, 5m, 1h30m or "
                                             "seconds.", stop=True, parse=parse_duration, resumable=True)
    eval_every: int = option(500, "Evaluate on the validation data every this many steps (and at the end).",
                             classify=100, adapt=10, resumable=True)
    patience: Optional[int] = option(None, "Early stopping: stop when this many evaluations in a row were no better "
                                           "than the best (whose weights are the run's).", adapt=4, resumable=True)
    save_every: int = option(500, "Write the last checkpoint every this many steps.", classify=100,
                             resumable=True)
    val_fraction: float = option(0.1, "Hold out this fraction for validation (a corpus's end; a table's "
                                      "seeded random rows).", adapt=0.2)
    # so a 1 GB corpus does not spend 100 MB, and minutes per evaluation, on validation
    val_max_bytes: Optional[int] = option(2_000_000, "Language model: hold out at most this many bytes.")
    seed: int = option(1234, "Seed for weights, data order and dropout.")
    device: str = option("auto", "Where to train (auto: CUDA when present, else MPS, else CPU).",
                         choices=DEVICES, resumable=True)
    precision: str = option("auto", "auto: bf16 autocast on CUDA GPUs that have it (else fp16 with a gradient "
                                    "scaler), fp32 elsewhere (the fit picks bf16 on CPUs with native bf16 LSTM "
                                    "kernels); fp16 needs CUDA, bf16 CUDA or such a CPU.",
                            choices=PRECISIONS, resumable=True, fitted=True)
    compile: bool = option(False, "Run the training step through torch.compile.", resumable=True)
    layer_lr_decay: float = option(1.0, "Discriminative learning rates (ULMFiT; 2.6 there, for fine-tuning): the "
                                        "output layer trains at --lr, each layer below it at the rate of the one "
                                        "above divided by this (the embedding lowest); 1: one rate (a classifier "
                                        "with --init-from: its pretrained layers at a quarter of --lr).")
    unfreeze_every: float = option(0.0, "Gradual unfreezing (ULMFiT), with --init-from: the output layer trains "
                                        "from the start, the pretrained layers below it stay frozen and thaw one "
                                        "at a time from the top, one more every this fraction of the run; 0: all "
                                        "train from the start.")
    fit: bool = option(True, "Choose the model size, embedding, dropout, weight drop, output layer and precision "
                             "you do not set from the corpus size, the budget and the device (docs/train.md's table); "
                             "--no-fit: the fixed defaults.", only="lm")
    ar: float = option(0.0, "Activation regularization: add this times the mean square of the (dropped) last "
                            "layer's output to the training loss.", only="lm")
    tar: float = option(0.0, "Temporal activation regularization: add this times the mean square of the change "
                             "of the last layer's output from one step to the next to the training loss.", only="lm")
    average: str = option("off", "Weight averaging from --average-start on: ema (an exponential moving average, "
                                 "decay --average-decay) or swa (the equal-weight mean of the weights after every "
                                 "step); each evaluation also scores the averaged weights, and the best checkpoint "
                                 "keeps whichever score better.", choices=AVERAGES)
    average_start: float = option(0.5, "Start the weight averaging after this fraction of the run's steps, in [0, 1).")
    average_decay: float = option(0.999, "--average ema: how much of the average each step keeps, in (0, 1) (0.999: "
                                         "about the last 1,000 steps).")
    sample_length: int = option(200, "After each evaluation, sample this many tokens (seeded, "
                                     "temperature 0.8) into samples.jsonl and the progress display; 0: none.",
                                only="lm", resumable=True)

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "max_len", "lr", "eval_every", "save_every"):
            check_positive(name, getattr(self, name))
        for name in ("epochs", "max_steps"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        for f in options_of(TrainConfig):  # max_time: "5m" -> 300.0
            if f.metadata["parse"]:
                setattr(self, f.name, f.metadata["parse"](getattr(self, f.name)))
        if self.sample_length < 0:
            raise TextRNNError(f"--sample-length must be >= 0, got {self.sample_length}")
        if self.warmup_steps < 0:
            raise TextRNNError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.clip is not None and self.clip <= 0:
            raise TextRNNError(f"--clip must be positive, got {self.clip}")
        if not 0.0 < self.val_fraction < 1.0:
            raise TextRNNError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise TextRNNError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        check_choices(self)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise TextRNNError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if not isinstance(self.layer_lr_decay, (int, float)) or self.layer_lr_decay < 1:
            raise TextRNNError(f"--layer-lr-decay must be >= 1, got {self.layer_lr_decay!r}")
        if not isinstance(self.unfreeze_every, (int, float)) or not 0 <= self.unfreeze_every < 1:
            raise TextRNNError(f"--unfreeze-every must be a fraction of the run in [0, 1), got {self.unfreeze_every!r}")
        for name in ("ar", "tar"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise TextRNNError(f"--{name} must be >= 0, got {getattr(self, name)!r}")
        if self.patience is not None:
            check_positive("patience", self.patience)
        if self.val_max_bytes is not None:
            check_positive("val_max_bytes", self.val_max_bytes)
        check_probability("average_start", self.average_start)
        if not isinstance(self.average_decay, (int, float)) or not 0.0 < self.average_decay < 1.0:
            raise TextRNNError(f"--average-decay must be in (0, 1), e.g. 0.999, got {self.average_decay!r}")
        if all(getattr(self, name) is None for name in STOP_OPTIONS):  # 10 epochs: about 5 minutes on
            for f in options_of(TrainConfig):                           # tiny-shakespeare with a 2-core CPU
                if f.metadata["unlimited"] is not None:
                    setattr(self, f.name, f.metadata["unlimited"])


# -- what the pipelines and the command line ask of the declarations ---------------------
SHAPE = ("cell", "layers", "hidden", "embed")
"""What a run started --init-from a language model takes from it and may not change."""
OPTIONS: dict[str, dataclasses.Field] = {
    f.name: f for cls in (RunOptions, DataOptions, ModelConfig, TrainConfig) for f in options_of(cls)}
"""Every declared option of ``textrnn train``, by name, in the order the help lists them."""
MODEL_OPTIONS = frozenset(f.name for f in options_of(ModelConfig))
"""ModelConfig fields a user sets (the rest come from the tokenizer and the labels)."""
TRAIN_OPTIONS = frozenset(f.name for f in options_of(TrainConfig))
FITTED = frozenset(name for name, f in OPTIONS.items() if f.metadata["fitted"])
"""Options a new language model's fit chooses when they are not given (see :mod:`textrnn.training.recipe`)."""
STOP_OPTIONS = tuple(f.name for f in options_of(TrainConfig) if f.metadata["stop"])
RESUMABLE = frozenset(f.name for cls in (ModelConfig, TrainConfig) for f in options_of(cls) if f.metadata["resumable"])
"""Options a resumed run may change: when to stop, how often to report and save, where it runs."""


def default(name: str, task: str = "lm") -> Any:
    """The declared default of option ``name`` for ``task`` (what ``--help`` shows)."""
    f = OPTIONS[name]
    return f.metadata["defaults"].get(task, f.default)


def check_options(options: dict[str, Any]) -> None:
    """Check the given (not None) declared options against their choices and parsers;
    cheap (no torch), so the command line answers at once. Other names are ignored."""
    for name, value in options.items():
        f = OPTIONS.get(name)
        if f is None or value is None:
            continue
        if f.metadata["choices"]:
            check_choice(name, value, f.metadata["choices"])
        if f.metadata["parse"]:
            f.metadata["parse"](value)


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
    model's), restricted to ``options``. Stop options are left out (see :func:`train_config`)."""
    return {name: OPTIONS[name].metadata["defaults"][task] for name in OPTIONS
            if name in options and task in OPTIONS[name].metadata["defaults"] and not OPTIONS[name].metadata["stop"]}


def train_config(task: str, given: dict[str, Any], start: Optional[str] = None) -> TrainConfig:
    """A new run's TrainConfig: ``task``'s defaults, then those of how it starts (``start``:
    ``finetune`` or ``adapt``, see :func:`option`), overridden by the ``given`` options. The stop
    defaults apply only when no stop option is given."""
    kinds = (task,) if start is None else (task, start)
    defaults: dict[str, Any] = {}
    for kind in kinds:
        defaults.update(task_defaults(kind, TRAIN_OPTIONS))
        if not any(k in given for k in STOP_OPTIONS):
            defaults.update({name: OPTIONS[name].metadata["defaults"][kind] for name in STOP_OPTIONS
                             if kind in OPTIONS[name].metadata["defaults"]})
    return TrainConfig(**{**defaults, **given})


def model_config(task: str, given: dict[str, Any], **fixed: Any) -> ModelConfig:
    """A new run's ModelConfig: ``task``'s defaults, the ``given`` options, then ``fixed``
    (vocab_size, num_classes, or a pretrained model's shape)."""
    return ModelConfig(**{**task_defaults(task, MODEL_OPTIONS), **given, **fixed})
