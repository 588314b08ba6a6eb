"""Training a language model: the pipeline ``textrnn train`` runs.

::

    inputs (files, dirs, globs, tables, --dataset) -> data.cache.prepare (tokenizer + token files)
        -> data.batches.LMBatches -> model.LanguageModel -> trainer.train_loop (+ tasks.LMTask)
        -> rundir.execute (checkpoints into the run directory)

Under ``torchrun`` every rank runs this same function (see :mod:`textrnn.training.distributed`):
rank 0 prepares the corpus first and the others reuse its tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .. import __version__, checkpoint
from ..condition import labels_of, marker_ids, token_ids
from ..config import (MODEL_OPTIONS, SHAPE, ModelConfig, TrainConfig, default, model_config,
                      split_options, train_config)
from ..data import cache as cache_mod
from ..data import corpus as corpus_mod
from ..data.batches import LMBatches
from ..errors import TextRNNError
from ..inference.scoring import check_scorable, check_text_file
from ..inference.generate import generate
from ..inference.options import SamplingOptions
from ..model import LanguageModel, copy_pretrained
from ..runconfig import Condition, DataInfo, Distributed, InitFrom, RunConfig, TokenizerInfo
from ..tokenizer import Tokenizer
from . import distributed
from .distributed import Dist
from .optim import check_unfreeze, layer_lr_scales, make_optimizer, thaw_fractions
from .recipe import Fit, fit_defaults
from .rundir import RunResult, check_resume, default_run_dir, execute, open_run, test_run
from .runtime import check_precision, resolve_device, seed_everything
from .tasks import LMTask
from .trainer import Progress

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "corpora" / "tinyshakespeare.txt"


@dataclass(frozen=True)
class _Inputs:
    """What the run reads, as given (or, on resume, as the run was given it)."""

    corpus: list[Path]
    dataset: Optional[str]
    tokenizer: Optional[str]  # the kind asked for (None: the run's own, else the default)
    vocab_size: Optional[int]
    val_file: Optional[Path]
    encoding: Optional[str]  # None: the run's own, else the default (utf-8)
    text_column: Optional[str]
    cache: Path
    init_from: Optional[Path] = None  # a language model to fine-tune (a run directory or a shipped name)
    condition_column: Optional[str] = None  # tables: condition on this column's labels
    condition_labels: Optional[list[str]] = None  # (found in the training tables, or the resumed run's)

    def resumed(self, saved: RunConfig) -> "_Inputs":
        """The saved run's own data options wherever none was given again."""
        data = saved.data
        return replace(self, tokenizer=self.tokenizer or saved.tokenizer.kind,
                       val_file=self.val_file or (Path(data.val_file) if data.val_file else None),
                       text_column=self.text_column or data.text_column,
                       condition_column=self.condition_column or data.condition_column,
                       condition_labels=labels_of(saved.condition),
                       encoding=self.encoding or data.encoding)

    @property
    def kind(self) -> str:
        return self.tokenizer or default("tokenizer", "lm")

    @property
    def codec(self) -> str:
        return self.encoding or default("encoding", "lm")


