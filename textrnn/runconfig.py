"""A run's configuration, typed: what ``config.json`` holds, written from and read into :class:`RunConfig`.

Both training pipelines build a :class:`RunConfig` and write :meth:`RunConfig.to_dict`;
:func:`textrnn.checkpoint.load` reads the file back with :meth:`RunConfig.from_dict`, and every
reader then uses attributes (``run.train.seq_len``, ``run.labels``), never string keys.

The layout has a version, ``"schema"`` (:data:`SCHEMA`). A file without it is version 0, the
layout of the files written before (two free-form dicts: a classifier kept its columns under
``"columns"`` and its ``--init-from`` under ``"data"``); it is read into the current layout, so
old checkpoints, the shipped ones included, still load. A field missing from a file takes the
default the code uses (its dataclass declaration: ``max_len`` 512 is :class:`TrainConfig`'s).
Keys this textrnn does not know are ignored: every key a textrnn version wrote is read here (or
mapped, for version 0), so an unknown key is one that no code reads; it is not carried into an
export. A file of a newer schema is refused (the textrnn reading it is too old). Anything else
that does not parse is one :class:`~textrnn.errors.TextRNNError` naming the file and the field.
"""

from __future__ import annotations

import copy
import dataclasses
import reprlib
from dataclasses import dataclass, field
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from .config import TASKS, TOKENIZERS, ModelConfig, TrainConfig
from .labelkey import label_key
from .errors import TextRNNError

SCHEMA = 1
"""The version of config.json's layout this textrnn writes (0: files without ``"schema"``)."""
DTYPES = ("float32", "float16", "int8")


@dataclass(frozen=True)
class TokenizerInfo:
    """The run's tokenizer (the tokenizer itself is tokenizer.json)."""

    kind: Optional[str] = None  # char | word | bpe (None: told by tokenizer.json)
    vocab_size: Optional[int] = None
    requested_vocab_size: Optional[int] = None  # --vocab-size as given


@dataclass(frozen=True)
class DataInfo:
    """What the run was trained on: its inputs, their fingerprint, how they were read, and their size."""

    files: list[str] = field(default_factory=list)
    sha256: Optional[str] = None  # of the data (resume checks it)
    encoding: Optional[str] = None  # how the inputs were decoded (None: the default, utf-8)
    text_column: Optional[str] = None  # table inputs
    label_column: Optional[str] = None  # classifiers
    condition_column: Optional[str] = None  # conditioned language models
    dataset: Optional[str] = None  # --dataset
    val_file: Optional[str] = None
    train_bytes: Optional[int] = None  # language models: the corpus's size
    val_bytes: Optional[int] = None
    train_chars: Optional[int] = None
    val_chars: Optional[int] = None
    train_tokens: Optional[int] = None
    val_tokens: Optional[int] = None
    train_examples: Optional[int] = None  # classifiers: the rows
    val_examples: Optional[int] = None


@dataclass(frozen=True)
class Condition:
    """A conditioned language model's label column and labels (see :mod:`textrnn.condition`)."""

    column: str
    labels: list[str]


@dataclass(frozen=True)
class InitFrom:
    """The run a run started from (``--init-from``: a language model, or a classifier for a classifier)."""

    run: str  # as given (a run directory or a shipped model's name)
    path: Optional[str] = None  # where it was found
    vocab_size: Optional[int] = None  # its tokenizer's size
    added_tokens: Optional[int] = None  # tokens the tokenizer gained (characters, words); None: not recorded


@dataclass(frozen=True)
class Calibration:
    """A classifier's temperature: its probabilities are ``softmax(logits / temperature)``
    (see :mod:`textrnn.inference.calibration`), and what it was fitted on."""

    temperature: float
    fitted_on: Optional[str] = None  # the labelled rows it was fitted on (a file, or "validation")
    rows: Optional[int] = None
    ece_before: Optional[float] = None  # expected calibration error on those rows, at temperature 1
    ece_after: Optional[float] = None  # and at ``temperature``


