"""Training a text classifier: the pipeline ``textrnn train --task classify`` runs.

::

    table -> columns + labels (data.tables) -> tokenizer (own, or the source's with --init-from) -> ids
          -> data.batches.ClassBatches (length buckets) -> model.Classifier -> trainer.train_loop (+ ClassifyTask)
          -> rundir.execute (checkpoints into the run directory)
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .. import __version__, checkpoint
from ..config import OPTIONS, SHAPE, ModelConfig, TrainConfig, default, model_config, split_options, train_config
from ..declare import check_choice
from ..inference.classify import calibrate_run, encode_texts, predict
from ..inference.classify import evaluate as classification_metrics
from ..data.batches import ClassBatches
from ..data.labels import detect_label_column, detect_text_column, label_key, label_lookup, match_labels, parse_labels
from ..data.tables import read_table
from ..errors import TextRNNError
from ..model import Classifier
from ..runconfig import DataInfo, InitFrom, RunConfig, TokenizerInfo
from ..tokenizer import Tokenizer, train_tokenizer
from .rundir import RunResult, check_resume, default_run_dir, execute, open_run
from .runtime import check_precision, resolve_device, seed_everything
from . import adapt
from .folds import FOLDS_FILE, check_folds, stratified_folds, summary
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


def _label_indices(values: Sequence[Any], names: Sequence[Any], where: str,
                   aliases: Optional[dict[str, Any]] = None) -> np.ndarray:
    """Each value's index into the training label ``names`` (compared in normal form; by name or alias)."""
    lookup = label_lookup(names, aliases)
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
    """Everything a run needs besides its data: configs, tokenizer, label names, and the run it
    starts from (``init_from``: a language model, or a classifier whose head ``rows`` it keeps)."""

    tcfg: TrainConfig
    mcfg: ModelConfig
    tok: Tokenizer
    names: list
    lr_scales: dict[str, float]  # parameter name -> learning-rate multiple (ULMFiT's discriminative rates)
    source: Optional[checkpoint.Checkpoint] = None
    rows: Optional[list] = None  # a classifier source: each label's row of its output layer (None: new)
    aliases: Optional[dict[str, Any]] = None  # the run's label_aliases (a classifier source's, for its labels kept)


@dataclass
class _Asked:
    """What the caller asked of a run besides its data."""

    model_opts: dict[str, Any]
    train_opts: dict[str, Any]
    tokenizer: Optional[str]
    vocab_size: Optional[int]
    init_from: Optional[str | Path]
    head: str
    pretrained_lr_scale: float


def _resumed_setup(saved: RunConfig, out: Path, train_opts: dict[str, Any]) -> _Setup:
    return _Setup(TrainConfig.from_dict({**saved.train.to_dict(), **train_opts}), saved.model,
                  Tokenizer.load(out / checkpoint.TOKENIZER, saved.tokenizer.kind), list(saved.labels),
                  dict(saved.lr_scales), aliases=saved.label_aliases)  # (the same optimizer groups as the run had)


def _new_setup(train: _Labelled, where: str, asked: _Asked) -> _Setup:
    names, _ = parse_labels(train.labels, column=train.label_column, source=where)
    model_opts, init_from = asked.model_opts, asked.init_from
    if init_from is None:
        tcfg = train_config("classify", asked.train_opts)
        check_unfreeze(tcfg, None, "classify")
        tok = train_tokenizer(asked.tokenizer or default("tokenizer", "classify"), train.texts, asked.vocab_size)
        mcfg = model_config("classify", model_opts, vocab_size=tok.vocab_size, num_classes=len(names))
        return _Setup(tcfg, mcfg, tok, names, {})
    source = checkpoint.load(init_from)
    if source.task == "classify":
        return _adapted_setup(train, where, asked, source, names)
    tcfg = train_config("classify", asked.train_opts)
    check_unfreeze(tcfg, init_from, "classify")
    clash = {k for k in model_opts if k in SHAPE and model_opts[k] != getattr(source.run.model, k)}
    if clash:
        raise TextRNNError(f"--init-from takes the model size from {init_from}; drop "
                           + ", ".join(f"--{k}" for k in sorted(clash)))
    shape = {k: getattr(source.run.model, k) for k in SHAPE}
    if model_opts.get("bidirectional") and shape["layers"] > 1:
        raise TextRNNError(f"--init-from {init_from}: a bidirectional classifier's upper layers read both directions, "
                           f"so it cannot start from a {shape['layers']}-layer language model; drop --bidirectional")
    model_opts = {"bidirectional": False, **model_opts}  # read as the language model read: forwards
    mcfg = model_config("classify", model_opts, vocab_size=source.tokenizer.vocab_size, num_classes=len(names),
                        **shape)
    return _Setup(tcfg, mcfg, source.tokenizer, names, {}, source)