def train_language_model(
    corpus: Optional[Sequence[str | Path]] = None,
    *,
    out: Optional[str | Path] = None,
    tokenizer: Optional[str] = None,
    vocab_size: Optional[int] = None,
    val_file: Optional[str | Path] = None,
    test_file: Optional[str | Path] = None,
    encoding: Optional[str] = None,
    text_column: Optional[str] = None,
    dataset: Optional[str] = None,
    init_from: Optional[str | Path] = None,
    condition_column: Optional[str] = None,
    cache_dir: Optional[str | Path] = None,
    resume: bool = False,
    force: bool = False,
    on_progress: Optional[Callable[[Progress], None]] = None,
    on_prepare: corpus_mod.Report = None,
    on_note: Optional[Callable[[str], None]] = None,
    report_every: int = 10,
    **options: Any,
) -> RunResult:
    """Train a language model and write its run directory.

    ``corpus``: text files, directories, glob patterns, or tables (their text column), read
    as a stream into cached token files (see :mod:`textrnn.data.corpus`); or, with ``dataset``
    (``NAME[:CONFIG]``), a Hugging Face dataset (``corpus`` then names its data files, for
    builders such as ``text`` or ``csv``). ``encoding`` defaults to the resumed run's own,
    else UTF-8. ``options`` are :class:`ModelConfig` and :class:`TrainConfig` fields
    (``hidden=256``, ``max_time="5m"``, ...); those not given take the tuned defaults, or on
    ``resume`` the run's own values. ``on_progress`` is called every ``report_every`` steps
    and after each evaluation, ``on_prepare(stage, done, total)`` while the corpus is read,
    ``on_note(line)`` with what the fit chose (see :mod:`textrnn.training.recipe`).
    ``test_file``: scored with the best weights at the end (``test_*`` in metrics.jsonl and
    ``RunResult.test``; see :mod:`textrnn.inference.scoring`). ``init_from``: fine-tune this language
    model (a run directory or a shipped model's name): its tokenizer (a char tokenizer gains the
    corpus's new characters), size, regularization and weights, with the fine-tuning defaults
    (``lr``, ``warmup_steps``) for the options not given. ``condition_column``: tables' rows are
    conditioned on their label in that column (see :mod:`textrnn.condition`).
    Under ``torchrun`` the job trains data-parallel (see :mod:`textrnn.training.distributed`).
    """
    model_opts, train_opts = split_options(options)
    if model_opts.get("bidirectional"):
        raise TextRNNError("--bidirectional is for classifiers: a language model must not read ahead")
    dist = distributed.from_env()
    device = resolve_device(train_opts.get("device", "auto"))
    if dist.active:
        if device.type == "mps":
            raise TextRNNError("torchrun with Apple MPS is not supported; pass --device cpu")
        device = distributed.init(dist, device.type) or device
    files = [Path(c) for c in (corpus or [DEFAULT_CORPUS])] if dataset is None else [Path(c) for c in corpus or []]
    dist.agree(lambda: _check_inputs(files, dataset, test_file))  # before the run directory is made or replaced
    first = files[0] if dataset is None else Path(dataset.replace(":", "-").replace("/", "-"))
    out = Path(out) if out is not None else default_run_dir(first)
    cache = Path(cache_dir) if cache_dir is not None else cache_mod.default_cache_dir(out)
    inputs = _Inputs(files, dataset, tokenizer, vocab_size, Path(val_file) if val_file else None, encoding,
                     text_column, cache, Path(init_from) if init_from is not None else None, condition_column)
    try:
        with open_run(out, resume, force, dist) as resuming:
            result = _train(out, inputs, model_opts, train_opts, resuming, device, dist,
                            on_progress if dist.is_main else None, on_prepare, on_note, report_every)
            if test_file is not None and dist.is_main and result.stopped_by not in ("interrupt", "terminate"):
                result = test_run(result, test_file, device)
        distributed.shutdown(wait=True)
        return result
    finally:
        distributed.shutdown(wait=False)  # after an error: do not wait for ranks that may be gone


def _check_inputs(files: list[Path], dataset: Optional[str], test_file: Optional[str | Path]) -> None:
    if test_file is not None:
        check_text_file(test_file)
    if dataset is not None:
        return
    if files == [DEFAULT_CORPUS] and not DEFAULT_CORPUS.exists():
        raise TextRNNError("no corpus given, and the default (corpora/tinyshakespeare.txt) comes only with "
                           "a source checkout (pip install -e .); pass a text file")
    corpus_mod.expand_inputs(files)


