"""Streaming corpora: inputs, the byte stream, decoding, the validation split, errors."""

import numpy as np
import pytest

from textrnn.data import corpus
from textrnn.data.cache import prepare
from textrnn.data.corpus import expand_inputs
from textrnn.errors import TextRNNError

MIXED = "Café déjà vu 我们今天去公园 🙂🚀 naïve\nline two ends here\n" * 40


def _prep(tmp_path, inputs, **kw):
    return prepare(inputs, cache_dir=tmp_path / "cache", **kw)


def test_files_directories_and_globs(tmp_path):
    d = tmp_path / "books"
    (d / "sub").mkdir(parents=True)
    for name in ("b.txt", "a.txt", "sub/c.md", ".hidden.txt"):
        (d / name).write_text(name)
    assert [p.name for p in expand_inputs([d])] == ["a.txt", "b.txt", "c.md"]
    assert [p.name for p in expand_inputs([str(d / "*.txt")])] == ["a.txt", "b.txt"]
    assert [p.name for p in expand_inputs([str(d / "**" / "*.md")])] == ["c.md"]
    with pytest.raises(TextRNNError, match="no file matches"):
        expand_inputs([str(d / "*.csv")])
    with pytest.raises(TextRNNError, match="no such file"):
        expand_inputs([tmp_path / "missing.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextRNNError, match="has no files"):
        expand_inputs([tmp_path / "empty"])


def test_streamed_ids_equal_whole_text_ids_across_tiny_chunks(tmp_path, monkeypatch):
    p = tmp_path / "mixed.txt"
    p.write_text(MIXED)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 7)  # chunk boundaries inside multi-byte characters
    data = _prep(tmp_path, [p], val_fraction=0.25)
    text = p.read_text()
    cut = len(p.read_bytes()) - round(len(p.read_bytes()) * 0.25)
    train_text = p.read_bytes()[:cut].decode("utf-8", "ignore")
    tok = data.tokenizer
    assert tok.vocab_size == len(set(train_text)) + 1
    ids = np.concatenate([data.train.memmap(), data.val.memmap()])
    assert tok.decode(ids) == text
    assert (ids == tok.encode(text)).all()
    assert data.meta["train_chars"] + data.meta["val_chars"] == len(text)
    assert data.meta["val_bytes"] == len(p.read_bytes()) - cut  # cut moved to a char boundary (or not at all)


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_word_and_bpe_stream_round_trip(tmp_path, monkeypatch, kind):
    p = tmp_path / "mixed.txt"
    p.write_text(MIXED)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 64)
    data = _prep(tmp_path, [p], kind=kind, vocab_size=300)
    ids = np.concatenate([data.train.memmap(), data.val.memmap()])
    if kind == "bpe":
        assert data.tokenizer.decode(ids) == MIXED
    else:
        assert data.tokenizer.decode(ids).split() == MIXED.split()


def test_split_is_the_last_fraction_capped(tmp_path):
    p = tmp_path / "ab.txt"
    p.write_text("b\n" + "a\n" * 449 + "b\n" * 50)
    data = _prep(tmp_path, [p], val_fraction=0.1)
    assert data.tokenizer.decode(data.val.memmap()) == "b\n" * 50
    assert data.tokenizer.decode(data.train.memmap()) == "b\n" + "a\n" * 449
    capped = _prep(tmp_path, [p], val_fraction=0.1, val_max_bytes=30)
    assert capped.tokenizer.decode(capped.val.memmap()) == "b\n" * 15


def test_files_join_with_a_newline_and_bom_is_dropped(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"\xef\xbb\xbfone")
    b.write_text("two\n" * 30)
    data = _prep(tmp_path, [a, b], val_fraction=0.01)
    text = data.tokenizer.decode(np.concatenate([data.train.memmap(), data.val.memmap()]))
    assert text == "one\n" + "two\n" * 30


