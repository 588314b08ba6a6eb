"""Wiring the stages into training runs (the functions ``textrnn train`` calls).

Language model::

    text files -> read -> split -> tokenizer -> ids -> LMBatches -> LanguageModel -> fit -> run dir

Classifier::

    table -> columns + labels -> tokenizer (own, or the LM's with --init-from) -> ids
          -> ClassBatches (length buckets) -> Classifier -> fit -> run dir

Each stage is a plain call into its module. This file decides the order, the run
directory, resume, and what is saved when; both kinds of run share that machinery.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from .. import __version__, checkpoint
from ..config import RESUMABLE, ModelConfig, TrainConfig, model_config, split_options, train_config
from ..data import cache as cache_mod, corpus as corpus_mod
from . import distributed
from ..data.batches import LMBatches, eval_batches
from .distributed import Dist
from ..errors import TextRNNError
from ..model import Classifier, LanguageModel
from .tasks import ClassifyTask, LMTask
from ..tokenizer import Tokenizer, train_tokenizer
from .runtime import autocast_dtype, resolve_device, seed_everything
from .trainer import Progress, TrainerState, fit, make_optimizer

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "corpora" / "tinyshakespeare.txt"


@dataclass
class RunResult:
    """What a training run produced."""

    path: Path
    best: Optional[dict[str, Any]]
    steps: int
    elapsed_s: float
    stopped_by: Optional[str]
    tokens_seen: int


@contextlib.contextmanager
def _open_run(out: Path, resume: bool, force: bool, dist: Optional[Dist] = None) -> Iterator[bool]:
    """Lock the run directory for this job and check it; yields True when an existing
    run is to be resumed. The lock is held (by rank 0) until the run ends."""
    dist = dist or Dist()
    lock = checkpoint.RunLock(out)
    created = not out.exists()

    def check() -> bool:
        if out.exists() and not out.is_dir():
            raise TextRNNError(f"--out {out}: is a file; give a directory for the run")
        existed = out.is_dir() and any(p.name != checkpoint.LOCK for p in out.iterdir())
        if existed and not resume and not force:
            raise TextRNNError(f"{out}: a run already exists there; pass --resume to continue it, "
                               f"--force to overwrite it, or --out to choose another directory")
        if existed and not (out / checkpoint.CONFIG).exists():
            raise TextRNNError(f"{out}: exists and is not a textrnn run; choose another --out")
        if resume and not existed:
            raise TextRNNError(f"--resume: {out} has no run to resume; drop --resume to start a new one")
        return bool(resume)

    resuming = dist.agree(check)
    dist.agree(lambda: lock.__enter__() if dist.is_main else None)
    try:
        yield resuming  # (--force replaces the old run only once the new one starts: _execute)
    finally:
        lock.__exit__()
        if created and dist.is_main and [p.name for p in out.iterdir()] == [checkpoint.LOCK]:
            shutil.rmtree(out, ignore_errors=True)  # failed before writing anything: leave no trace


def _resume_config(out: Path, task: str, model_opts: dict, train_opts: dict, tokenizer: Optional[str],
                   data_sha: str, data_names: Sequence[str], dist: Optional[Dist] = None) -> dict[str, Any]:
    """The saved config of the run in ``out``, after checking that the given options agree."""
    saved = checkpoint.read_config(out)
    world, now = saved.get("distributed", {}).get("world_size", 1), (dist or Dist()).world
    if world != now:
        raise TextRNNError(f"--resume {out}: the run was trained by {world} process(es), this job has "
                           f"{now}; resume with torchrun --nproc-per-node {world} "
                           "(the data layout depends on it)")
    if saved.get("task", "lm") != task:
        raise TextRNNError(f"--resume {out}: that run trains a {saved.get('task')} model, not a {task} model")
    diffs = [f"{k}: checkpoint has {saved['model'].get(k)!r}, given {v!r}"
             for k, v in model_opts.items() if saved["model"].get(k) != v]
    diffs += [f"{k}: checkpoint has {saved['train'].get(k)!r}, given {v!r}"
              for k, v in train_opts.items()
              if k not in RESUMABLE and saved["train"].get(k) != TrainConfig(**{k: v}).to_dict()[k]]
    if tokenizer is not None and tokenizer != saved["tokenizer"]["kind"]:
        diffs.append(f"tokenizer: checkpoint has {saved['tokenizer']['kind']!r}, given {tokenizer!r}")
    if saved["data"]["sha256"] != data_sha:
        diffs.append(f"data: checkpoint was trained on {', '.join(saved['data']['files'])}, "
                     f"given {', '.join(data_names)} (different text)")
    if diffs:
        raise TextRNNError(f"--resume {out}: options contradict the checkpoint: " + "; ".join(diffs))
    return saved


def _execute(out: Path, config: dict[str, Any], tok: Tokenizer, model: torch.nn.Module, task: Any,
             tcfg: TrainConfig, resuming: bool, on_progress: Optional[Callable[[Progress], None]],
             report_every: int, optimizer: Optional[torch.optim.Optimizer] = None,
             dist: Optional[Dist] = None) -> RunResult:
    """Run ``fit`` with checkpointing into ``out`` (fresh, or resumed from ``out/last``).
    In a distributed job only rank 0 writes; every rank resumes from the same files."""
    dist = dist or Dist()
    state = None
    metrics: list[dict[str, Any]] = []
    if resuming and checkpoint.last_dir(out) is None:
        resuming = False  # stopped before its first save: nothing to resume, start it again
    if resuming:
        if dist.is_main:
            checkpoint.remove_leftovers(out)
        dist.barrier()
        raw = checkpoint.load_trainer_state(out)
        checkpoint.load_weights(model, checkpoint.last_dir(out) / checkpoint.WEIGHTS)
        state = TrainerState.from_dict(raw)
        metrics = [m for m in checkpoint.read_metrics(out) if m["step"] <= state.step]
    elif dist.is_main:
        for p in out.iterdir():  # an old run that --force replaces (_open_run checked it is one)
            if p.name != checkpoint.LOCK:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        checkpoint.write_run_files(out, config, tok)

    def on_checkpoint(st: TrainerState, best: bool) -> None:
        if not dist.is_main:
            return
        checkpoint.write_metrics(out, metrics)
        if best:
            checkpoint.save_weights(model, out / checkpoint.WEIGHTS)
        checkpoint.save_last(out, model, st.to_dict())

    def progress(p: Progress) -> None:
        if p.event == "eval" and p.metrics is not None:
            metrics.append(p.metrics)  # (written with the checkpoint that follows every evaluation)
        if on_progress:
            on_progress(p)

    final = fit(model, task, tcfg, state=state, optimizer=optimizer, on_progress=progress,
                on_checkpoint=on_checkpoint, report_every=report_every, dist=dist)
    return RunResult(out, final.best, final.step, final.elapsed_s, final.stopped_by, final.tokens_seen)


def _sha256(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def default_run_dir(first_input: str | Path) -> Path:
    """``checkpoints/<name>``: a file's stem, a folder's name, a glob's fixed part
    (``books/*.txt`` -> ``books``)."""
    parts = Path(first_input).parts
    fixed = next((i for i, part in enumerate(parts) if set(part) & corpus_mod.GLOB_CHARS), len(parts))
    path = Path(*parts[:fixed]) if fixed else Path(".")
    name = path.stem if fixed == len(parts) else path.name
    if name in ("", ".", ".."):
        name = path.resolve().name or "corpus"
    return Path("checkpoints") / name


def train_language_model(
    corpus: Optional[Sequence[str | Path]] = None,
    *,
    out: Optional[str | Path] = None,
    tokenizer: Optional[str] = None,
    vocab_size: Optional[int] = None,
    val_file: Optional[str | Path] = None,
    encoding: str = "utf-8",
    text_column: Optional[str] = None,
    dataset: Optional[str] = None,
    cache_dir: Optional[str | Path] = None,
    resume: bool = False,
    force: bool = False,
    on_progress: Optional[Callable[[Progress], None]] = None,
    on_prepare: corpus_mod.Report = None,
    report_every: int = 10,
    **options: Any,
) -> RunResult:
    """Train a language model and write its run directory.

    ``corpus``: text files, directories, glob patterns, or tables (their text column), read
    as a stream into cached token files (see :mod:`textrnn.data.corpus`); or, with ``dataset``
    (``NAME[:CONFIG]``), a Hugging Face dataset (``corpus`` then names its data files, for
    builders such as ``text`` or ``csv``). ``options`` are :class:`ModelConfig` and
    :class:`TrainConfig` fields (``hidden=256``, ``max_time="5m"``, ...); those not given
    take the tuned defaults, or on ``resume`` the run's own values. ``on_progress`` is
    called every ``report_every`` steps and after each evaluation, ``on_prepare(stage,
    done, total)`` while the corpus is read. Under ``torchrun`` the job trains
    data-parallel (see :mod:`textrnn.training.distributed`).
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
    if dataset is None:
        corpus = [Path(c) for c in (corpus or [DEFAULT_CORPUS])]
        first = corpus[0]
    else:
        first = Path(dataset.replace(":", "-").replace("/", "-"))

    def check_inputs() -> None:  # before the run directory is made or an old run replaced
        if dataset is None and corpus == [DEFAULT_CORPUS] and not DEFAULT_CORPUS.exists():
            raise TextRNNError("no corpus given, and the default (corpora/tinyshakespeare.txt) comes only with "
                               "a source checkout (pip install -e .); pass a text file")
        if dataset is None:
            corpus_mod.expand_inputs(corpus)

    dist.agree(check_inputs)
    out = Path(out) if out is not None else default_run_dir(first)
    cache = Path(cache_dir) if cache_dir is not None else cache_mod.default_cache_dir(out)
    try:
        with _open_run(out, resume, force, dist) as resuming:
            saved, run_tok = None, None
            if resuming:
                saved = checkpoint.read_config(out)
                run_tok = Tokenizer.load(out / checkpoint.TOKENIZER, saved["tokenizer"]["kind"])
                tcfg = TrainConfig.from_dict({**saved["train"], **train_opts})
                # what was given for the data, unless given again
                val_file = val_file or saved["data"].get("val_file")
                text_column = text_column or saved["data"].get("text_column")
                if encoding == "utf-8":
                    encoding = saved["data"].get("encoding", encoding)
            else:
                tcfg = train_config("lm", train_opts)
            # --precision against the device (a resumed run's own), before anything is written
            dist.agree(lambda: autocast_dtype(tcfg.precision, device))
            read_as = encoding
            if dataset is not None:
                corpus, dataset_val = _dataset_files(dist, dataset, corpus, cache, text_column, encoding, on_prepare)
                val_file = val_file or dataset_val
                read_as = "utf-8"  # the dataset's text, exported

            def prep(tok: Optional[Tokenizer]) -> cache_mod.Prepared:
                return cache_mod.prepare(
                    corpus, cache_dir=cache, kind=tokenizer or "char", vocab_size=vocab_size, encoding=read_as,
                    text_column=text_column, val_file=val_file, val_fraction=tcfg.val_fraction,
                    val_max_bytes=tcfg.val_max_bytes, tokenizer=tok, report=on_prepare if dist.is_main else None)

            data = _prepare_everywhere(dist, prep, run_tok)
            tok = data.tokenizer
            if resuming:
                saved = dist.agree(lambda: _resume_config(out, "lm", model_opts, train_opts, tokenizer,
                                                          data.meta["sha256"], data.meta["files"], dist))
                mcfg = ModelConfig.from_dict(saved["model"])
            else:
                mcfg = model_config("lm", model_opts, vocab_size=tok.vocab_size)

            name = ", ".join(data.meta["files"][:3]) + (" ..." if len(data.meta["files"]) > 3 else "")
            pin = device.type == "cuda"

            def batches():
                train = LMBatches(data.train, tcfg.batch_size, tcfg.seq_len, seed=tcfg.seed, name=name,
                                  rank=dist.rank, world=dist.world, pin_memory=pin)
                val_name = str(val_file) if val_file is not None else f"{name} (validation part)"
                return train, eval_batches(data.val, tcfg.seq_len, name=val_name, rank=dist.rank, world=dist.world)

            train_batches, val_batches = dist.agree(batches)
            seed_everything(tcfg.seed)
            model = LanguageModel(mcfg).to(device)
            if dist.active:  # same initial weights everywhere, different dropout masks
                torch.manual_seed(tcfg.seed + 7919 * dist.rank)
            meta = data.meta
            config = {
                "textrnn_version": __version__,
                "task": "lm",
                "model": mcfg.to_dict(),
                "tokenizer": {"kind": tok.kind, "vocab_size": tok.vocab_size, "requested_vocab_size": vocab_size},
                "train": tcfg.to_dict(),
                "data": {"files": meta["files"], "sha256": meta["sha256"], "encoding": encoding,
                         "text_column": text_column, "dataset": dataset, "val_file": meta["val_file"],
                         **{k: meta[k] for k in ("train_bytes", "val_bytes", "train_chars", "val_chars",
                                                 "train_tokens", "val_tokens")}},
                "distributed": {"world_size": dist.world},
            }
            chars_per_token = meta["val_chars"] / max(1, meta["val_tokens"])
            task = LMTask(train_batches, val_batches, device, chars_per_val_token=chars_per_token, dist=dist)
            result = _execute(out, config, tok, model, task, tcfg, resuming,
                              on_progress if dist.is_main else None, report_every, dist=dist)
        distributed.shutdown(wait=True)
        return result
    finally:
        distributed.shutdown(wait=False)  # after an error: do not wait for ranks that may be gone


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


def _dataset_files(dist: Dist, spec: str, data_files: Optional[Sequence[Path]], cache: Path,
                   text_column: Optional[str], encoding: str,
                   report: corpus_mod.Report) -> tuple[list[Path], Optional[Path]]:
    """A Hugging Face dataset's text, exported once to UTF-8 files in the cache (rank 0 first)."""
    from ..data.hf_datasets import export_dataset

    files = dist.agree(lambda: export_dataset(spec, cache, data_files, text_column, report, encoding)
                       if dist.is_main else None)
    files = dist.agree(lambda: files if dist.is_main else
                       export_dataset(spec, cache, data_files, text_column, None, encoding))
    train, val = files
    return [train], val


def _labelled(path: str | Path, *, fmt: Optional[str], encoding: str, text_column: Optional[str],
              label_column: Optional[str]) -> tuple[list[str], list[Any], str, str]:
    from ..data.labels import detect_label_column, detect_text_column
    from ..data.tables import read_table

    table = read_table(path, format=fmt, encoding=encoding)
    text_col = detect_text_column(table, text_column)
    label_col = detect_label_column(table, label_column, required=True)
    texts = ["" if r.get(text_col) is None else str(r.get(text_col)) for r in table.rows]
    return texts, [r.get(label_col) for r in table.rows], text_col, label_col


def _label_indices(values: Sequence[Any], names: Sequence[Any], where: str) -> np.ndarray:
    """Each value's index into the training label ``names`` (compared in normal form)."""
    from ..data.labels import label_key

    lookup = {label_key(n): i for i, n in enumerate(names)}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        key = label_key(v)
        if key not in lookup:
            raise TextRNNError(f"{where}: label {v!r} is not one of the training labels "
                               f"({', '.join(map(str, names))}); fix the file or train with it")
        out[i] = lookup[key]
    return out


def train_classifier(
    train_file: str | Path,
    *,
    out: Optional[str | Path] = None,
    val_file: Optional[str | Path] = None,
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
    format: Optional[str] = None,
    encoding: str = "utf-8",
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
    LM's. ``options`` are :class:`ModelConfig` / :class:`TrainConfig` fields; the
    classifier's defaults are :func:`textrnn.config.task_defaults` ``("classify", ...)``.
    """
    from ..data.labels import parse_labels

    model_opts, train_opts = split_options(options)
    out = Path(out) if out is not None else default_run_dir(train_file)
    with _open_run(out, resume, force) as resuming:
        texts, raw_labels, text_col, label_col = _labelled(train_file, fmt=format, encoding=encoding,
                                                           text_column=text_column, label_column=label_column)
        val_texts = val_raw = None
        if val_file is not None:
            val_texts, val_raw, _, _ = _labelled(val_file, fmt=format, encoding=encoding,
                                                 text_column=text_column, label_column=label_column)
        data_sha = _sha256(*texts, *map(str, raw_labels), *(val_texts or []))
        files = [str(train_file)] + ([str(val_file)] if val_file else [])

        lm = None
        if resuming:
            saved = _resume_config(out, "classify", model_opts, train_opts, tokenizer, data_sha, files)
            tcfg = TrainConfig.from_dict({**saved["train"], **train_opts})
            tok = Tokenizer.load(out / checkpoint.TOKENIZER, saved["tokenizer"]["kind"])
            mcfg = ModelConfig.from_dict(saved["model"])
            names = saved["labels"]
            labels = _label_indices(raw_labels, names, str(train_file))
        else:
            names, idx = parse_labels(raw_labels, column=label_col, source=str(train_file))
            labels = np.asarray(idx, dtype=np.int64)
            tcfg = train_config("classify", train_opts)
            if init_from is not None:
                lm = checkpoint.load(init_from)
                if lm.task != "lm":
                    raise TextRNNError(f"--init-from {init_from}: is a classifier; give a language-model run")
                clash = {k for k in model_opts if k in ("cell", "layers", "hidden", "embed")
                         and model_opts[k] != lm.config["model"][k]}
                if clash:
                    raise TextRNNError(f"--init-from takes the model size from {init_from}; drop "
                                       + ", ".join(f"--{k}" for k in sorted(clash)))
                tok = lm.tokenizer
                shape = {k: lm.config["model"][k] for k in ("cell", "layers", "hidden", "embed")}
                mcfg = model_config("classify", model_opts, vocab_size=tok.vocab_size, num_classes=len(names), **shape)
            else:
                tok = train_tokenizer(tokenizer or "word", texts, vocab_size)
                mcfg = model_config("classify", model_opts, vocab_size=tok.vocab_size, num_classes=len(names))

        from ..classify import encode_texts

        if val_texts is None:
            order = np.random.default_rng(tcfg.seed).permutation(len(texts))
            n_val = max(1, int(round(len(texts) * tcfg.val_fraction)))
            val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
            val_texts, val_labels = [texts[i] for i in val_idx], labels[val_idx]
            texts, labels = [texts[i] for i in train_idx], labels[train_idx]
        else:
            val_labels = _label_indices(val_raw, names, str(val_file))
        from ..data.batches import ClassBatches

        train_ids = encode_texts(tok, texts, tcfg.max_len)
        val_ids = encode_texts(tok, val_texts, tcfg.max_len)
        device = resolve_device(tcfg.device)
        seed_everything(tcfg.seed)
        model = Classifier(mcfg)
        lr_scales: dict[str, float] = {}  # parameters from the LM train slower (discriminative rates)
        if lm is not None:
            missing = model.encoder.load_state_dict(lm.model.encoder.state_dict(), strict=False)
            assert not missing.unexpected_keys, missing
            lr_scales = {f"encoder.{name}": pretrained_lr_scale for name, _ in model.encoder.named_parameters()
                         if name not in missing.missing_keys}
        elif resuming:
            lr_scales = saved.get("lr_scales", {})  # the same optimizer groups as the run had
        model.to(device)
        optimizer = make_optimizer(model, tcfg, lr_scales=lr_scales)
        config = {
            "textrnn_version": __version__,
            "task": "classify",
            "labels": list(names),
            "lr_scales": lr_scales,
            "columns": {"text": text_col, "label": label_col},
            "model": mcfg.to_dict(),
            "tokenizer": {"kind": tok.kind, "vocab_size": tok.vocab_size, "requested_vocab_size": vocab_size},
            "train": tcfg.to_dict(),
            "data": {"files": files, "sha256": data_sha, "encoding": encoding,
                     "init_from": str(init_from) if init_from else None,
                     "train_examples": len(train_ids), "val_examples": len(val_ids)},
        }
        task = ClassifyTask(ClassBatches(train_ids, labels, tcfg.batch_size, seed=tcfg.seed),
                            val_ids, val_labels, names, device)
        return _execute(out, config, tok, model, task, tcfg, resuming, on_progress, report_every, optimizer)
