import numpy as np
import pytest
import torch

from textrnn.data.batches import LMBatches
from textrnn.errors import TextRNNError


def test_batch_layout_and_target_shift():
    ids = np.arange(25, dtype=np.uint16)
    b = LMBatches(ids, batch_size=3, seq_len=3)
    # 25 tokens -> 3 streams of 8: [0..7], [8..15], [16..23]
    windows = list(b)
    assert len(windows) == 2
    x, y = windows[0]
    assert x.tolist() == [[0, 1, 2], [8, 9, 10], [16, 17, 18]]
    assert y.tolist() == [[1, 2, 3], [9, 10, 11], [17, 18, 19]]
    x2, _ = windows[1]
    assert x2[:, 0].tolist() == [3, 11, 19]  # window 2 continues window 1 in every stream
    assert x.dtype.is_floating_point is False and x.dtype.itemsize == 8


def test_epochs_shift_window_boundaries_deterministically():
    ids = np.arange(400, dtype=np.uint16)
    b = LMBatches(ids, batch_size=2, seq_len=10, seed=7)
    assert b.offset(0) == 0
    offsets = {b.offset(e) for e in range(1, 12)}
    assert len(offsets) > 1 and all(0 <= o <= 10 for o in offsets)
    assert LMBatches(ids, 2, 10, seed=7).offset(3) == b.offset(3)
    x, y = b.window(3, 0)
    assert x[0, 0].item() == b.offset(3)
    assert (y[:, :-1] == x[:, 1:]).all()


def test_corpus_shorter_than_one_batch():
    with pytest.raises(TextRNNError, match="shorter than one batch"):
        LMBatches(np.arange(50), batch_size=8, seq_len=10, name="tiny.txt")


def test_ranks_read_the_streams_of_one_process_with_their_total_batch():
    ids = np.arange(1000, dtype=np.uint16)
    whole = LMBatches(ids, batch_size=4, seq_len=10, seed=3)
    parts = [LMBatches(ids, batch_size=2, seq_len=10, seed=3, rank=r, world=2) for r in range(2)]
    for epoch, w in [(0, 0), (0, 5), (2, 3)]:
        joined = np.concatenate([p.chunk(epoch, w).numpy() for p in parts])
        assert (joined == whole.chunk(epoch, w).numpy()).all()
    assert not (parts[0].chunk(0, 0).numpy() == parts[1].chunk(0, 0).numpy()).any()


def test_windows_cross_block_reads():
    ids = np.arange(5000, dtype=np.uint16)
    b = LMBatches(ids, batch_size=2, seq_len=7)
    b.BLOCK_WINDOWS = 3  # force many block reads
    for w in range(b.windows_in_epoch(0)):
        x, y = b.window(0, w)
        assert x[0, 0].item() == 7 * w and x[1, 0].item() == b.stream_len + 7 * w
        assert (y[:, :-1] == x[:, 1:]).all()


def test_pad_batch_pads_right_and_counts_an_empty_text_as_one_pad():
    from textrnn.data.batches import pad_batch

    ids, lengths = pad_batch([np.array([1, 2, 3], dtype=np.uint16), np.array([], dtype=np.int64), [4]], pad_id=9)
    assert ids.tolist() == [[1, 2, 3], [9, 9, 9], [4, 9, 9]] and ids.dtype == torch.long
    assert lengths.tolist() == [3, 1, 1] and lengths.dtype == torch.long
    ids, lengths = pad_batch([[], []])
    assert ids.tolist() == [[0], [0]] and lengths.tolist() == [1, 1]