def test_a_table_contributes_its_text_column(tmp_path):
    p = tmp_path / "reviews.csv"
    p.write_text('id,review,label\n' + '1,"great, fun",pos\n2,dull,neg\n' * 5)
    data = _prep(tmp_path, [p], val_fraction=0.2)
    text = data.tokenizer.decode(np.concatenate([data.train.memmap(), data.val.memmap()]))
    assert text == "great, fun\ndull\n" * 5


def test_read_errors_name_the_file_and_the_fix(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(TextRNNError, match="empty"):
        _prep(tmp_path, [empty])
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TextRNNError, match="binary"):
        _prep(tmp_path, [binary])
    with pytest.raises(TextRNNError, match="unknown encoding"):
        _prep(tmp_path, [binary], encoding="klingon")
    with pytest.raises(TextRNNError, match="ASCII-compatible"):
        _prep(tmp_path, [binary], encoding="utf-16")


def test_not_utf8_names_offset_and_line_even_past_the_first_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 16)
    p = tmp_path / "latin.txt"
    p.write_bytes(("ok line\n" * 5 + "caf\xe9 ok\nna\xefve\n").encode("latin-1"))
    with pytest.raises(TextRNNError) as e:
        _prep(tmp_path, [p], val_fraction=0.5)
    msg = str(e.value)
    assert "latin.txt" in msg and "byte 43" in msg and "line 6" in msg and "--encoding" in msg
    data = _prep(tmp_path, [p], encoding="latin-1", val_fraction=0.1)
    assert "café ok\nn" in data.tokenizer.decode(data.train.memmap())


# -- through the pipeline and the CLI ------------------------------------------------------
def test_legacy_encodings_tables_and_multibyte_splits(tmp_path):
    table = tmp_path / "t.csv"
    table.write_bytes(("text\n" + "café naïve\nœuvre\n" * 20).encode("cp1252"))
    data = _prep(tmp_path, [table], encoding="cp1252", val_fraction=0.2)
    text = data.tokenizer.decode(np.concatenate([data.train.memmap(), data.val.memmap()]))
    assert text == "café naïve\nœuvre\n" * 20  # (the table's text is cached as UTF-8 and read back as such)
    gbk = tmp_path / "g.txt"
    gbk.write_bytes("我们今天去公园散步。\n".encode("gbk") * 50)
    for fraction in (0.1, 0.13, 0.37):  # cuts that fall inside two-byte characters move to a newline
        data = _prep(tmp_path, [gbk], encoding="gbk", val_fraction=fraction)
        whole = data.tokenizer.decode(np.concatenate([data.train.memmap(), data.val.memmap()]))
        assert whole == "我们今天去公园散步。\n" * 50


def test_offsets_stay_exact_when_a_block_ends_inside_a_character(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 3)  # blocks end inside the two- and four-byte characters
    for codec, good, bad in (("utf-8", "我们🙂\n", b"ab\xe6\n"), ("gbk", "我们今天\n", b"ab\x81\x20\n")):
        p = tmp_path / f"{codec}.txt"
        raw = good.encode(codec) * 3 + bad  # (the lead byte ends a block: held back, then found invalid)
        p.write_bytes(raw)
        with pytest.raises(TextRNNError, match=rf"not valid {codec} at byte {len(raw) - len(bad) + 2} \(line 4\)"):
            _prep(tmp_path, [p], encoding=codec)


def test_stream_and_table_reader_give_the_same_decoding_errors(tmp_path):
    from textrnn.data.tables import read_table

    cases = {"bad.txt": "ok\ncaf\xe9\n".encode("latin-1"), "nul.txt": b"text\x00\n" * 3}
    for name, raw in cases.items():
        p = tmp_path / name
        p.write_bytes(raw)
        with pytest.raises(TextRNNError) as streamed:
            _prep(tmp_path, [p])
        with pytest.raises(TextRNNError) as whole:
            read_table(p)
        assert str(streamed.value) == str(whole.value)
    with pytest.raises(TextRNNError) as whole:
        read_table(p, encoding="klingon")
    with pytest.raises(TextRNNError) as streamed:
        _prep(tmp_path, [p], encoding="klingon")
    assert str(streamed.value) == str(whole.value)
