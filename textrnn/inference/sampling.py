"""How each next token is drawn, by the options of :mod:`textrnn.inference.options`.

The draw (:class:`Draw`, one per stream, and :func:`pick` for a batch of them): the logits
times 1 / temperature, the top-k and top-p filters, the banned words (a token that would
complete one of them is never drawn), then Gumbel-max with the stream's own noise, drawn a
chunk of steps at a time from its own generator (seed + sample index), so a stream's text
depends on its seed, not on what else is sampled beside it. :class:`StopText` ends a stream's
text at the first stop string.
"""

from __future__ import annotations

import secrets
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor

from ..errors import TextRNNError
from .options import SamplingOptions


# -- the draw -------------------------------------------------------------------------------------------
def new_seed() -> int:
    """A fresh random seed (from the OS, not from torch's generator)."""
    return secrets.randbits(31)


def generators(seed: Optional[int], device: torch.device | str, n: int) -> list[torch.Generator]:
    """One random generator per sample, sample ``j``'s seeded ``seed + j`` (so it draws what a single
    sample with that seed draws); no seed: a fresh random one (torch's global RNG is untouched either way)."""
    seed = new_seed() if seed is None else seed
    return [torch.Generator(device=device).manual_seed(seed + j) for j in range(n)]


def noise_chunk(vocab_size: int) -> int:
    """Steps of noise drawn at once: up to 256, at most about 1 MB per sample (a word vocabulary draws fewer)."""
    return max(1, min(256, (1 << 18) // vocab_size))


def gumbel(shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str) -> Tensor:
    """Standard Gumbel noise, -log(E) with E ~ Exponential(1)."""
    return torch.empty(shape, device=device).exponential_(generator=generator).log_().neg_()


def filter_logits(logits: Tensor, top_k: Optional[int] = None, top_p: Optional[float] = None) -> Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus. (B, V) -> (B, V)"""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


class BannedWords:
    """The token sequences of the words never written: ``blocked(history)`` gives the ids that would
    complete one of them after the tokens ``history`` (a single-token word: always). Each word is banned
    as the tokenizer spells it alone and after a space (a BPE piece or a word token may carry the space)."""

    def __init__(self, tokenizer: Any, words: Sequence[str]):
        sequences: set[tuple[int, ...]] = set()
        for word in words if tokenizer is not None else ():
            for spelling in (word, " " + word):
                ids = tuple(int(i) for i in tokenizer.encode(spelling).tolist())
                if tokenizer.unk_id is not None and tokenizer.unk_id in ids:
                    continue  # a word the vocabulary cannot spell is never written anyway
                if spelling != word and tokenizer.kind == "char":
                    continue  # characters: the word as characters, wherever it starts
                if ids:
                    sequences.add(ids)
        self.always = sorted({s[0] for s in sequences if len(s) == 1})
        self.longer = sorted(s for s in sequences if len(s) > 1)
        self.context = max((len(s) - 1 for s in self.longer), default=0)  # history tokens that matter

    def __bool__(self) -> bool:
        return bool(self.always or self.longer)

    def blocked(self, history: Sequence[int]) -> list[int]:
        """Ids that would complete a banned word after ``history`` (the text's tokens so far)."""
        out = list(self.always)
        for s in self.longer:
            k = len(s) - 1
            if len(history) >= k and tuple(history[len(history) - k:]) == s[:-1]:
                out.append(s[-1])
        return out


class StopText:
    """Cuts a stream's text at the first of the ``stops``: :meth:`feed` gives the text that may be written
    now (a possible start of a stop string is held back until it is decided), and whether a stop was met."""

    def __init__(self, stops: Sequence[str]):
        self.stops, self.held, self.stopped = tuple(stops), "", False

    def feed(self, piece: str) -> str:
        if self.stopped or not self.stops:
            return "" if self.stopped else piece
        text = self.held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self.held = True, ""
            return text[:cut]
        keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self.held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The text still held back when the stream ends without a stop."""
        held, self.held = self.held, ""
        return "" if self.stopped else held


class Draw:
    """One stream's draw: its options' per-row part (1 / temperature, filters, banned words), its own random
    generator and Gumbel noise (drawn ``chunk`` steps at a time), the tokens of its text so far (as far back
    as the banned words look), its decoder (None: no text) and its stop strings. :meth:`accept` takes the
    token drawn."""

    def __init__(self, options: SamplingOptions, generator: torch.Generator, decoder: Any, banned: BannedWords,
                 history: Sequence[int], vocab_size: int, device: torch.device | str):
        self.options, self.generator, self.decoder, self.banned = options, generator, decoder, banned
        self.scale = 1.0 if options.greedy else 1.0 / options.temperature
        self.filter = None if options.greedy or (options.top_k is None and options.top_p is None) else \
            (options.top_k, options.top_p)
        self.history = list(history[len(history) - banned.context:]) if banned.context else []
        self.stop = StopText(options.stop)
        self.vocab, self.device, self.chunk = vocab_size, device, noise_chunk(vocab_size)
        self.t, self._noise = 0, torch.empty(0)

    @property
    def done(self) -> bool:
        return self.t >= self.options.length or self.stop.stopped

    def noise(self) -> Optional[Tensor]:
        """This step's Gumbel noise (V,), None for a greedy stream."""
        if self.options.greedy:
            return None
        k = self.t % self.chunk
        if k == 0:
            self._noise = gumbel((min(self.chunk, self.options.length - self.t), self.vocab), self.generator,
                                 self.device)
        return self._noise[k]

    def accept(self, token: int) -> str:
        """Count ``token`` (the one drawn) and give the text it lets this stream write now ("" once stopped;
        the held-back text too at the end)."""
        self.t += 1
        if self.banned.context:
            self.history = (self.history + [token])[-self.banned.context:]
        if self.decoder is None:
            return ""
        text = self.stop.feed(self.decoder(token))
        if self.t >= self.options.length and not self.stop.stopped:
            text += self.stop.feed(self.decoder.flush()) + self.stop.flush()
        return text


def pick(logits: Tensor, draws: Sequence[Draw]) -> Tensor:
    """The next token of each stream (B,) from the logits (B, V) of ``draws`` (one per row): scaled,
    filtered and banned per row, then Gumbel-max with each row's noise (greedy rows: argmax)."""
    scales = [d.scale for d in draws]
    if any(s != 1.0 for s in scales):
        same = all(s == scales[0] for s in scales)
        logits = logits * (scales[0] if same else torch.tensor(scales, device=logits.device)[:, None])
    groups: dict[tuple, list[int]] = {}
    for k, d in enumerate(draws):
        if d.filter is not None:
            groups.setdefault(d.filter, []).append(k)
    for (top_k, top_p), rows in groups.items():
        if len(rows) == len(draws):
            logits = filter_logits(logits, top_k, top_p)
        else:
            index = torch.tensor(rows, device=logits.device)
            logits = logits.index_copy(0, index, filter_logits(logits.index_select(0, index), top_k, top_p))
    for k, d in enumerate(draws):  # (the logits are this step's own: changed in place)
        if d.banned:
            logits[k, d.banned.blocked(d.history)] = float("-inf")
    noise = [d.noise() for d in draws]
    if len(noise) == 1:  # (one stream: no stacking)
        return logits.argmax(dim=-1) if noise[0] is None else (logits + noise[0]).argmax(dim=-1)
    if all(n is None for n in noise):
        return logits.argmax(dim=-1)
    zeros = torch.zeros(logits.shape[-1], device=logits.device)
    return (logits + torch.stack([zeros if n is None else n for n in noise])).argmax(dim=-1)  # (B,)


def draws_for(options: SamplingOptions, tokenizer: Any, seed: int, n: int, history: Sequence[int],
              device: torch.device | str, vocab_size: Optional[int] = None) -> list[Draw]:
    """The draws of the ``n`` samples of a request (sample ``j``'s generator seeded ``seed + j``), each
    decoder having seen the text's last token of ``history`` (word spacing, BPE byte joins). ``tokenizer``
    None: ids only, no text (then ``vocab_size`` is needed, and neither stop strings nor banned words)."""
    if tokenizer is None and (options.stop or options.ban):
        raise TextRNNError("stop strings and banned words need the tokenizer")
    banned = BannedWords(tokenizer, options.ban)
    draws = []
    for g in generators(seed, device, n):
        decoder = None
        if tokenizer is not None:
            decoder = tokenizer.stream_decoder()
            for i in history[-1:]:
                decoder(i)
        draws.append(Draw(options, g, decoder, banned, history, vocab_size or tokenizer.vocab_size, device))
    return draws


def texts_of(stream: Iterator[list[str]], num_samples: int) -> list[str]:
    """The whole text of each sample of a stream of pieces (one list of pieces per step)."""
    parts: list[list[str]] = [[] for _ in range(num_samples)]
    for pieces in stream:
        for acc, piece in zip(parts, pieces):
            acc.append(piece)
    return ["".join(p) for p in parts]
