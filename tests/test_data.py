import numpy as np
import pytest

from textrnn.data import LMBatches, eval_batches, read_corpus, read_text, split_validation
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


def test_eval_batches_use_few_streams():
    b = eval_batches(np.arange(10_000), seq_len=100)
    assert b.batch_size == 16
    covered = b.batch_size * b.seq_len * b.windows_in_epoch(0)
    assert covered > 10_000 - 16 * 101


def test_split_is_last_fraction():
    train, val = split_validation("a" * 90 + "b" * 10, 0.1)
    assert train == "a" * 90 and val == "b" * 10


def test_read_errors(tmp_path):
    with pytest.raises(TextRNNError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(TextRNNError, match="is a directory"):
        read_text(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(TextRNNError, match="empty"):
        read_corpus([empty])
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TextRNNError, match="binary"):
        read_text(binary)


def test_not_utf8_names_offset_and_encoding_fixes_it(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("caf\xe9 ok\nna\xefve".encode("latin-1"))
    with pytest.raises(TextRNNError) as e:
        read_text(p)
    msg = str(e.value)
    assert "latin.txt" in msg and "byte 3" in msg and "--encoding" in msg
    assert read_text(p, encoding="latin-1") == "café ok\nnaïve"


def test_bom_is_dropped_and_files_join_with_newline(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"\xef\xbb\xbfone")
    b.write_text("two\n")
    assert read_corpus([a, b]) == "one\ntwo\n"


def test_a_table_contributes_its_text_column(tmp_path):
    p = tmp_path / "reviews.csv"
    p.write_text('id,review,label\n1,"great, fun",pos\n2,dull,neg\n')
    assert read_corpus([p]) == "great, fun\ndull\n"
    assert read_corpus([p], text_column="label") == "pos\nneg\n"