def _adapted_setup(train: _Labelled, where: str, asked: _Asked, source: checkpoint.Checkpoint,
                   names: list) -> _Setup:
    """A classifier started from a classifier (see :mod:`textrnn.training.adapt`): its defaults are
    the ``adapt`` ones (a few hundred rows)."""
    adapt.check_source(source, str(asked.init_from), asked.model_opts, asked.tokenizer, asked.vocab_size)
    tcfg = train_config("classify", asked.train_opts, start="adapt")
    check_unfreeze(tcfg, asked.init_from, "classify")
    aliases = source.run.label_aliases or {}
    labels, rows = adapt.head_rows(names, source.run.labels, asked.head, where, aliases)
    kept = {a: n for a, n in aliases.items() if label_key(n) in map(label_key, labels)}  # (the source's names kept)
    tok = adapt.adapted_tokenizer(source.tokenizer, train.texts)
    given = {k: v for k, v in asked.model_opts.items() if k not in adapt.FIXED}
    mcfg = adapt.adapted_config(source, given, tok.vocab_size, len(labels))
    return _Setup(tcfg, mcfg, tok, labels, {}, source, rows, kept or None)


def _build_model(setup: _Setup, pretrained_lr_scale: float) -> tuple[Classifier, int]:
    """The classifier, with the source's encoder (and a classifier's head rows) copied in
    (``init_from``), whose parameters then train at ``pretrained_lr_scale`` times the learning
    rate, or, with ``--layer-lr-decay``, at ULMFiT's rate for their depth; and the number of
    tokens the source's vocabulary gained."""
    seed_everything(setup.tcfg.seed)
    model = Classifier(setup.mcfg)
    added = 0
    if setup.source is not None:
        if setup.rows is not None:
            added = adapt.copy_classifier(model, setup.source.model, setup.rows)
            pretrained = {name for name, _ in model.encoder.named_parameters()}
        else:
            missing = model.encoder.load_state_dict(setup.source.model.encoder.state_dict(), strict=False)
            assert not missing.unexpected_keys, missing
            pretrained = {name for name, _ in model.encoder.named_parameters() if name not in missing.missing_keys}
        setup.lr_scales = {f"encoder.{name}": pretrained_lr_scale for name in pretrained}
        if setup.tcfg.layer_lr_decay > 1:
            setup.lr_scales = {name: scale for name, scale in layer_lr_scales(model, setup.tcfg.layer_lr_decay).items()
                               if name in setup.lr_scales}
    return model, added


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
    head: str = default("head", "classify"),
    folds: Optional[int] = None,
    pretrained_lr_scale: float = 0.25,
    resume: bool = False,
    force: bool = False,
    on_progress: Optional[Callable[[Progress], None]] = None,
    on_note: Optional[Callable[[str], None]] = None,
    report_every: int = 10,
    **options: Any,
) -> RunResult:
    """Train a text classifier on a labelled table (CSV, TSV, JSONL) and write its run directory.

    With ``init_from`` a language-model run, the classifier starts from that model's tokenizer,
    embedding and recurrent layers, which train at ``pretrained_lr_scale`` times the learning
    rate (ULMFiT-style discriminative rates); its size options are the LM's. With a classifier
    run (the shipped ``sst2`` included), it starts from all of it: tokenizer (plus the rows' new
    words), encoder, and the output layer as ``head`` says (``auto``, ``keep``, ``new``; see
    :func:`textrnn.training.adapt.head_rows`), with the ``adapt`` defaults (a few hundred rows).
    ``folds``: first cross-validate (``RunResult.folds``; ``folds.json`` in the run). ``encoding``
    defaults to the resumed run's own, else UTF-8. ``options`` are :class:`ModelConfig` /
    :class:`TrainConfig` fields; the classifier's defaults are :func:`textrnn.config.task_defaults`
    ``("classify", ...)``. ``on_note``: the line that says what a run started from, and each fold's score.
    """
    model_opts, train_opts = split_options(options)
    check_choice("head", head, OPTIONS["head"].metadata["choices"])
    asked = _Asked(model_opts, train_opts, tokenizer, vocab_size, init_from, head, pretrained_lr_scale)
    out = Path(out) if out is not None else default_run_dir(train_file)
    if folds is not None and resume:
        raise TextRNNError("--folds trains every fold and then the run from its start; drop --resume or --folds")
    with open_run(out, resume, force) as resuming:
        saved = checkpoint.read_run(out) if resuming else None
        encoding = encoding or (saved.data.encoding if saved else None) or default("encoding", "classify")
        read = dict(fmt=format, encoding=encoding, text_column=text_column, label_column=label_column)
        train = _read_labelled(train_file, **read)
        val = _read_labelled(val_file, **read) if val_file is not None else None
        files = [str(train_file)] + ([str(val_file)] if val_file else [])
        cv = None
        if folds is not None:
            check_folds(folds, len(train.texts), str(train_file))
            cv = _cross_validate(train, val, str(train_file), asked, folds, on_progress, on_note, report_every)
        data = DataInfo(files=files, sha256=_fingerprint(train, val), encoding=encoding)
        result = _train_rows(out, train, val, data, asked, saved, on_progress, on_note, report_every)
        if cv is not None:
            checkpoint.write_file(out / FOLDS_FILE, json.dumps(cv, indent=2) + "\n")
            result = replace(result, folds=cv)
        return result


