"""Reading corpora and cutting them into batches.

Language-model batching (truncated BPTT over contiguous streams). The token array is cut
into ``B`` equal streams laid side by side; each step reads the next window of ``T``
tokens from every stream, and the target is the same window shifted by one::

    ids:  a b c d e f g h i j k l m n o p q r s t u v w x      (N tokens, B = 3)

    stream 0 | a b c d e f g h |      window 0    window 1
    stream 1 | i j k l m n o p |  x = a b c d    e f g ...
    stream 2 | q r s t u v w x |  y = b c d e    f g h      (x shifted by one)

Because window ``w + 1`` of stream ``b`` continues window ``w`` of the same stream, the
hidden state is carried from one window to the next (and detached, so gradients stop
at the window boundary). Each epoch starts at a different offset into the streams, so
window boundaries fall in different places from epoch to epoch.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .errors import TextRNNError


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Read a whole text file; clear errors for missing, binary and mis-encoded files."""
    p = Path(path)
    if not p.exists():
        raise TextRNNError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise TextRNNError(f"{p}: is a directory; give a text file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise TextRNNError(f"{p}: cannot read ({e.strerror})") from None
    return decode_bytes(raw, str(p), encoding)


def decode_bytes(raw: bytes, name: str, encoding: str = "utf-8") -> str:
    """Decode ``raw`` read from ``name``; the error names the byte offset and the fix."""
    try:
        codecs_name = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        text = raw.decode(codecs_name)
    except LookupError:
        raise TextRNNError(f"--encoding: unknown encoding {encoding!r}; try utf-8, cp1252 or latin-1") from None
    except UnicodeDecodeError as e:
        if b"\x00" in raw[:8192]:
            raise TextRNNError(f"{name}: looks like a binary file (NUL bytes); give a text file") from None
        line = raw[: e.start].count(b"\n") + 1
        raise TextRNNError(
            f"{name}: not valid {encoding} at byte {e.start} (line {line}); "
            f"pass --encoding (e.g. --encoding cp1252 or --encoding latin-1)"
        ) from None
    if "\x00" in text[:8192]:
        raise TextRNNError(f"{name}: looks like a binary file (NUL bytes); give a text file")
    return text


TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson")


def read_corpus(paths: Sequence[str | os.PathLike], encoding: str = "utf-8",
                text_column: str | None = None) -> str:
    """Read and join several text files (a newline is put between files that lack one).

    A table (CSV, TSV, JSONL) contributes its text column, one row per line, so a language
    model can learn the texts of a classification data set.
    """
    if not paths:
        raise TextRNNError("no corpus given; pass a text file")
    parts = []
    for path in paths:
        if str(path).lower().endswith(TABLE_SUFFIXES):
            from .tables import detect_text_column, read_table

            table = read_table(path, encoding=encoding)
            column = detect_text_column(table, text_column)
            text = "\n".join(str(v) for v in table.values(column) if v is not None) + "\n"
        else:
            text = read_text(path, encoding)
        if parts and parts[-1] and not parts[-1].endswith("\n"):
            parts.append("\n")
        parts.append(text)
    text = "".join(parts)
    if not text.strip():
        names = ", ".join(str(p) for p in paths)
        raise TextRNNError(f"{names}: the corpus is empty; give a file with text in it")
    return text


def split_validation(text: str, val_fraction: float) -> tuple[str, str]:
    """Hold out the last ``val_fraction`` of the characters (the standard split)."""
    cut = len(text) - int(round(len(text) * val_fraction))
    return text[:cut], text[cut:]


def compact_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Store ids as uint16 when the vocabulary fits, else uint32."""
    return ids.astype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


@dataclasses.dataclass
class StreamPosition:
    """Where the LM batcher is: enough to resume exactly."""

    epoch: int = 0
    window: int = 0


class LMBatches:
    """Truncated-BPTT windows over ``batch_size`` contiguous streams (see module doc)."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, seed: int = 0,
                 shift_epochs: bool = True, name: str = "corpus"):
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        stream_len = len(ids) // batch_size
        if stream_len < seq_len + 1:
            need = batch_size * (seq_len + 1)
            raise TextRNNError(
                f"{name}: {len(ids)} tokens is shorter than one batch ({batch_size} streams x "
                f"{seq_len + 1} tokens = {need}); use a longer corpus or lower --batch-size / --seq-len"
            )
        self.streams = torch.from_numpy(
            np.ascontiguousarray(ids[: stream_len * batch_size].reshape(batch_size, stream_len))
        )  # (B, L), compact dtype
        self.stream_len = stream_len
        self.shift_epochs = shift_epochs

    def offset(self, epoch: int) -> int:
        """Start of the first window in ``epoch`` (0 in the first epoch)."""
        if not self.shift_epochs or epoch == 0:
            return 0
        room = min(self.seq_len, self.stream_len - self.seq_len - 1)
        return int(np.random.default_rng([self.seed, epoch]).integers(0, room + 1))

    def windows_in_epoch(self, epoch: int) -> int:
        return (self.stream_len - 1 - self.offset(epoch)) // self.seq_len

    @property
    def tokens_per_epoch(self) -> int:
        return self.batch_size * self.seq_len * self.windows_in_epoch(0)

    def window(self, epoch: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of window ``w`` of ``epoch``: each ``(B, T)`` int64."""
        start = self.offset(epoch) + w * self.seq_len
        chunk = self.streams[:, start : start + self.seq_len + 1].long()  # (B, T+1)
        return chunk[:, :-1], chunk[:, 1:]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass (epoch 0) over all windows, e.g. for evaluation."""
        for w in range(self.windows_in_epoch(0)):
            yield self.window(0, w)


def eval_batches(ids: np.ndarray, seq_len: int, max_streams: int = 16, name: str = "validation") -> LMBatches:
    """Batches for evaluation: few long streams (fewer cold starts), every token scored
    except the ones that do not fill a stream."""
    streams = max(1, min(max_streams, (len(ids) - 1) // (seq_len + 1)))
    if len(ids) < 2:
        raise TextRNNError(f"{name}: too short to evaluate on ({len(ids)} tokens)")
    seq_len = min(seq_len, len(ids) // streams - 1)
    return LMBatches(ids, streams, seq_len, shift_epochs=False, name=name)


def pad_batch(seqs: Sequence[np.ndarray], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences into ``(B, T)`` int64 and their lengths ``(B,)``.
    An empty sequence counts as one padding token (recurrent layers need length >= 1)."""
    lengths = torch.tensor([max(1, len(s)) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.from_numpy(np.asarray(s, dtype=np.int64))
    return ids, lengths


def length_buckets(lengths: Sequence[int], batch_size: int, order: np.ndarray,
                   pool: int = 50) -> list[np.ndarray]:
    """Cut ``order`` (a permutation of example indices) into batches of similar lengths.

    Pools of ``pool * batch_size`` examples are sorted by length and cut into batches, so
    padding stays small while batches still vary from epoch to epoch.
    """
    lengths = np.asarray(lengths)
    batches = []
    span = pool * batch_size
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return batches


class ClassBatches:
    """Shuffled, length-bucketed classification batches; epoch ``e`` is reproducible."""

    def __init__(self, ids: Sequence[np.ndarray], labels: np.ndarray, batch_size: int, seed: int = 0):
        if len(ids) == 0:
            raise TextRNNError("no training examples")
        self.ids, self.labels = list(ids), np.asarray(labels)
        self.lengths = [len(s) for s in self.ids]
        self.batch_size, self.seed = batch_size, seed

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        batches = length_buckets(self.lengths, self.batch_size, rng.permutation(len(self.ids)))
        return [batches[i] for i in rng.permutation(len(batches))]

    def __len__(self) -> int:
        return math.ceil(len(self.ids) / self.batch_size)

    def batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids (B, T), lengths (B,), labels (B,)"""
        ids, lengths = pad_batch([self.ids[i] for i in index])
        return ids, lengths, torch.from_numpy(self.labels[index].astype(np.int64))
