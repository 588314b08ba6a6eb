"""Training a text classifier: the pipeline ``textrnn train --task classify`` runs.

::

    table -> columns + labels (data.tables) -> tokenizer (own, or the LM's with --init-from) -> ids
          -> data.batches.ClassBatches (length buckets) -> model.Classifier -> trainer.train_loop (+ ClassifyTask)
          -> rundir.execute (checkpoints into the run directory)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .. import __version__, checkpoint
from ..inference.classify import encode_texts
from ..config import SHAPE, ModelConfig, TrainConfig, default, model_config, split_options, train_config
from ..data.batches import ClassBatches
from ..data.labels import detect_label_column, detect_text_column, label_key, parse_labels
from ..data.tables import read_table
from ..errors import TextRNNError
from ..model import Classifier
from ..runconfig import DataInfo, InitFrom, RunConfig, TokenizerInfo
from ..tokenizer import Tokenizer, train_tokenizer
from .rundir import RunResult, check_resume, default_run_dir, execute, open_run
from .runtime import check_precision, resolve_device, seed_everything
from .tasks import ClassifyTask
from .optim import check_unfreeze, layer_lr_scales, make_optimizer, thaw_fractions
from .trainer import Progress


@dataclass
class _Labelled:
    """The texts and raw labels of a table, and the columns they came from."""

    texts: list[str]
    labels: list[Any]
    text_column: str
    label_column: str


def _read_labelled(path: str | Path, *, fmt: Optional[str], encoding: str, text_column: Optional[str],
                   label_column: Optional[str]) -> _Labelled:
    table = read_table(path, format=fmt, encoding=encoding)
    text_col = detect_text_column(table, text_column)
    label_col = detect_label_column(table, label_column, required=True)
    texts = ["" if r.get(text_col) is None else str(r.get(text_col)) for r in table.rows]
    return _Labelled(texts, [r.get(label_col) for r in table.rows], text_col, label_col)


def _label_indices(values: Sequence[Any], names: Sequence[Any], where: str) -> np.ndarray:
    """Each value's index into the training label ``names`` (compared in normal form)."""
    lookup = {label_key(n): i for i, n in enumerate(names)}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        key = label_key(v)
        if key not in lookup:
            raise TextRNNError(f"{where}: label {v!r} is not one of the training labels "
                               f"({', '.join(map(str, names))}); fix the file or train with it")
        out[i] = lookup[key]
    return out


def _fingerprint(train: _Labelled, val: Optional[_Labelled]) -> str:
    """SHA-256 of the training texts and labels and the validation texts and labels."""
    h = hashlib.sha256()
    parts = [*train.texts, *map(str, train.labels)]
    if val is not None:
        parts += [*val.texts, *map(str, val.labels)]
    for t in parts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class _Setup:
    """Everything a run needs besides its data: configs, tokenizer, label names, and
    the language model it starts from (with ``init_from``)."""

    tcfg: TrainConfig
    mcfg: ModelConfig
    tok: Tokenizer
    names: list
    lr_scales: dict[str, float]  # parameter name -> learning-rate multiple (ULMFiT's discriminative rates)
    lm: Optional[checkpoint.Checkpoint] = None


def _resumed_setup(saved: RunConfig, out: Path, train_opts: dict[str, Any]) -> _Setup:
    return _Setup(TrainConfig.from_dict({**saved.train.to_dict(), **train_opts}), saved.model,
                  Tokenizer.load(out / checkpoint.TOKENIZER, saved.tokenizer.kind), list(saved.labels),
                  dict(saved.lr_scales))  # (the same optimizer groups as the run had)


def _new_setup(train: _Labelled, source: str, model_opts: dict[str, Any], train_opts: dict[str, Any],
               tokenizer: Optional[str], vocab_size: Optional[int], init_from: Optional[str | Path]) -> _Setup:
    names, _ = parse_labels(train.labels, column=train.label_column, source=source)
    tcfg = train_config("classify", train_opts)
    check_unfreeze(tcfg, init_from, "classify")
    if init_from is None:
        tok = train_tokenizer(tokenizer or default("tokenizer", "classify"), train.texts, vocab_size)
        mcfg = model_config("classify", model_opts, vocab_size=tok.vocab_size, num_classes=len(names))
        return _Setup(tcfg, mcfg, tok, names, {})
    lm = checkpoint.load(init_from)
    if lm.task != "lm":
        raise TextRNNError(f"--init-from {init_from}: is a classifier; give a language-model run")
    clash = {k for k in model_opts if k in SHAPE and model_opts[k] != getattr(lm.run.model, k)}
    if clash:
        raise TextRNNError(f"--init-from takes the model size from {init_from}; drop "
                           + ", ".join(f"--{k}" for k in sorted(clash)))
    shape = {k: getattr(lm.run.model, k) for k in SHAPE}
    if model_opts.get("bidirectional") and shape["layers"] > 1:
        raise TextRNNError(f"--init-from {init_from}: a bidirectional classifier's upper layers read both directions, "
                           f"so it cannot start from a {shape['layers']}-layer language model; drop --bidirectional")
    model_opts = {"bidirectional": False, **model_opts}  # read as the language model read: forwards
    mcfg = model_config("classify", model_opts, vocab_size=lm.tokenizer.vocab_size, num_classes=len(names), **shape)
    return _Setup(tcfg, mcfg, lm.tokenizer, names, {}, lm)