def _train_rows(out: Path, train: _Labelled, val: Optional[_Labelled], data: DataInfo, asked: _Asked,
                saved: Optional[RunConfig], on_progress: Optional[Callable[[Progress], None]],
                on_note: Optional[Callable[[str], None]], report_every: int) -> RunResult:
    """Train on ``train`` (validated on ``val``, else on a held-out part of it) into ``out``
    (locked by the caller; ``saved``: the run there, to resume)."""
    train_name, val_name = data.files[0], data.files[1] if len(data.files) > 1 else None
    if saved is not None:
        check_resume(out, "classify", asked.model_opts, asked.train_opts, asked.tokenizer, data.sha256, data.files,
                     data_what="texts or labels")
        setup = _resumed_setup(saved, out, asked.train_opts)
    else:
        setup = _new_setup(train, train_name, asked)
    device = resolve_device(setup.tcfg.device)
    check_precision(setup.tcfg.precision, device, setup.mcfg.cell)  # before anything is written
    task = _task(train, val, setup, train_name, str(val_name), device)
    model, added = _build_model(setup, asked.pretrained_lr_scale)
    model.to(device)
    optimizer = make_optimizer(model, setup.tcfg, lr_scales=setup.lr_scales,
                               thaw_at=thaw_fractions(model, setup.tcfg.unfreeze_every))
    run = _run_config(setup, train, task, data, asked.vocab_size, asked.init_from, added)
    if on_note is not None and setup.rows is not None:
        on_note(adapt.note(asked.init_from, setup.source, setup.mcfg, setup.names, setup.rows, added,
                           setup.tcfg.lr))
    result = execute(out, run, setup.tok, model, task, setup.tcfg, saved is not None, on_progress, report_every,
                     optimizer)
    calibrate_run(out, task.val_ids, task.val_labels, val_name or f"{train_name} (its validation rows)",
                  device)  # the best weights' temperature, fitted on the validation rows
    return result


