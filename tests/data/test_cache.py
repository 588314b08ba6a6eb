"""The token cache: token files, reuse across runs, keys that see edits."""

import json
import os
import shutil

import numpy as np
import pytest

from textrnn.data import corpus
from textrnn.data.cache import TokenFile, prepare, token_dtype

MIXED = "Café déjà vu 我们今天去公园 🙂🚀 naïve\nline two ends here\n" * 40


def _prep(tmp_path, inputs, **kw):
    return prepare(inputs, cache_dir=tmp_path / "cache", **kw)


def test_second_run_reuses_tokenizer_and_tokens_and_sees_edits(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(MIXED)
    first = _prep(tmp_path, [p])
    assert first.meta["reused"] == {"tokenizer": False, "tokens": False}
    again = _prep(tmp_path, [p])
    assert again.meta["reused"] == {"tokenizer": True, "tokens": True}
    assert again.meta["token_dir"] == first.meta["token_dir"]
    assert (again.train.memmap() == first.train.memmap()).all()
    p.write_text(MIXED + "new text\n")
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    edited = _prep(tmp_path, [p])
    assert edited.meta["reused"]["tokens"] is False and edited.meta["sha256"] != first.meta["sha256"]
    other_kind = _prep(tmp_path, [p], kind="bpe", vocab_size=300)
    assert other_kind.meta["reused"]["tokenizer"] is False


def test_token_files(tmp_path):
    assert token_dtype(256) == "uint16" and token_dtype(65536) == "uint16" and token_dtype(65537) == "uint32"
    ids = np.arange(100_000, dtype=np.uint32)
    path = tmp_path / "t.bin"
    ids.tofile(path)
    tf = TokenFile(path, "uint32")
    assert len(tf) == 100_000
    assert (tf.read(99_990, 50) == ids[99_990:]).all()  # clipped at the end
    assert (tf.memmap()[5:9] == ids[5:9]).all()


def test_training_reuses_the_cache_across_runs(tmp_path, tiny_corpus):
    from textrnn.training.lm import train_language_model

    opts = dict(hidden=16, embed=8, batch_size=2, seq_len=8, max_steps=2, eval_every=2)
    first = train_language_model([tiny_corpus], out=tmp_path / "runs" / "a", **opts)
    second = train_language_model([tiny_corpus], out=tmp_path / "runs" / "b", **{**opts, "hidden": 24})
    cfg_a = json.loads((first.path / "config.json").read_text())
    cfg_b = json.loads((second.path / "config.json").read_text())
    assert cfg_a["data"]["sha256"] == cfg_b["data"]["sha256"]
    assert (first.path / "tokenizer.json").read_text() == (second.path / "tokenizer.json").read_text()
    tokens = list((tmp_path / "runs" / ".textrnn-cache" / "tokens").iterdir())
    assert len(tokens) == 1  # one entry, used by both runs


def test_a_vocabulary_beyond_uint16_uses_uint32_token_files(tmp_path):
    text = "".join(chr(c) for c in range(0x20000, 0x20000 + 70_000)) + "\n"
    p = tmp_path / "wide.txt"
    p.write_text(text * 2)
    data = _prep(tmp_path, [p], val_fraction=0.3)
    assert data.tokenizer.vocab_size > 1 << 16
    assert data.train.dtype == np.uint32 and data.meta["dtype"] == "uint32"
    ids = np.concatenate([data.train.memmap(), data.val.memmap()])
    assert data.tokenizer.decode(ids) == text * 2


def test_a_rewritten_file_with_the_same_size_and_mtime_is_hashed_again(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("abc\n" * 100)
    first = _prep(tmp_path, [p])
    st = p.stat()
    p.write_text("xyz\n" * 100)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p / rsync -t leave it
    second = _prep(tmp_path, [p])
    assert second.meta["sha256"] != first.meta["sha256"]
    assert second.tokenizer.decode(second.train.memmap()).startswith("xyz")


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_a_given_tokenizer_encodes_as_a_fresh_preparation_after_the_tokens_are_deleted(tmp_path, monkeypatch, kind):
    """Resume after the token cache was deleted: the run's tokenizer alone must decide how
    the stream is cut (aligned to lines for word and BPE), not ``kind``'s default."""
    p = tmp_path / "c.txt"
    p.write_text(MIXED)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 16)  # chunk edges inside words
    fresh = _prep(tmp_path, [p], kind=kind, vocab_size=300)
    train, val = np.array(fresh.train.memmap()), np.array(fresh.val.memmap())
    shutil.rmtree(tmp_path / "cache" / "tokens")
    again = _prep(tmp_path, [p], tokenizer=fresh.tokenizer)
    assert again.meta["reused"] == {"tokenizer": True, "tokens": False}
    np.testing.assert_array_equal(again.train.memmap(), train)
    np.testing.assert_array_equal(again.val.memmap(), val)


def test_a_table_corpus_is_streamed_not_read_whole(tmp_path, monkeypatch):
    import tracemalloc

    from textrnn.data import tables
    from textrnn.data.cache import FileHashes, materialize_table

    row = 'id,"a review, with ""quotes""\r\nand a second line",pos\r\n'
    p = tmp_path / "big.csv"
    p.write_text("id,review,label\r\n" + row * 60_000, newline="")  # 3.6 MB
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 16 << 10)
    monkeypatch.setattr(tables, "read_table", None)  # (reading the table whole is not an option)
    tracemalloc.start()
    try:
        text_file = materialize_table(p, "utf-8", None, tmp_path / "cache", FileHashes(tmp_path / "cache"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < p.stat().st_size / 16  # (a few blocks)
    assert text_file.read_bytes() == 'a review, with "quotes"\r\nand a second line\n'.encode() * 60_000
