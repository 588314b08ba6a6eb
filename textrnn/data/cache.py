"""The token cache: a corpus's tokenizer and token files, built once and reused.

::

    inputs (see textrnn.data.corpus) ─> tokenizer ─> tokenizers/<key>.json
                                                 └─> tokens/<key>/train.bin, val.bin

The tokenizer is trained on the training part of the stream, streamed, and both parts are
encoded, streamed, to flat files of token ids (``uint16`` when the vocabulary fits, else
``uint32``; ``np.memmap(path, dtype)`` maps them).

Everything lands in a cache folder beside the runs (``checkpoints/.textrnn-cache``, or
``$TEXTRNN_CACHE``), keyed by the SHA-256 of the inputs' bytes and the options that shape
the result, so a second run on the same text starts at once. File hashes are remembered
by path, size, modification and change time and inode, so unchanged files are not read
again either. The cache can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..condition import MAX_LABELS, line_start, markers, too_many_labels
from ..errors import TextRNNError
from ..files import atomic_file, atomic_write, temp_dir
from . import corpus
from .corpus import (Report, Segment, expand_inputs, nonblank, read_stream, segments, split_tail, stream_codec,
                     total_bytes)
from .tables import TABLE_SUFFIXES, labelled_lines, text_column_lines

Condition = tuple[str, list[str]]  # --condition-column and its labels, sorted

FORMAT = 1  # bump when the cache layout or the encoding rules change


# -- keys and file hashes -------------------------------------------------------------------
class FileHashes:
    """SHA-256 of files, remembered by (path, size, mtime, inode, ctime) so unchanged files
    are not re-read."""

    def __init__(self, cache_dir: Path):
        self.path = cache_dir / "file-hashes.json"
        try:
            self.known: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def sha256(self, path: Path, report: Report = None) -> str:
        try:
            st = path.stat()
        except OSError as e:
            raise TextRNNError(f"{path}: cannot read ({e.strerror})") from None
        key = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]  # (ctime: a copy that kept mtime)
        hit = self.known.get(key)
        if hit and hit[:-1] == stamp:
            return hit[-1]
        h = hashlib.sha256()
        done = 0
        try:
            with open(path, "rb") as f:
                while block := f.read(corpus.CHUNK_BYTES):
                    h.update(block)
                    done += len(block)
                    if report:
                        report("hash", done, st.st_size)
        except OSError as e:
            raise TextRNNError(f"{path}: cannot read ({e.strerror})") from None
        self.known[key] = [*stamp, h.hexdigest()]
        self.changed = True
        return h.hexdigest()

    def save(self) -> None:
        if self.changed:
            try:
                atomic_write(self.path, json.dumps(self.known))
            except OSError:
                pass  # only a speed-up for the next run


def cache_error(cache_dir: Path, e: OSError) -> TextRNNError:
    """The one-line error for a cache folder that cannot be written."""
    return TextRNNError(f"{cache_dir}: cannot write the corpus cache ({e.strerror or e}); free disk space "
                        "or set TEXTRNN_CACHE to another folder")


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([FORMAT, *parts], sort_keys=True).encode()).hexdigest()[:32]


def default_cache_dir(run_dir: Path) -> Path:
    env = os.environ.get("TEXTRNN_CACHE")
    return Path(env) if env else Path(run_dir).resolve().parent / ".textrnn-cache"


# -- token files ------------------------------------------------------------------------
class TokenFile:
    """A flat array of token ids on disk: raw little-endian ``uint16`` or ``uint32``.

    ``read`` uses ``pread`` so the training process's memory does not grow with the file
    (pages of a memory map would count as resident); :meth:`memmap` maps it for analysis.
    """

    def __init__(self, path: str | os.PathLike, dtype: str):
        self.path, self.dtype = Path(path), np.dtype(dtype)
        self.size = self.path.stat().st_size // self.dtype.itemsize
        self._fd: Optional[int] = None

    def __len__(self) -> int:
        return self.size

    def read(self, start: int, count: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        count = max(0, min(count, self.size - start))
        raw = os.pread(self._fd, count * self.dtype.itemsize, start * self.dtype.itemsize)
        return np.frombuffer(raw, dtype=self.dtype)

    def memmap(self) -> np.ndarray:
        return np.memmap(self.path, dtype=self.dtype, mode="r")

    def __del__(self):
        if self._fd is not None:
            os.close(self._fd)


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def encode_stream(tok, texts: Iterable[str], dest: Path) -> tuple[int, int]:
    """Encode text chunks to the token file ``dest``; returns (tokens, characters)."""
    dtype = token_dtype(tok.vocab_size)
    n_tokens = n_chars = 0
    with open(dest, "wb") as f:
        for chunk in texts:
            n_chars += len(chunk)
            ids = tok.encode(chunk, dtype=dtype)
            f.write(ids.tobytes())
            n_tokens += len(ids)
        f.flush()
        os.fsync(f.fileno())
    return n_tokens, n_chars


# -- preparing a corpus -----------------------------------------------------------------
@dataclass
class Prepared:
    """A corpus ready to train on."""

    tokenizer: Any  # textrnn.tokenizer.Tokenizer
    train: TokenFile
    val: TokenFile
    meta: dict[str, Any]  # files, sha256, byte/char/token counts, cache paths, reused flags


def materialize_table(path: Path, encoding: str, text_column: Optional[str], cache: Path,
                      hashes: FileHashes, condition: Optional[Condition] = None) -> Path:
    """A table's text column as a UTF-8 text file in the cache (one row per line), streamed;
    with ``condition``, each line starts with its row's label marker (:mod:`textrnn.condition`)."""
    key = cache_key("table", hashes.sha256(path), encoding, text_column, *(condition or ()))
    dest = cache / "texts" / f"{key}.txt"
    if not dest.exists():
        with atomic_file(dest, "wb") as f:
            if condition is None:
                for line in text_column_lines(path, encoding=encoding, text_column=text_column):
                    f.write(line.encode("utf-8"))
                return dest
            column, labels = condition
            starts = {label: line_start(marker) for label, marker in markers(labels).items()}
            for label, line in labelled_lines(path, encoding=encoding, text_column=text_column, label_column=column):
                if label not in starts:
                    raise TextRNNError(f"{path}: label {label!r} of --condition-column {column} is not among the "
                                       f"training data's ({', '.join(labels)}); drop those rows")
                f.write((starts[label] + line).encode("utf-8"))
    return dest


