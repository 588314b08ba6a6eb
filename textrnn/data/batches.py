"""Cutting token ids into batches: language models' windows, classifiers' padded batches.

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

import math
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..errors import TextRNNError


class ArrayTokens:
    """An in-memory id array with the ``read`` interface of :class:`textrnn.data.cache.TokenFile`."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, start: int, count: int) -> np.ndarray:
        return self.ids[start : start + count]


class LMBatches:
    """Truncated-BPTT windows over ``batch_size`` contiguous streams (see module doc).

    ``ids`` is an array or a token file read block by block (``read(start, count)``), so a
    corpus larger than memory costs a few MB. With ``world`` processes the corpus is cut
    into ``world * batch_size`` streams and process ``rank`` reads its own ``batch_size`` of
    them: the same streams, in the same order, as one process with ``world`` times the batch.
    """

    BLOCK_WINDOWS = 64  # windows read from disk at a time

    def __init__(self, ids, batch_size: int, seq_len: int, seed: int = 0,
                 shift_epochs: bool = True, name: str = "corpus", rank: int = 0, world: int = 1,
                 pin_memory: bool = False):
        self.src = ids if hasattr(ids, "read") else ArrayTokens(ids)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        streams = batch_size * world
        stream_len = len(self.src) // streams
        if stream_len < seq_len + 1:
            need = streams * (seq_len + 1)
            per = f" ({world} processes x {batch_size})" if world > 1 else ""
            raise TextRNNError(
                f"{name}: {len(self.src)} tokens is shorter than one batch ({streams} streams{per} x "
                f"{seq_len + 1} tokens = {need}); use a longer corpus or lower --batch-size / --seq-len"
            )
        self.stream_len = stream_len
        self.rows = [(rank * batch_size + b) * stream_len for b in range(batch_size)]  # stream starts
        self.shift_epochs = shift_epochs
        self.pin_memory = pin_memory
        self._block: Optional[tuple[int, int, np.ndarray]] = None  # (lo, hi, (B, hi - lo) ids)

    def offset(self, epoch: int) -> int:
        """Start of the first window in ``epoch`` (0 in the first epoch)."""
        if not self.shift_epochs or epoch == 0:
            return 0
        room = min(self.seq_len, self.stream_len - self.seq_len - 1)
        return int(np.random.default_rng([self.seed, epoch]).integers(0, room + 1))

    def windows_in_epoch(self, epoch: int) -> int:
        return (self.stream_len - 1 - self.offset(epoch)) // self.seq_len

    def _span(self, lo: int, hi: int) -> np.ndarray:
        """Ids ``[lo, hi)`` of every stream, ``(B, hi - lo)``, read a block at a time."""
        if self._block is None or not (self._block[0] <= lo and hi <= self._block[1]):
            end = min(self.stream_len, lo + self.BLOCK_WINDOWS * self.seq_len + 1)
            block = np.stack([self.src.read(row + lo, end - lo) for row in self.rows])
            self._block = (lo, end, block)
        b_lo, _, block = self._block
        return block[:, lo - b_lo : hi - b_lo]

    def chunk(self, epoch: int, w: int) -> torch.Tensor:
        """Window ``w`` of ``epoch`` with its next token: ``(B, T + 1)`` int64 (in pinned
        memory when asked, for a non-blocking copy to the GPU)."""
        start = self.offset(epoch) + w * self.seq_len
        span = self._span(start, start + self.seq_len + 1)
        chunk = torch.empty(span.shape, dtype=torch.long, pin_memory=self.pin_memory)
        chunk.numpy()[:] = span
        return chunk

    def window(self, epoch: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of window ``w`` of ``epoch``: each ``(B, T)`` int64."""
        chunk = self.chunk(epoch, w)
        return chunk[:, :-1], chunk[:, 1:]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass (epoch 0) over all windows, e.g. for evaluation."""
        for w in range(self.windows_in_epoch(0)):
            yield self.window(0, w)


def pad_batch(seqs: Sequence[np.ndarray], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences into ``(B, T)`` int64 and their lengths ``(B,)``.
    An empty sequence counts as one padding token (recurrent layers need length >= 1)."""
    rows = [torch.from_numpy(np.asarray(s, dtype=np.int64)) if len(s) else torch.full((1,), pad_id) for s in seqs]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (B,)
    return pad_sequence(rows, batch_first=True, padding_value=pad_id), lengths  # (B, T), (B,)


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