@dataclass(frozen=True)
class Distributed:
    """How the run was trained under torchrun (a resume needs the same number of processes)."""

    world_size: int = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything ``config.json`` holds. Export fields are set on exports only (see :mod:`textrnn.export.run`)."""

    task: str  # lm | classify
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    tokenizer: TokenizerInfo = field(default_factory=TokenizerInfo)
    data: DataInfo = field(default_factory=DataInfo)
    schema: int = SCHEMA  # the layout's version (a file of an older one is read into this one)
    textrnn_version: Optional[str] = None  # the textrnn that trained it
    labels: Optional[list[Any]] = None  # a classifier's label names, in the order of its outputs
    label_aliases: Optional[dict[str, Any]] = None  # another value -> the label name it stands for (a raw
    # value of the training file, kept when a label was renamed: the shipped sst2's "0" is "negative")
    calibration: Optional[Calibration] = None  # a classifier's fitted temperature (None: 1)
    condition: Optional[Condition] = None
    fit: Optional[dict[str, Any]] = None  # what the fit chose and why (textrnn.training.recipe.Fit.to_dict)
    init_from: Optional[InitFrom] = None
    distributed: Distributed = field(default_factory=Distributed)
    lr_scales: dict[str, float] = field(default_factory=dict)  # a classifier's optimizer groups, for resume
    exported_from: Optional[str] = None  # the run an export was made from
    weights_dtype: Optional[str] = None  # how an export stores its weights: float32 | float16
    embedding_dtype: Optional[str] = None  # int8: the embedding as int8 codes and a scale per row
    recurrent_dtype: Optional[str] = None  # int8: the recurrent matrices too (and int8 products on a CPU)

    def to_dict(self) -> dict[str, Any]:
        """config.json's content (``"schema"`` and the textrnn version first)."""
        d = dataclasses.asdict(self)
        return {"schema": d.pop("schema"), "textrnn_version": d.pop("textrnn_version"), **d}

    @classmethod
    def from_dict(cls, d: Any, where: str = "config.json") -> "RunConfig":
        """The RunConfig of a parsed config.json (any schema up to :data:`SCHEMA`); ``where`` names the
        file in the errors (one line: the field, what is wrong, "the checkpoint is damaged")."""
        if not isinstance(d, dict):
            raise _damaged(where, f"holds {type(d).__name__}, not a JSON object")
        d = copy.deepcopy(d)  # (the RunConfig shares no list with the caller's dict)
        version = d.get("schema", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise _damaged(where, f"schema {version!r} is not a version number")
        if version > SCHEMA:
            raise TextRNNError(f"{where}: written by a newer textrnn (schema {version}; this one reads up to "
                               f"{SCHEMA}); upgrade textrnn to load it")
        if version == 0:
            d = upgrade_v0(d)
        task = task_of(d)
        if task not in TASKS:
            raise _damaged(where, f"unknown task {task!r}")
        if "model" not in d:
            raise _damaged(where, "the model section is missing")
        run = cls(task=task, model=_options(ModelConfig, d["model"], "model", where),
                  train=_options(TrainConfig, d.get("train", {}), "train", where),
                  **{name: _section(name, d.get(name), where) for name in _SECTIONS},
                  **{name: _checked(name, d[name], _HINTS[name], where) for name in _PLAIN if name in d})
        _check_consistent(run, where)
        return run


_HINTS = get_type_hints(RunConfig)
_SECTIONS = {"tokenizer": TokenizerInfo, "data": DataInfo, "condition": Condition, "init_from": InitFrom,
             "distributed": Distributed, "calibration": Calibration}
_OPTIONAL = ("condition", "init_from", "calibration")
_PLAIN = tuple(f.name for f in dataclasses.fields(RunConfig)
               if f.name not in ("task", "model", "train", "schema", *_SECTIONS))


def task_of(d: dict[str, Any]) -> Any:
    """The task a parsed config.json names (``lm`` when it names none, as files of the first versions)."""
    return d.get("task", "lm")


def upgrade_v0(d: dict[str, Any]) -> dict[str, Any]:
    """A version-0 config.json's content in the current layout: a classifier's ``"columns"`` become
    ``data.text_column`` / ``data.label_column`` and its ``data.init_from`` (a name) ``init_from.run``."""
    d = dict(d)
    data = dict(d["data"]) if isinstance(d.get("data"), dict) else d.get("data")
    columns = d.pop("columns", None)
    if isinstance(data, dict):
        if isinstance(columns, dict):
            data.setdefault("text_column", columns.get("text"))
            data.setdefault("label_column", columns.get("label"))
        source = data.pop("init_from", None)
        if source is not None and "init_from" not in d:
            d["init_from"] = {"run": source}
        d["data"] = data
    return d


def _damaged(where: str, what: str) -> TextRNNError:
    return TextRNNError(f"{where}: {what}; the checkpoint is damaged")


def _options(cls: type, value: Any, name: str, where: str) -> Any:
    """A :class:`ModelConfig` / :class:`TrainConfig` section, its values checked as the options check them."""
    given = _fields(cls, value, name, where)
    try:
        return cls(**given)
    except TextRNNError as e:
        raise _damaged(where, f"the {name} section is invalid ({e})") from None


def _section(name: str, value: Any, where: str) -> Any:
    """One of the small sections (:data:`_SECTIONS`)."""
    cls = _SECTIONS[name]
    if value is None:  # (missing, or null: the optional sections are None, the others their defaults)
        return None if name in _OPTIONAL else cls()
    return cls(**_fields(cls, value, name, where))


def _fields(cls: type, value: Any, name: str, where: str) -> dict[str, Any]:
    """The keyword arguments of ``cls`` in the section ``value``: its known keys, each type-checked (unknown
    keys ignored; a missing one takes its default, unless it has none)."""
    if not isinstance(value, dict):
        raise _damaged(where, f"{name} is not a JSON object")
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    missing = [n for n, f in known.items() if n not in value and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _damaged(where, f"{name} has no {missing[0]}")
    return {k: _checked(f"{name}.{k}", v, hints[k], where) for k, v in value.items() if k in known}


def _checked(name: str, value: Any, hint: Any, where: str) -> Any:
    """``value`` if it is of the type ``hint`` (the JSON kinds: None, bool, int, float, str, lists, objects)."""
    if not _matches(value, hint):
        raise _damaged(where, f"{name} is {reprlib.repr(value)}, not {_describe(hint)}")
    return value


def _matches(value: Any, hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union:
        return any(_matches(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _matches(v, args[1]) for k, v in value.items())
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint in (int, float):  # (a JSON number; true and false are not numbers)
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    return isinstance(value, hint)


_NAMES = {type(None): "null", bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _describe(hint: Any) -> str:
    """What the type ``hint`` is called in an error ("a string or null", "a list of whole numbers")."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union:
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return "a list" if args[0] is Any else "a list of " + _describe(args[0]).split(" ", 1)[1] + "s"
    if origin is dict:
        return "a JSON object"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _check_consistent(run: RunConfig, where: str) -> None:
    """What the fields say together: a classifier's labels, one per output; known tokenizer and dtypes."""
    if run.task == "classify" and (run.labels is None or run.model.num_classes != len(run.labels)):
        raise _damaged(where, "the number of labels does not match the model")
    _check_aliases(run, where)
    t = run.calibration.temperature if run.calibration else 1.0
    if not (0 < t < float("inf")):
        raise _damaged(where, f"calibration.temperature is {t!r}, not a positive number")
    if run.tokenizer.kind is not None and run.tokenizer.kind not in TOKENIZERS:
        raise _damaged(where, f"unknown tokenizer kind {run.tokenizer.kind!r}")
    for name in ("weights_dtype", "embedding_dtype", "recurrent_dtype"):
        if getattr(run, name) not in (None, *DTYPES):
            raise _damaged(where, f"unknown {name} {getattr(run, name)!r}")


def _check_aliases(run: RunConfig, where: str) -> None:
    """Each alias stands for one of the labels, and is not another label's name."""
    names = {label_key(n): n for n in run.labels or []}
    for alias, name in (run.label_aliases or {}).items():
        if label_key(name) not in names:
            raise _damaged(where, f"label_aliases maps {alias!r} to {name!r}, which is not one of the labels")
        other = names.get(label_key(alias))
        if other is not None and label_key(other) != label_key(name):
            raise _damaged(where, f"label_aliases maps {alias!r} to {name!r}, but {alias!r} is another label")