def _train(out: Path, inputs: _Inputs, model_opts: dict[str, Any], train_opts: dict[str, Any], resuming: bool,
           device: torch.device, dist: Dist, on_progress: Optional[Callable[[Progress], None]],
           on_prepare: corpus_mod.Report, on_note: Optional[Callable[[str], None]], report_every: int) -> RunResult:
    """Prepare the data, build the model and train it into ``out`` (locked by the caller)."""
    saved = checkpoint.read_run(out) if resuming else None
    source = None
    if saved is not None:
        inputs = inputs.resumed(saved)
        tcfg = TrainConfig.from_dict({**saved.train.to_dict(), **train_opts})
        cell = saved.model.cell
    elif inputs.init_from is not None:
        source = dist.agree(lambda: _source(inputs, model_opts))
        tcfg = train_config("lm", train_opts, start="finetune")
        cell = source.run.model.cell
    else:
        tcfg = train_config("lm", train_opts)
        check_unfreeze(tcfg, None)
        cell = model_config("lm", {k: v for k, v in model_opts.items() if not k.startswith("adaptive")},
                            vocab_size=1).cell  # (the cutoffs are checked against the vocabulary later)
    # every option is checked (the same on every rank) before anything is written
    dist.agree(lambda: check_precision(tcfg.precision, device, cell))
    run_tok = Tokenizer.load(out / checkpoint.TOKENIZER, saved.tokenizer.kind) if saved else None
    data, inputs = _prepare(inputs, tcfg, dist, run_tok, on_prepare, source.tokenizer if source else None)
    tok = data.tokenizer
    if saved is not None:
        saved = dist.agree(lambda: check_resume(out, "lm", model_opts, train_opts, inputs.tokenizer,
                                                data.meta["sha256"], data.meta["files"], dist))
        mcfg = saved.model
        fit = None
    else:
        # fine-tuning: the source's size and regularization count as given (the fit may still choose the precision)
        inherited = {k: v for k, v in source.run.model.to_dict().items() if k in MODEL_OPTIONS} if source else {}
        model_opts = {**inherited, **model_opts}
        fit = _fit(tok, data.meta, tcfg, model_opts, train_opts, device, dist)
        fit_model, fit_train = split_options(fit.options if fit else {})
        tcfg = TrainConfig.from_dict({**tcfg.to_dict(), **fit_train})
        conditioned = token_ids(inputs.condition_labels, tok) if inputs.condition_column else None
        mcfg = model_config("lm", {**fit_model, **model_opts}, vocab_size=tok.vocab_size, condition_tokens=conditioned)
    train_batches, val_batches = dist.agree(lambda: _batches(data, tcfg, inputs.val_file, dist, device))
    seed_everything(tcfg.seed)
    model = LanguageModel(mcfg)
    added = copy_pretrained(model, source.model) if source is not None else 0
    model.to(device)
    if dist.active:  # same initial weights everywhere, different dropout masks
        torch.manual_seed(tcfg.seed + 7919 * dist.rank)
    meta = data.meta
    chars_per_token = meta["val_chars"] / max(1, meta["val_tokens"])
    task = LMTask(train_batches, val_batches, device, chars_per_val_token=chars_per_token, dist=dist,
                  ar=tcfg.ar, tar=tcfg.tar)
    run = _run_config(mcfg, tok, tcfg, inputs, meta, dist, fit)
    if source is not None:
        run = replace(run, init_from=InitFrom(str(inputs.init_from), str(source.path), source.tokenizer.vocab_size,
                                              added))
    if on_note is not None and dist.is_main:  # (once every check has passed)
        if source is not None:
            on_note(_fine_tune_note(inputs.init_from, mcfg, tcfg, added))
        elif fit is not None:
            on_note(fit.message)
    optimizer = make_optimizer(model, tcfg, lr_scales=layer_lr_scales(model, tcfg.layer_lr_decay),
                               thaw_at=thaw_fractions(model, tcfg.unfreeze_every))
    return execute(out, run, tok, model, task, tcfg, resuming, on_progress, report_every, optimizer=optimizer,
                   dist=dist, sample=evaluation_sampler(tok, tcfg, marker_ids(run.condition, tok)))