def condition_labels(paths: Sequence[str | os.PathLike], *, encoding: str, text_column: Optional[str],
                     column: str) -> list[str]:
    """The labels of ``column`` in the tables ``paths`` (sorted); anything but tables, or more than
    :data:`textrnn.condition.MAX_LABELS` labels, is an error."""
    files = expand_inputs(paths)
    others = [str(p) for p in files if not str(p).lower().endswith(TABLE_SUFFIXES)]
    if others:
        raise TextRNNError(f"{others[0]}: --condition-column needs labelled tables (.csv, .tsv, .jsonl); "
                           "give the text with its labels in a table")
    labels: set[str] = set()
    for p in files:
        for label, _ in labelled_lines(p, encoding=encoding, text_column=text_column, label_column=column):
            labels.add(label)
            if len(labels) > MAX_LABELS:  # (an ID column: stop before it makes a huge vocabulary)
                raise too_many_labels(column, str(p))
    return sorted(labels)


def prepare(
    inputs: Sequence[str | os.PathLike],
    *,
    cache_dir: Path,
    kind: str = "char",
    vocab_size: Optional[int] = None,
    encoding: str = "utf-8",
    text_column: Optional[str] = None,
    val_file: Optional[str | os.PathLike] = None,
    val_fraction: float = 0.1,
    val_max_bytes: Optional[int] = None,
    tokenizer: Any = None,
    start_from: Any = None,
    condition: Optional[Condition] = None,
    report: Report = None,
) -> Prepared:
    """Stream ``inputs`` into a tokenizer and token files under ``cache_dir`` (or reuse them).

    Pass ``tokenizer`` to encode with an existing tokenizer (resume; other ranks) instead
    of training one of ``kind``; the tokenizer's own kind then decides how the text is
    read, so the ids are those a fresh preparation with it gives (``kind`` is ignored).
    ``start_from``: a pretrained model's tokenizer (fine-tuning): the corpus is encoded with
    it, a char tokenizer first gaining the corpus's characters it lacks (new ids after its own).
    ``condition``: (column, labels): tables' rows start with their label's marker (see
    :mod:`textrnn.condition`).
    """
    codec = stream_codec(encoding)
    cache_dir = Path(cache_dir)
    hashes = FileHashes(cache_dir)
    files = expand_inputs(inputs)
    val_paths = expand_inputs([val_file]) if val_file is not None else []
    try:
        train_files = _text_files(files, codec, encoding, text_column, cache_dir, hashes, condition)
        val_files = _text_files(val_paths, codec, encoding, text_column, cache_dir, hashes, condition)
    except OSError as e:
        raise cache_error(cache_dir, e) from None
    segs = segments(train_files)
    if val_file is not None:
        split: list[Any] = ["file"]
        train_segs, val_segs = segs, segments(val_files)
    else:
        split = ["tail", val_fraction, val_max_bytes]
        train_segs, val_segs = split_tail(segs, val_fraction, val_max_bytes)
    data_sha = _data_key(train_files, val_files if val_file is not None else None, split, hashes, report)
    if not any(nonblank(s) for s in train_segs):
        raise TextRNNError(f"{', '.join(map(str, files))}: the corpus is empty; give a file with text in it")

    reused = {"tokenizer": tokenizer is not None, "tokens": False}
    reserved = list(markers(condition[1]).values()) if condition else []  # (every label's, however rare)
    try:
        if tokenizer is None and start_from is not None:
            own = _tokenizer(cache_dir, data_sha, "char", None, train_segs, report, reserved)[0] \
                if start_from.kind == "char" else start_from
            tokenizer = start_from.with_tokens_of(own)
        elif tokenizer is None:
            tokenizer, reused["tokenizer"] = _tokenizer(cache_dir, data_sha, kind, vocab_size, train_segs, report,
                                                        reserved)
        tok_sha = hashlib.sha256(tokenizer.to_json().encode()).hexdigest()
        ids_dir = cache_dir / "tokens" / cache_key("ids", data_sha, tok_sha)
        if (ids_dir / "meta.json").exists():
            meta = json.loads((ids_dir / "meta.json").read_text())
            reused["tokens"] = True
        else:
            meta = _encode_to_cache(tokenizer, train_segs, val_segs, ids_dir, report)
    except OSError as e:
        raise cache_error(cache_dir, e) from None
    dtype = meta["dtype"]
    names = [str(p) for p in files] + ([str(val_file)] if val_file is not None else [])
    meta = {**meta, "files": names, "sha256": data_sha, "encoding": encoding,
            "val_file": str(val_file) if val_file is not None else None,
            "token_dir": str(ids_dir), "reused": reused}
    return Prepared(tokenizer, TokenFile(ids_dir / "train.bin", dtype), TokenFile(ids_dir / "val.bin", dtype), meta)


