import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textrnn.errors import TextRNNError
from textrnn.files import atomic_write
from textrnn.tokenizer import REPLACEMENT, Tokenizer, train_tokenizer

MIXED = "Hello, world!\nCafé naïve — 中文字符 and emoji 😀🎉 e\u0301\r\n\ttabs"


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_round_trip_unicode(kind):
    tok = train_tokenizer(kind, [MIXED * 3], vocab_size=300 if kind == "bpe" else None)
    ids = tok.encode(MIXED)
    assert tok.decode(ids) == MIXED


def test_char_is_code_points_not_bytes():
    tok = train_tokenizer("char", ["中😀é"])
    assert len(tok.encode("中😀é")) == 3
    assert tok.vocab_size == 4  # three characters + <unk>


def test_char_unseen_maps_to_unk():
    tok = train_tokenizer("char", ["abc"])
    ids = tok.encode("abz€")
    assert ids[-1] == tok.unk_id and ids[-2] == tok.unk_id
    assert tok.decode(ids) == "ab" + REPLACEMENT * 2
    assert tok.unknown_chars("abz€") == ["z", "€"]


def test_char_fast_path_matches_hf():
    text = MIXED * 2
    tok = train_tokenizer("char", [text[:40]])
    assert tok.encode(text).tolist() == tok.hf.encode(text).ids


def test_word_vocab_cap_and_unk():
    text = "the cat sat on the mat . the dog sat .\n" * 5 + "rare words here"
    tok = train_tokenizer("word", [text], vocab_size=9)
    assert tok.vocab_size == 9  # 8 frequent words + <unk>; "rare words here" left out
    ids = tok.encode("the zebra sat")
    assert ids[1] == tok.unk_id
    assert tok.decode(tok.encode("the cat sat on the mat.\nthe dog")) == "the cat sat on the mat.\nthe dog"


def test_bpe_encodes_anything():
    tok = train_tokenizer("bpe", ["plain ascii only " * 50], vocab_size=280)
    text = "никогда 中文 🎉"
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_save_load_same_ids(tmp_path, kind):
    tok = train_tokenizer(kind, [MIXED * 4], vocab_size=300 if kind == "bpe" else None)
    atomic_write(tmp_path / "tokenizer.json", tok.to_json())
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.kind == kind  # read back from the file's structure
    np.testing.assert_array_equal(again.encode(MIXED), tok.encode(MIXED))
    assert again.decode(again.encode(MIXED)) == tok.decode(tok.encode(MIXED))
    from tokenizers import Tokenizer as HFTokenizer  # a plain Hugging Face file, as the README says

    plain = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert plain.encode("Hello", add_special_tokens=False).ids == tok.encode("Hello").tolist()


def test_stream_decoder_holds_partial_utf8():
    tok = train_tokenizer("bpe", ["abc"], vocab_size=260)
    ids = tok.encode("😀")  # four bytes, four byte-level tokens
    dec = tok.stream_decoder()
    pieces = [dec(int(i)) for i in ids]
    assert pieces[:-1] == ["", "", ""] and pieces[-1] == "😀"


def test_unknown_kind_and_bad_vocab():
    with pytest.raises(TextRNNError, match="--tokenizer"):
        train_tokenizer("bytes", ["x"])
    with pytest.raises(TextRNNError, match="--vocab-size"):
        train_tokenizer("bpe", ["x"], vocab_size=0)


def test_load_garbage(tmp_path):
    p = tmp_path / "tokenizer.json"
    p.write_text("{not json")
    with pytest.raises(TextRNNError, match="tokenizer.json"):
        Tokenizer.load(p)


text_strategy = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(text_strategy)
def test_property_char_round_trip(text):
    tok = train_tokenizer("char", [text])
    assert tok.decode(tok.encode(text)) == text


_BPE = train_tokenizer("bpe", [MIXED * 5], vocab_size=320)


@settings(max_examples=60, deadline=None)
@given(text_strategy)
def test_property_bpe_round_trip(text):
    assert _BPE.decode(_BPE.encode(text)) == text


def test_char_tokenizer_encodes_without_python_objects_per_char():
    tok = train_tokenizer("char", ["abc 我"])
    ids = tok.encode("abcz我", dtype=np.uint16)
    assert ids.dtype == np.uint16 and ids.tolist()[-2] == tok.unk_id
    assert tok.decode(ids) == "abc\ufffd我"


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_encode_many_is_encode_of_each_text_cut_to_max_len(kind):
    tok = train_tokenizer(kind, [MIXED * 4], vocab_size=300 if kind == "bpe" else None)
    texts = ["", "Hello, world!", MIXED, "中文字符 😀\n" * 20]
    many = tok.encode_many(texts, max_len=7)
    assert [ids.tolist() for ids in many] == [tok.encode(t)[:7].tolist() for t in texts]
    assert all(ids.dtype == np.int64 for ids in many)
    assert [len(ids) for ids in tok.encode_many(texts)] == [len(tok.encode(t)) for t in texts]


def test_a_tokenizer_of_unknown_kind_is_refused():
    tok = train_tokenizer("char", ["abc"])
    with pytest.raises(TextRNNError, match="--tokenizer must be one of char, word, bpe, got 'bytes'"):
        Tokenizer.from_json(tok.to_json(), kind="bytes")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, _BPE.vocab_size - 1), max_size=12), st.integers(0, 12))
def test_property_bpe_stream_of_any_ids_is_hf_decoding(ids, cut):
    """Any ids, even bytes that never make a character: the streamed pieces, flushed at
    ``cut`` and at the end, are HF's decoding of each part (U+FFFD for bad bytes)."""
    dec = _BPE.stream_decoder()
    first = "".join(dec(i) for i in ids[:cut]) + dec.flush()
    second = "".join(dec(i) for i in ids[cut:]) + dec.flush()
    assert (first, second) == (_BPE.hf.decode(ids[:cut]), _BPE.hf.decode(ids[cut:]))


def test_stream_decoder_flushes_an_unfinished_character():
    dec = _BPE.stream_decoder()
    assert [dec(int(i)) for i in _BPE.encode("a😀")[:-1]] == ["a", "", ""]
    assert dec.flush() == REPLACEMENT and dec.flush() == ""


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_a_tokenizer_learnt_from_lowercase_text_lowercases_what_it_reads(tmp_path, kind):
    """SST-2 is all lowercase: a tokenizer learnt from it must not make every capitalised word of
    ordinary text unknown. One learnt from cased text keeps case."""
    text = "the film is great . the plot is dull .\n" * 20
    size = 300 if kind == "bpe" else None
    lower = train_tokenizer(kind, [text], vocab_size=size)
    assert lower.encode("The Film is GREAT .").tolist() == lower.encode("the film is great .").tolist()
    atomic_write(tmp_path / "tokenizer.json", lower.to_json())  # the normalizer is part of the saved file
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.encode("The Film").tolist() == lower.encode("the film").tolist()
    cased = train_tokenizer(kind, [text + "The End\n"], vocab_size=size)
    assert cased.encode("The film").tolist() != cased.encode("the film").tolist()