def _source(inputs: _Inputs, model_opts: dict[str, Any]) -> checkpoint.Checkpoint:
    """The language model a fine-tuning run starts from; an option that would change its shape or
    its tokenizer is an error."""
    name = inputs.init_from
    source = checkpoint.load(name)
    if source.task != "lm":
        raise TextRNNError(f"--init-from {name}: is a classifier; give a language-model run (or english-char)")
    clash = sorted(k for k in SHAPE + ("tie_weights", "adaptive_softmax", "adaptive_cutoffs")
                   if k in model_opts and model_opts[k] != getattr(source.run.model, k))
    clash += ["tokenizer"] if inputs.tokenizer not in (None, source.tokenizer.kind) else []
    clash += ["vocab_size"] if inputs.vocab_size is not None else []
    if clash:
        raise TextRNNError(f"--init-from {name}: the model's size and tokenizer come from it; drop "
                           + ", ".join("--" + k.replace("_", "-") for k in clash))
    return source


def _fine_tune_note(name: Path, mcfg: ModelConfig, tcfg: TrainConfig, added: int) -> str:
    new = f", {added} new token{'s' if added != 1 else ''}" if added else ""
    return (f"fine-tuning {name}: {mcfg.layers}x{mcfg.hidden} {mcfg.cell.upper()}, {mcfg.vocab_size} tokens{new}; "
            f"learning rate {tcfg.lr:g}, warm-up {tcfg.warmup_steps} steps; options you set are kept")


def _fit(tok: Tokenizer, meta: dict[str, Any], tcfg: TrainConfig, model_opts: dict[str, Any],
         train_opts: dict[str, Any], device: torch.device, dist: Dist) -> Optional[Fit]:
    """What the fit chooses for the options not given (None with --no-fit)."""
    if not tcfg.fit:
        return None
    return fit_defaults(kind=tok.kind, vocab_size=tok.vocab_size, train_tokens=meta["train_tokens"],
                        train_bytes=meta["train_bytes"], given={**model_opts, **train_opts}, max_time=tcfg.max_time,
                        epochs=tcfg.epochs, max_steps=tcfg.max_steps,
                        tokens_per_step=tcfg.batch_size * tcfg.seq_len * dist.world, device=device,
                        world=dist.world)


SAMPLE_TEMPERATURE = 0.8


def evaluation_sampler(tok: Tokenizer, tcfg: TrainConfig,
                       ban: Sequence[int] = ()) -> Optional[Callable[[torch.nn.Module], str]]:
    """What ``execute`` samples after each evaluation: ``sample_length`` tokens after a newline, with
    the run's seed (generate's own generator: the training RNGs are untouched), never the tokens
    ``ban``; None when off."""
    if not tcfg.sample_length:
        return None

    def sample(model: torch.nn.Module) -> str:
        training = model.training
        try:
            options = SamplingOptions(length=tcfg.sample_length, temperature=SAMPLE_TEMPERATURE, seed=tcfg.seed)
            pieces = generate(model, tok, "", options, banned=ban)
            return "".join(piece[0] for piece in pieces)
        finally:
            model.train(training)

    return sample


def _prepare(inputs: _Inputs, tcfg: TrainConfig, dist: Dist, run_tok: Optional[Tokenizer],
             on_prepare: corpus_mod.Report, start_from: Optional[Tokenizer] = None
             ) -> tuple[cache_mod.Prepared, _Inputs]:
    """The corpus as token files (a dataset exported to text first), on every rank; ``start_from``:
    the tokenizer of the model a fine-tuning run starts from."""
    files, read_as, val_file = inputs.corpus, inputs.codec, inputs.val_file
    if inputs.condition_column is not None and inputs.condition_labels is None:
        if inputs.dataset is not None:
            raise TextRNNError("--condition-column is for table files, not --dataset; export the dataset to a table")
        inputs = replace(inputs, condition_labels=dist.agree(lambda: cache_mod.condition_labels(
            files, encoding=inputs.codec, text_column=inputs.text_column, column=inputs.condition_column)))
    condition = (inputs.condition_column, inputs.condition_labels) if inputs.condition_column else None
    if inputs.dataset is not None:
        files, dataset_val = _dataset_files(dist, inputs, on_prepare)
        val_file = val_file or dataset_val
        read_as = "utf-8"  # the dataset's text, exported

    def prep(tok: Optional[Tokenizer]) -> cache_mod.Prepared:
        return cache_mod.prepare(
            files, cache_dir=inputs.cache, kind=inputs.kind, vocab_size=inputs.vocab_size, encoding=read_as,
            text_column=inputs.text_column, val_file=val_file, val_fraction=tcfg.val_fraction,
            val_max_bytes=tcfg.val_max_bytes, tokenizer=tok, start_from=start_from if tok is None else None,
            condition=condition, report=on_prepare if dist.is_main else None)

    return _prepare_everywhere(dist, prep, run_tok), replace(inputs, val_file=val_file)