def _build_model(setup: _Setup, pretrained_lr_scale: float) -> Classifier:
    """The classifier, with the language model's encoder copied in (``init_from``), whose
    parameters then train at ``pretrained_lr_scale`` times the learning rate, or, with
    ``--layer-lr-decay``, at ULMFiT's rate for their depth."""
    seed_everything(setup.tcfg.seed)
    model = Classifier(setup.mcfg)
    if setup.lm is not None:
        missing = model.encoder.load_state_dict(setup.lm.model.encoder.state_dict(), strict=False)
        assert not missing.unexpected_keys, missing
        setup.lr_scales = {f"encoder.{name}": pretrained_lr_scale for name, _ in model.encoder.named_parameters()
                           if name not in missing.missing_keys}
        if setup.tcfg.layer_lr_decay > 1:
            setup.lr_scales = {name: scale for name, scale in layer_lr_scales(model, setup.tcfg.layer_lr_decay).items()
                               if name in setup.lr_scales}
    return model


def train_classifier(
    train_file: str | Path,
    *,
    out: Optional[str | Path] = None,
    val_file: Optional[str | Path] = None,
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
    format: Optional[str] = None,
    encoding: Optional[str] = None,
    tokenizer: Optional[str] = None,
    vocab_size: Optional[int] = None,
    init_from: Optional[str | Path] = None,
    pretrained_lr_scale: float = 0.25,
    resume: bool = False,
    force: bool = False,
    on_progress: Optional[Callable[[Progress], None]] = None,
    report_every: int = 10,
    **options: Any,
) -> RunResult:
    """Train a text classifier on a labelled table (CSV, TSV, JSONL) and write its run directory.

    With ``init_from`` (a language-model run directory) the classifier starts from that
    model's tokenizer, embedding and recurrent layers, which train at ``pretrained_lr_scale``
    times the learning rate (ULMFiT-style discriminative rates); its size options are the
    LM's. ``encoding`` defaults to the resumed run's own, else UTF-8. ``options`` are
    :class:`ModelConfig` / :class:`TrainConfig` fields; the classifier's defaults are
    :func:`textrnn.config.task_defaults` ``("classify", ...)``.
    """
    model_opts, train_opts = split_options(options)
    out = Path(out) if out is not None else default_run_dir(train_file)
    with open_run(out, resume, force) as resuming:
        saved = checkpoint.read_run(out) if resuming else None
        encoding = encoding or (saved.data.encoding if saved else None) or default("encoding", "classify")
        read = dict(fmt=format, encoding=encoding, text_column=text_column, label_column=label_column)
        train = _read_labelled(train_file, **read)
        val = _read_labelled(val_file, **read) if val_file is not None else None
        files = [str(train_file)] + ([str(val_file)] if val_file else [])
        data_sha = _fingerprint(train, val)
        if saved is not None:
            check_resume(out, "classify", model_opts, train_opts, tokenizer, data_sha, files,
                         data_what="texts or labels")
            setup = _resumed_setup(saved, out, train_opts)
        else:
            setup = _new_setup(train, str(train_file), model_opts, train_opts, tokenizer, vocab_size, init_from)
        device = resolve_device(setup.tcfg.device)
        check_precision(setup.tcfg.precision, device, setup.mcfg.cell)  # before anything is written
        task = _task(train, val, setup, str(train_file), str(val_file), device)
        model = _build_model(setup, pretrained_lr_scale).to(device)
        optimizer = make_optimizer(model, setup.tcfg, lr_scales=setup.lr_scales,
                                   thaw_at=thaw_fractions(model, setup.tcfg.unfreeze_every))
        run = _run_config(setup, train, task, DataInfo(files=files, sha256=data_sha, encoding=encoding), vocab_size,
                          init_from)
        return execute(out, run, setup.tok, model, task, setup.tcfg, resuming, on_progress, report_every, optimizer)


def _run_config(setup: _Setup, train: _Labelled, task: ClassifyTask, data: DataInfo, vocab_size: Optional[int],
                init_from: Optional[str | Path]) -> RunConfig:
    """The run's configuration (its config.json); ``init_from``: the language model as given."""
    lm = setup.lm  # (None on resume: the weights come from last/)
    return RunConfig(task="classify", model=setup.mcfg, train=setup.tcfg, textrnn_version=__version__,
                     tokenizer=TokenizerInfo(setup.tok.kind, setup.tok.vocab_size, vocab_size),
                     data=replace(data, text_column=train.text_column, label_column=train.label_column,
                                  train_examples=len(task.train.ids), val_examples=len(task.val_ids)),
                     labels=list(setup.names), lr_scales=dict(setup.lr_scales),
                     init_from=InitFrom(str(init_from), str(lm.path), lm.tokenizer.vocab_size, 0) if lm else None)


def _task(train: _Labelled, val: Optional[_Labelled], setup: _Setup, train_name: str, val_name: str,
          device) -> ClassifyTask:
    """Encoded, batched training and validation data: the validation file's, or a seeded
    random ``val_fraction`` of the training rows."""
    texts, labels = train.texts, _label_indices(train.labels, setup.names, train_name)
    if val is None:
        order = np.random.default_rng(setup.tcfg.seed).permutation(len(texts))
        n_val = max(1, int(round(len(texts) * setup.tcfg.val_fraction)))
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        val_texts, val_labels = [texts[i] for i in val_idx], labels[val_idx]
        texts, labels = [texts[i] for i in train_idx], labels[train_idx]
    else:
        val_texts, val_labels = val.texts, _label_indices(val.labels, setup.names, val_name)
    max_len, tok = setup.tcfg.max_len, setup.tok
    batches = ClassBatches(encode_texts(tok, texts, max_len), labels, setup.tcfg.batch_size, seed=setup.tcfg.seed)
    return ClassifyTask(batches, encode_texts(tok, val_texts, max_len), val_labels, setup.names, device)
