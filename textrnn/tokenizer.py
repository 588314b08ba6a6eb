"""Character, word and BPE tokenizers on Hugging Face ``tokenizers``.

Every kind is a ``tokenizers.Tokenizer`` underneath and is saved as one ``tokenizer.json``
(the file the HF library reads), with the kind recorded in the checkpoint's config.

- ``char``: one token per Unicode code point (not per byte), so Chinese, accents and emoji
  round-trip exactly. Characters never seen in training map to ``<unk>``. Encoding a
  corpus takes a vectorised path (a code-point lookup table in numpy): no Python object
  per character.
- ``word``: words and punctuation runs, newlines kept as tokens, other whitespace
  dropped; vocabulary capped at ``vocab_size`` with ``<unk>`` for the rest. Decoding
  rebuilds the spacing by rule, so it is readable rather than exact.
- ``bpe``: byte-level BPE trained on the corpus: all 256 bytes are in the vocabulary, so
  any text encodes and ``decode(encode(text)) == text``.

A word or BPE tokenizer learnt from text without a capital letter (SST-2, say) lowercases what
it reads (a ``Lowercase`` normalizer in its ``tokenizer.json``): otherwise every capitalised
word of ordinary text ("The", "Loved") would be unknown to it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from .config import VOCAB_SIZES, check_options
from .errors import TextRNNError

UNK = "<unk>"
REPLACEMENT = "\ufffd"  # what an unknown token decodes to in char and BPE text
NO_SPACE_BEFORE = set(".,;:!?)]}'\n")
NO_SPACE_AFTER = set("([{\n")


def check_kind(kind: str) -> str:
    """``kind`` if it names a tokenizer kind (``config.TOKENIZERS``); else a user error."""
    check_options({"tokenizer": kind})
    return kind


class Tokenizer:
    """A trained tokenizer: ``encode`` text to ids, ``decode`` ids to text.

    Build one with :func:`train_tokenizer` or :meth:`Tokenizer.load`.
    """

    def __init__(self, kind: str, hf: HFTokenizer):
        self.kind = check_kind(kind)
        self.hf = hf
        vocab = hf.get_vocab()
        self.vocab_size = len(vocab)
        self.unk_id = vocab.get(UNK)
        itos = [""] * self.vocab_size
        for token, i in vocab.items():
            itos[i] = token
        self._itos = itos
        if kind == "char":
            # code point -> id lookup over the sorted code points of the vocabulary
            pairs = sorted((ord(t), i) for t, i in vocab.items() if t != UNK)
            self._codepoints = np.array([p[0] for p in pairs], dtype=np.uint32)
            self._cp_ids = np.array([p[1] for p in pairs], dtype=np.int64)
            self._pieces = [REPLACEMENT if t == UNK else t for t in itos]
            self._lut: Optional[np.ndarray] = None
        else:
            self._pieces = itos  # (word's; BPE decodes through HF)

    # -- encoding -----------------------------------------------------------------------
    def encode(self, text: str, dtype: "np.typing.DTypeLike" = np.int64) -> np.ndarray:
        """Token ids of ``text`` as an array of ``dtype`` (int64 unless asked otherwise).

        Long texts are fine: chars go through a code-point lookup table (no Python object
        per character), word and BPE through ``encode_batch`` over pieces cut after newlines.
        """
        if self.kind == "char":
            return self._encode_chars(text).astype(dtype, copy=False)
        pieces = split_pieces(text)
        if len(pieces) == 1:
            return np.asarray(self.hf.encode(pieces[0], add_special_tokens=False).ids, dtype=dtype)
        return np.fromiter((i for e in self._encode_batch(pieces) for i in e.ids), dtype=dtype)

    def encode_many(self, texts: Sequence[str], max_len: Optional[int] = None) -> list[np.ndarray]:
        """Token ids (int64) of each of many short texts (a classifier's rows), each cut to
        ``max_len`` tokens. Word and BPE texts are encoded together, on every core."""
        if self.kind == "char":  # (one token per character)
            return [self._encode_chars(t[:max_len]).astype(np.int64) for t in texts]
        return [np.asarray(e.ids[:max_len], dtype=np.int64) for e in self._encode_batch(list(texts))]

    def _encode_batch(self, texts: list[str]) -> list:
        """HF encodings of ``texts``, in parallel (and without offsets, where HF can)."""
        batch = getattr(self.hf, "encode_batch_fast", self.hf.encode_batch)
        return batch(texts, add_special_tokens=False)

    def _encode_chars(self, text: str) -> np.ndarray:
        if self._lut is None:  # code point -> id, for every code point (4.4 MB, built once)
            self._lut = np.full(0x110000, self.unk_id if self.unk_id is not None else 0, dtype=np.int32)
            self._lut[self._codepoints] = self._cp_ids
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        return self._lut.take(cps)

    def with_tokens_of(self, other: "Tokenizer") -> "Tokenizer":
        """This char tokenizer plus the characters of ``other`` (a char tokenizer) it lacks, as
        new ids after its own (so a model's rows for the old ids stay where they are); word and
        BPE tokenizers are returned as they are."""
        if self.kind != "char" or other.kind != "char":
            return self
        vocab = dict(self.hf.get_vocab())
        for token in sorted(other.hf.get_vocab()):
            if token not in vocab:
                vocab[token] = len(vocab)
        if len(vocab) == self.vocab_size:
            return self
        hf = HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
        hf.pre_tokenizer = _char_pre_tokenizer()
        hf.decoder = decoders.Fuse()
        return Tokenizer("char", hf)

    def with_words_of(self, texts: Iterable[str]) -> "Tokenizer":
        """This word tokenizer plus the words of ``texts`` it lacks (as its own normalizer and
        pre-tokenizer read them), as new ids after its own in order of first appearance, so a
        model's rows for the old ids stay where they are; char and BPE tokenizers are returned
        as they are (use :meth:`with_tokens_of` for characters)."""
        if self.kind != "word":
            return self
        vocab = dict(self.hf.get_vocab())
        size = len(vocab)
        normalizer, pre = self.hf.normalizer, self.hf.pre_tokenizer
        for text in texts:
            text = normalizer.normalize_str(text) if normalizer is not None else text
            for word, _ in pre.pre_tokenize_str(text):
                vocab.setdefault(word, len(vocab))
        if len(vocab) == size:
            return self
        hf = HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
        hf.normalizer, hf.pre_tokenizer = normalizer, pre
        return Tokenizer("word", hf)

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of ``text`` outside a char tokenizer's vocabulary ([] for word and BPE)."""
        if self.kind != "char":
            return []
        return sorted({c for c in text if self.hf.token_to_id(c) is None})

    # -- decoding -----------------------------------------------------------------------
    def decode(self, ids: Iterable[int]) -> str:
        """Text of a sequence of ids (exact inverse of ``encode`` for char and BPE)."""
        stream = self.stream_decoder()
        return "".join(stream(int(i)) for i in ids) + stream.flush()

    def stream_decoder(self) -> "StreamDecoder":
        """A stateful decoder that turns one id at a time into the text it completes."""
        return StreamDecoder(self)

    # -- persistence --------------------------------------------------------------------
    def to_json(self) -> str:
        """A plain Hugging Face ``tokenizer.json`` (``tokenizers.Tokenizer.from_file`` loads it);
        the kind is read back from its structure (:func:`kind_of`)."""
        return self.hf.to_str()

    @classmethod
    def load(cls, path: str | Path, kind: str | None = None) -> "Tokenizer":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise TextRNNError(f"{path}: not a readable textrnn tokenizer.json ({e})") from None
        return cls.from_json(text, kind, name=str(path))

    @classmethod
    def from_json(cls, text: str, kind: str | None = None, name: str = "tokenizer") -> "Tokenizer":
        """The tokenizer saved by :meth:`to_json`."""
        try:
            data = json.loads(text)
            saved_kind = data.pop("textrnn_kind", None)  # (files written before 2026-11-27 name it)
            kind = kind or saved_kind or kind_of(data)
            hf = HFTokenizer.from_str(json.dumps(data))
        except Exception as e:  # noqa: BLE001 - JSON errors, and HF's plain Exception
            raise TextRNNError(f"{name}: not a readable textrnn tokenizer.json ({e})") from None
        return cls(kind, hf)


def kind_of(data: dict) -> str:
    """The kind of a parsed ``tokenizer.json``: BPE by its model, char by its one-code-point
    pre-tokenizer (:func:`_char_pre_tokenizer`), else word."""
    if data.get("model", {}).get("type") == "BPE":
        return "bpe"
    return "char" if data.get("pre_tokenizer") == json.loads(_char_pre_tokenizer().__getstate__()) else "word"


class StreamDecoder:
    """Incremental decoding: ``dec(id)`` returns the text that id completes.

    BPE tokens are byte sequences and may end inside a multi-byte character; HF's
    ``DecodeStream`` holds such tokens back until the character is complete (``""`` until
    then), and :meth:`flush` gives what is still held (bytes that never completed a
    character decode to U+FFFD).
    """

    def __init__(self, tok: Tokenizer):
        self.kind = tok.kind
        self.pieces = tok._pieces
        self.prev = None
        if tok.kind == "bpe":
            self.hf = tok.hf
            self.stream = decoders.DecodeStream(skip_special_tokens=False)
            self.held: list[int] = []  # ids fed since the stream last gave text

    def __call__(self, i: int) -> str:
        if self.kind == "char":
            return self.pieces[i]
        if self.kind == "bpe":
            text = self.stream.step(self.hf, i)
            if text is None:
                self.held.append(i)
                return ""
            self.held.clear()
            return text
        # word: rebuild spaces between words by rule
        piece = self.pieces[i]
        prev, self.prev = self.prev, piece
        if prev is None or piece[:1] in NO_SPACE_BEFORE or prev[-1:] in NO_SPACE_AFTER:
            return piece
        return " " + piece

    def flush(self) -> str:
        if self.kind != "bpe" or not self.held:
            return ""
        text = self.hf.decode(self.held, skip_special_tokens=False)
        self.stream, self.held = decoders.DecodeStream(skip_special_tokens=False), []
        return text


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None = None,
                    reserved: Sequence[str] = ()) -> Tokenizer:
    """Learn a tokenizer of ``kind`` (char, word, bpe) from an iterable of text chunks.

    ``vocab_size`` caps word vocabularies and sets the BPE size (defaults:
    ``config.VOCAB_SIZES``); the char vocabulary is every code point seen. ``reserved``:
    characters a char or word vocabulary always has, each one token, however rare (a
    conditioned corpus's label markers; in a word vocabulary they count towards the cap, right
    after ``<unk>``, and are cut out of any text around them); a BPE tokenizer ignores them.
    """
    check_kind(kind)
    if vocab_size is not None and vocab_size <= 0:
        raise TextRNNError(f"--vocab-size must be positive, got {vocab_size}")
    if kind == "char":
        seen = np.zeros(0x110000, dtype=bool)  # code points seen: no Python object per character
        for chunk in (*reserved, *texts):
            seen[np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)] = True
        vocab = {UNK: 0, **{chr(c): i + 1 for i, c in enumerate(np.flatnonzero(seen))}}
        hf = HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
        hf.pre_tokenizer = _char_pre_tokenizer()
        hf.decoder = decoders.Fuse()
        return Tokenizer(kind, hf)
    if kind == "word" and reserved:  # counted as words too, they would clash with their own special token
        cut = re.compile("[" + "".join(map(re.escape, reserved)) + "]")
        texts = (cut.sub("", text) for text in texts)
    pieces = _Pieces(texts)
    if kind == "word":
        hf = HFTokenizer(models.WordLevel(unk_token=UNK))
        hf.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),
                pre_tokenizers.Split(Regex(r"\w+|[^\w\s]+|\n"), behavior="isolated"),
            ]
        )
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size or VOCAB_SIZES["word"], special_tokens=[UNK, *reserved], show_progress=False
        )
        hf.train_from_iterator(pieces, trainer=trainer)
    else:
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size or VOCAB_SIZES["bpe"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(pieces, trainer=trainer)
    if not pieces.cased:
        hf.normalizer = normalizers.Lowercase()
    return Tokenizer(kind, hf)


def _char_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every code point its own piece


PIECE_CHARS = 1 << 16


def split_pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """Cut ``text`` right after newlines into pieces of about ``size`` characters (or more,
    for a longer line), so ``encode_batch`` can use every core. Word tokens never cross a
    newline, so their ids are those of the whole text; a BPE token that would join a newline
    with the spaces after it is cut in two at a piece boundary (rare, and always the same)."""
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        out.append(text[start:end])
        start = end
    return out or [""]


class _Pieces:
    """The pieces of ``texts`` (:func:`split_pieces`), once; ``cased`` tells, after, whether any
    had a capital letter (a character that lowercasing changes)."""

    def __init__(self, texts: Iterable[str]):
        self.texts, self.cased = texts, False

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.cased = self.cased or text != text.lower()
            yield from split_pieces(text)