def _prepare_everywhere(dist: Dist, prep: Callable[[Optional[Tokenizer]], cache_mod.Prepared],
                        tok: Optional[Tokenizer]) -> cache_mod.Prepared:
    """Prepare the corpus on rank 0 (training or reusing the tokenizer), then on every
    other rank with rank 0's tokenizer: the first rank of each machine fills that
    machine's cache (a shared file system already has it), the others read it."""
    if not dist.active:
        return prep(tok)
    mine = dist.agree(lambda: prep(tok) if dist.is_main else None)
    tok_json = dist.broadcast(mine.tokenizer.to_json() if dist.is_main else None)
    if not dist.is_main:
        tok = Tokenizer.from_json(tok_json)
    my_turn = 0 if dist.is_main else 1 if dist.local_rank == 0 else 2
    for turn in (1, 2):
        got = dist.agree(lambda: prep(tok) if my_turn == turn else None)
        if my_turn == turn:
            mine = got
    return mine


def _dataset_files(dist: Dist, inputs: _Inputs, report: corpus_mod.Report) -> tuple[list[Path], Optional[Path]]:
    """A Hugging Face dataset's text, exported once to UTF-8 files in the cache (rank 0 first)."""
    from ..data.hf_datasets import export_dataset

    def export(report: corpus_mod.Report) -> tuple[Path, Optional[Path]]:
        return export_dataset(inputs.dataset, inputs.cache, inputs.corpus, inputs.text_column, report, inputs.codec)

    files = dist.agree(lambda: export(report) if dist.is_main else None)
    train, val = dist.agree(lambda: files if dist.is_main else export(None))
    return [train], val


def _batches(data: cache_mod.Prepared, tcfg: TrainConfig, val_file: Optional[Path], dist: Dist,
             device: torch.device) -> tuple[LMBatches, cache_mod.TokenFile]:
    names = data.meta["files"]
    name = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
    train = LMBatches(data.train, tcfg.batch_size, tcfg.seq_len, seed=tcfg.seed, name=name,
                      rank=dist.rank, world=dist.world, pin_memory=device.type == "cuda")
    check_scorable(len(data.val), str(val_file) if val_file is not None else f"{name} (validation part)")
    return train, data.val


def _run_config(mcfg: ModelConfig, tok: Tokenizer, tcfg: TrainConfig, inputs: _Inputs, meta: dict[str, Any],
                dist: Dist, fit: Optional[Fit]) -> RunConfig:
    """The run's configuration (its config.json)."""
    data = DataInfo(files=list(meta["files"]), sha256=meta["sha256"], encoding=inputs.codec,
                    text_column=inputs.text_column, condition_column=inputs.condition_column, dataset=inputs.dataset,
                    val_file=meta["val_file"], **{k: meta[k] for k in ("train_bytes", "val_bytes", "train_chars",
                                                                       "val_chars", "train_tokens", "val_tokens")})
    condition = Condition(inputs.condition_column, list(inputs.condition_labels)) if inputs.condition_column else None
    return RunConfig(task="lm", model=mcfg, train=tcfg, data=data, textrnn_version=__version__,
                     tokenizer=TokenizerInfo(tok.kind, tok.vocab_size, inputs.vocab_size),
                     distributed=Distributed(dist.world), fit=fit.to_dict() if fit else None, condition=condition)