def _text_files(paths: Sequence[Path], codec: str, encoding: str, text_column: Optional[str], cache_dir: Path,
                hashes: FileHashes, condition: Optional[Condition] = None) -> list[tuple[Path, str]]:
    """Each input with the codec to read it in (a table becomes a UTF-8 text file)."""
    return [(materialize_table(p, encoding, text_column, cache_dir, hashes, condition), "utf-8")
            if str(p).lower().endswith(TABLE_SUFFIXES) else (p, codec) for p in paths]


def _data_key(train_files: list[tuple[Path, str]], val_files: Optional[list[tuple[Path, str]]], split: list[Any],
              hashes: FileHashes, report: Report) -> str:
    """The corpus's key: its files' SHA-256 and codecs (and the validation file's, if any) and
    how it is split. (A table's column is in its cached text's hash.)"""
    done, total = 0, sum(p.stat().st_size for p, _ in train_files + (val_files or []))

    def fingerprint(path: Path, codec: str) -> list[str]:
        nonlocal done
        sha = hashes.sha256(path, report and (lambda stage, part, _: report(stage, done + part, total)))
        done += path.stat().st_size
        return [sha, codec]

    shas: list[Any] = [fingerprint(p, c) for p, c in train_files]
    if val_files is not None:
        shas.append(["val", *(fingerprint(p, c) for p, c in val_files)])
    hashes.save()
    return cache_key("data", shas, split)


def _tokenizer(cache_dir: Path, data_sha: str, kind: str, vocab_size: Optional[int], train_segs: list[Segment],
               report: Report, reserved: Sequence[str] = ()) -> tuple[Any, bool]:
    """The tokenizer of ``kind`` trained on the training part (``reserved``: tokens it always has,
    a conditioned corpus's label markers), from the cache if it is there; and whether it was."""
    from ..tokenizer import Tokenizer, train_tokenizer

    key = cache_key("tok", data_sha, kind, vocab_size, *([list(reserved)] if reserved else []))
    tok_path = cache_dir / "tokenizers" / f"{key}.json"
    if tok_path.exists():
        return Tokenizer.load(tok_path, kind), True
    tokenizer = train_tokenizer(kind, read_stream(train_segs, report, "tokenizer", aligned=kind != "char"),
                                vocab_size, reserved=reserved)
    atomic_write(tok_path, tokenizer.to_json())
    return tokenizer, False


def _encode_to_cache(tokenizer, train_segs: list[Segment], val_segs: list[Segment], ids_dir: Path,
                     report: Report) -> dict[str, Any]:
    """Encode both parts into ``ids_dir`` (built beside it and renamed into place), read as
    ``tokenizer``'s kind needs (see :func:`textrnn.data.corpus.read_stream`)."""
    aligned = tokenizer.kind != "char"
    ids_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(ids_dir.parent, f".{ids_dir.name}.")
    try:
        train_tokens, train_chars = encode_stream(
            tokenizer, read_stream(train_segs, report, "encode", aligned), tmp / "train.bin")
        val_tokens, val_chars = encode_stream(
            tokenizer, read_stream(val_segs, report, "encode val", aligned), tmp / "val.bin")
        meta = {"dtype": token_dtype(tokenizer.vocab_size), "train_tokens": train_tokens, "val_tokens": val_tokens,
                "train_chars": train_chars, "val_chars": val_chars,
                "train_bytes": total_bytes(train_segs), "val_bytes": total_bytes(val_segs)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, ids_dir)
        except OSError:  # another process prepared the same corpus meanwhile
            if not (ids_dir / "meta.json").exists():
                raise
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
