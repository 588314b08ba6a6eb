"""Hugging Face datasets as corpora: ``--dataset NAME[:CONFIG]``.

The dataset is read with ``datasets.load_dataset(..., streaming=True)`` (nothing is held in
memory or converted to Arrow) and its text column written once, one row per line, to a
text file in the corpus cache; from there it is a corpus like any other (see
:mod:`textrnn.data.corpus`). The ``validation`` split (or ``valid``, ``dev``) becomes the
validation file when the dataset has one.

Hub datasets need a connection on the first run; local builders work offline, with the
command's inputs as their data files: ``--dataset text notes/*.txt``, ``--dataset csv
reviews.csv --text-column review``, ``--dataset json dump.jsonl``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from .cache import FileHashes, cache_error, cache_key
from .corpus import Report, expand_inputs
from ..errors import TextRNNError
from ..files import atomic_file

VALIDATION_SPLITS = ("validation", "valid", "dev")


def _text_column(row: dict[str, Any], wanted: Optional[str], spec: str) -> str:
    if wanted is not None:
        if wanted not in row:
            raise TextRNNError(f"--dataset {spec}: no column {wanted!r}; it has {', '.join(row)}; "
                               "fix --text-column")
        return wanted
    if "text" in row:
        return "text"
    for name, value in row.items():
        if isinstance(value, str):
            return name
    raise TextRNNError(f"--dataset {spec}: no text column among {', '.join(row)}; pass --text-column")


def _splits(spec: str, data_files: Optional[list[str]], encoding: str) -> Mapping[str, Any]:
    """The dataset's splits by name (an ``IterableDatasetDict``: nothing is read until a
    split is iterated)."""
    name, _, config = spec.partition(":")
    try:
        import datasets
    except ImportError:  # pragma: no cover - a declared dependency
        raise TextRNNError("--dataset needs the 'datasets' package: pip install datasets") from None
    extra = {"encoding": encoding} if data_files and encoding.lower() not in ("utf-8", "utf8") else {}
    try:
        return datasets.load_dataset(name, config or None, streaming=True, data_files=data_files, **extra)
    except (ValueError, KeyError) as e:
        raise TextRNNError(f"--dataset {spec}: cannot load it ({_said(e)})") from None
    except Exception as e:  # noqa: BLE001 - the hub and builders raise many kinds
        raise TextRNNError(f"--dataset {spec}: cannot load it ({type(e).__name__}: {_said(e)}); check the name "
                           "and your connection, or give local files") from None


def _said(e: Exception) -> str:
    """An exception's message on one line, cut short."""
    return " ".join(str(e).split())[:200]


class _NoText(Exception):
    """A split whose rows hold no text."""


def _export(spec: str, split: str, rows: Iterable[dict[str, Any]], text_column: Optional[str], dest: Path,
            report: Report) -> bool:
    """Write the text column of ``split``'s ``rows`` to ``dest`` as UTF-8 (atomically); False
    when they hold no text."""
    column, n, written = None, 0, 0
    try:
        with atomic_file(dest) as f:  # (left unwritten when the split has no text)
            try:
                for row in rows:
                    column = column or _text_column(row, text_column, spec)
                    value = row.get(column)
                    if value is None:
                        continue
                    text = str(value)
                    f.write(text if text.endswith("\n") else text + "\n")
                    written += len(text)
                    n += 1
                    if report and n % 10000 == 0:
                        report(f"dataset {split}", written, 0)
            except TextRNNError:
                raise
            except Exception as e:  # noqa: BLE001 - read errors surface while iterating
                raise TextRNNError(f"--dataset {spec}: reading split {split!r} failed ({type(e).__name__}: "
                                   f"{_said(e)})") from None
            if n == 0:
                raise _NoText
    except _NoText:
        if split == "train":
            raise TextRNNError(f"--dataset {spec}: the {split} split has no text") from None
        return False
    return True


def export_dataset(spec: str, cache_dir: Path, data_files: Optional[Sequence[str | os.PathLike]] = None,
                   text_column: Optional[str] = None, report: Report = None,
                   encoding: str = "utf-8") -> tuple[Path, Optional[Path]]:
    """The train (and validation, if any) text of dataset ``spec`` as UTF-8 files in
    ``cache_dir``. ``encoding`` is that of local ``data_files``.

    Local data (``data_files``, or a dataset folder given as NAME) keys the export by its
    content, so editing it makes a new one; a hub dataset is exported once per name, config
    and column (delete the cache to refresh it).
    """
    files = None
    identity: list[Any] = [spec, text_column, encoding]
    local = [Path(p) for p in data_files or []]
    if not local and Path(spec.partition(":")[0]).is_dir():
        local = [Path(spec.partition(":")[0])]
    if local:
        paths = expand_inputs(local)
        hashes = FileHashes(Path(cache_dir))
        identity.append([[str(p), hashes.sha256(p)] for p in paths])
        hashes.save()
        if data_files:
            files = [str(p) for p in paths]
    folder = Path(cache_dir) / "datasets"
    key = cache_key("dataset", identity)
    train = folder / f"{key}.train.txt"
    val_marker = folder / f"{key}.no-validation"
    val = folder / f"{key}.validation.txt"
    try:
        if not train.exists() or not (val.exists() or val_marker.exists()):
            splits = _splits(spec, files, encoding)
            if not train.exists():
                if "train" not in splits:
                    raise TextRNNError(f"--dataset {spec}: no train split (it has {', '.join(splits) or 'none'}); "
                                       "give a dataset with one")
                _export(spec, "train", splits["train"], text_column, train, report)
            if not (val.exists() or val_marker.exists()):
                held = [s for s in VALIDATION_SPLITS if s in splits] if files is None else []  # (files: all train)
                if not any(_export(spec, s, splits[s], text_column, val, report) for s in held):
                    val_marker.parent.mkdir(parents=True, exist_ok=True)
                    val_marker.touch()
    except OSError as e:
        raise cache_error(Path(cache_dir), e) from None
    return train, (val if val.exists() else None)
