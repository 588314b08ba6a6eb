"""Streaming corpora: inputs, the byte-stream split, errors, the token cache."""

import json
import os

import numpy as np
import pytest

from conftest import needs_cpu_bf16
from textrnn.data import corpus
from textrnn.data.corpus import TokenFile, expand_inputs, prepare, token_dtype
from textrnn.errors import TextRNNError
from textrnn.tokenizer import train_tokenizer

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


def test_token_files(tmp_path):
    assert token_dtype(256) == "uint16" and token_dtype(65536) == "uint16" and token_dtype(65537) == "uint32"
    ids = np.arange(100_000, dtype=np.uint32)
    path = tmp_path / "t.bin"
    ids.tofile(path)
    tf = TokenFile(path, "uint32")
    assert len(tf) == 100_000
    assert (tf.read(99_990, 50) == ids[99_990:]).all()  # clipped at the end
    assert (tf.memmap()[5:9] == ids[5:9]).all()


def test_char_tokenizer_encodes_without_python_objects_per_char():
    tok = train_tokenizer("char", ["abc 我"])
    ids = tok.encode("abcz我", dtype=np.uint16)
    assert ids.dtype == np.uint16 and ids.tolist()[-2] == tok.unk_id
    assert tok.decode(ids) == "abc\ufffd我"


# -- through the pipeline and the CLI ------------------------------------------------------
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


def test_dataset_option_reads_local_files_through_hf_builders(tmp_path, tiny_corpus, monkeypatch):
    from click.testing import CliRunner

    from textrnn.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    table = tmp_path / "reviews.csv"
    lines = tiny_corpus.read_text().splitlines()
    table.write_text("id,review\n" + "".join(f'{i},"{line}"\n' for i, line in enumerate(lines) if '"' not in line))
    args = ["--max-steps", "2", "--hidden", "16", "--embed", "8", "--batch-size", "2", "--seq-len", "8"]
    res = CliRunner().invoke(cli, ["train", "--dataset", "csv", str(table), "--text-column", "review", *args,
                                   "--out", "run"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data"]["dataset"] == "csv"
    assert cfg["data"]["train_chars"] + cfg["data"]["val_chars"] == sum(
        len(line) + 1 for line in lines if line and '"' not in line)  # (empty cells are missing values)
    res = CliRunner().invoke(cli, ["train", "--dataset", "csv", str(table), "--text-column", "nope", *args,
                                   "--out", "run2"])
    assert res.exit_code == 2 and "no column 'nope'" in res.stderr


@needs_cpu_bf16
def test_precision_options(tmp_path, tiny_corpus):
    from textrnn.training.lm import train_language_model

    opts = dict(hidden=16, embed=8, batch_size=2, seq_len=8, max_steps=2, eval_every=2)
    with pytest.raises(TextRNNError, match="fp16 needs a CUDA GPU"):
        train_language_model([tiny_corpus], out=tmp_path / "a", precision="fp16", device="cpu", **opts)
    with pytest.raises(TextRNNError, match="--precision must be one of"):
        train_language_model([tiny_corpus], out=tmp_path / "b", precision="fp8", **opts)
    run = train_language_model([tiny_corpus], out=tmp_path / "c", precision="bf16", device="cpu", **opts)
    assert run.best["val_loss"] < 10  # bf16 autocast on the CPU runs (slowly on most CPUs)


def test_dataset_folder_with_validation_split(tmp_path, tiny_corpus, monkeypatch):
    from textrnn.data.hf_datasets import export_dataset

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / "mydata"
    folder.mkdir()
    text = tiny_corpus.read_text()
    (folder / "train.txt").write_text(text[:4000])
    (folder / "validation.txt").write_text(text[4000:5000])
    train, val = export_dataset(str(folder), tmp_path / "cache")
    assert train.read_text() == text[:4000] + ("" if text[:4000].endswith("\n") else "\n")
    assert val is not None and val.read_text().startswith(text[4000:4100])
    (folder / "train.txt").write_text(text[:3000])  # an edit makes a new export
    train2, _ = export_dataset(str(folder), tmp_path / "cache")
    assert train2 != train and len(train2.read_text()) < len(train.read_text())


def test_a_vocabulary_beyond_uint16_uses_uint32_token_files(tmp_path):
    text = "".join(chr(c) for c in range(0x20000, 0x20000 + 70_000)) + "\n"
    p = tmp_path / "wide.txt"
    p.write_text(text * 2)
    data = _prep(tmp_path, [p], val_fraction=0.3)
    assert data.tokenizer.vocab_size > 1 << 16
    assert data.train.dtype == np.uint32 and data.meta["dtype"] == "uint32"
    ids = np.concatenate([data.train.memmap(), data.val.memmap()])
    assert data.tokenizer.decode(ids) == text * 2


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