def _cross_validate(rows: _Labelled, val: Optional[_Labelled], where: str, asked: _Asked, k: int,
                    on_progress: Optional[Callable[[Progress], None]], on_note: Optional[Callable[[str], None]],
                    report_every: int) -> dict[str, Any]:
    """Train ``k`` classifiers, each on all rows but one fold's (in a temporary run directory),
    and score each on the fold it did not see: the summary of :func:`textrnn.training.folds.summary`.
    A fold's tokenizer, new words, validation rows and early stopping come from its training rows only."""
    names, index = parse_labels(rows.labels, column=rows.label_column, source=where)
    seed = train_config("classify", asked.train_opts).seed
    per_fold = []
    for i, held in enumerate(stratified_folds(index, k, seed)):
        keep = np.setdiff1d(np.arange(len(rows.texts)), held)
        part = replace(rows, texts=[rows.texts[j] for j in keep], labels=[rows.labels[j] for j in keep])
        with tempfile.TemporaryDirectory(prefix="textrnn-fold-") as tmp:
            fold_out = Path(tmp) / f"fold-{i + 1}"
            with open_run(fold_out, False, False):
                data = DataInfo(files=[f"{where} (fold {i + 1} of {k}: training rows)"], sha256="", encoding="")
                _train_rows(fold_out, part, val, data, asked, None, on_progress, None, report_every)
            trained = checkpoint.load(fold_out)
        probs = predict(trained.model, trained.tokenizer, [rows.texts[j] for j in held],
                        max_len=trained.run.train.max_len)  # (n, C)
        own = match_labels(names, trained.run.labels, trained.run.label_aliases)  # each row label's column
        more = [c for c in range(len(trained.run.labels)) if c not in own]  # (--head keep: labels the rows lack)
        position = {**{c: u for u, c in enumerate(own)}, **{c: len(names) + j for j, c in enumerate(more)}}
        m = classification_metrics([index[j] for j in held], [position[int(c)] for c in probs.argmax(axis=1)],
                                   names + [trained.run.labels[c] for c in more])
        per_fold.append({"fold": i + 1, "rows": int(len(held)), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
        if on_note is not None:
            on_note(f"fold {i + 1} of {k}: accuracy {m['accuracy']:.2%}, macro-F1 {m['macro_f1']:.4f} "
                    f"on its {len(held)} unseen rows")
    return summary(per_fold)


def _run_config(setup: _Setup, train: _Labelled, task: ClassifyTask, data: DataInfo, vocab_size: Optional[int],
                init_from: Optional[str | Path], added: int) -> RunConfig:
    """The run's configuration (its config.json); ``init_from``: the run it starts from, as given."""
    lm = setup.source  # (None on resume: the weights come from last/)
    return RunConfig(task="classify", model=setup.mcfg, train=setup.tcfg, textrnn_version=__version__,
                     tokenizer=TokenizerInfo(setup.tok.kind, setup.tok.vocab_size, vocab_size),
                     data=replace(data, text_column=train.text_column, label_column=train.label_column,
                                  train_examples=len(task.train.ids), val_examples=len(task.val_ids)),
                     labels=list(setup.names), label_aliases=setup.aliases, lr_scales=dict(setup.lr_scales),
                     init_from=InitFrom(str(init_from), str(lm.path), lm.tokenizer.vocab_size, added) if lm else None)


def _task(train: _Labelled, val: Optional[_Labelled], setup: _Setup, train_name: str, val_name: str,
          device) -> ClassifyTask:
    """Encoded, batched training and validation data: the validation file's, or a seeded
    random ``val_fraction`` of the training rows."""
    texts, labels = train.texts, _label_indices(train.labels, setup.names, train_name, setup.aliases)
    if val is None:
        order = np.random.default_rng(setup.tcfg.seed).permutation(len(texts))
        n_val = max(1, int(round(len(texts) * setup.tcfg.val_fraction)))
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        val_texts, val_labels = [texts[i] for i in val_idx], labels[val_idx]
        texts, labels = [texts[i] for i in train_idx], labels[train_idx]
    else:
        val_texts, val_labels = val.texts, _label_indices(val.labels, setup.names, val_name, setup.aliases)
    max_len, tok = setup.tcfg.max_len, setup.tok
    batches = ClassBatches(encode_texts(tok, texts, max_len), labels, setup.tcfg.batch_size, seed=setup.tcfg.seed)
    return ClassifyTask(batches, encode_texts(tok, val_texts, max_len), val_labels, setup.names, device)
