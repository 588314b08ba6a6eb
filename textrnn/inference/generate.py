"""Sampling text from a language model, one step per token.

The prompt is run through the network once to set the recurrent state; after that each
new token costs one step of the :class:`~textrnn.model.Stepper` (never a re-run of the
prefix). ``num_samples`` streams are sampled together as one batch (:func:`generate_many`: any
number, batch after batch, one record each). Sampling options:
temperature, top-k, top-p (nucleus) and greedy; ``<unk>`` is never sampled.
"""

from __future__ import annotations

import inspect
import secrets
from typing import Any, Iterator, Optional, Sequence

import torch

from ..errors import TextRNNError
from ..model import LanguageModel
from .stepper import Stepper
from ..tokenizer import Tokenizer


CLI_NAMES = {"temperature": "--temp", "top_k": "--top-k", "top_p": "--top-p", "greedy": "--greedy",
             "length": "--length", "num_samples": "--num-samples", "prompt": "--prompt"}
"""How the messages of :func:`check_options` and :func:`encode_prompt` name each option (the
command's flags; ``textrnn serve`` names its JSON fields)."""


class OptionError(TextRNNError):
    """A sampling option out of range; ``field`` is the option (a key of :data:`CLI_NAMES`)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_options(vocab_size: int, temperature: float, top_k: Optional[int], top_p: Optional[float],
                  greedy: bool, length: int, num_samples: int, names: dict[str, str] = CLI_NAMES) -> None:
    """Raise an :class:`OptionError` for the first option out of range, named as ``names`` names it."""
    if not greedy and not temperature > 0:
        raise OptionError("temperature", f"{names['temperature']} must be > 0 (got {temperature}); "
                          f"use {names['greedy']} for argmax decoding")
    if top_p is not None and not 0 < top_p <= 1:
        raise OptionError("top_p", f"{names['top_p']} must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise OptionError("top_k", f"{names['top_k']} must be >= 1, got {top_k}")
    if top_k is not None and top_k > vocab_size:
        raise OptionError("top_k", f"{names['top_k']} must be at most the vocabulary size {vocab_size}, got {top_k}")
    if length < 0:
        raise OptionError("length", f"{names['length']} must be >= 0, got {length}")
    if num_samples <= 0:
        raise OptionError("num_samples", f"{names['num_samples']} must be positive, got {num_samples}")


def filter_logits(logits: torch.Tensor, top_k: Optional[int] = None, top_p: Optional[float] = None) -> torch.Tensor:
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


def sample_ids(
    model: LanguageModel,
    prompt_ids: list[int],
    length: int,
    *,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    greedy: bool = False,
    num_samples: int = 1,
    seed: Optional[int] = None,
    banned: Optional[list[int]] = None,
    label: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield ``length`` steps of sampled ids, each ``(num_samples,)``, after the prompt. Sample ``j``
    draws from its own generator seeded ``seed + j`` (so it is the text a single sample with that seed
    gives); no seed: a fresh random one (torch's global RNG is untouched either way)."""
    if not prompt_ids:
        raise TextRNNError("the prompt is empty")
    device = next(model.parameters()).device
    gens = sampling_generators(seed, device, num_samples)
    model.eval()
    with torch.inference_mode():
        # temperature and banned tokens are folded into the head once, not applied per step
        stepper = Stepper(model, logit_scale=1.0 if greedy else 1.0 / temperature, banned=banned, label=label)
        state = run_prefix(model, prompt_ids[:-1], None, num_samples)
        if state is None:
            state = stepper.initial_state(num_samples, device)
        token = torch.full((num_samples,), prompt_ids[-1], dtype=torch.long, device=device)  # (N,)
        for token, _ in sample_steps(stepper, token, state, length, gens, greedy=greedy, top_k=top_k, top_p=top_p):
            yield token


def sampling_generators(seed: Optional[int], device: torch.device, n: int) -> list[torch.Generator]:
    """One random generator per sample, sample ``j``'s seeded ``seed + j`` (so it draws what a single
    sample with that seed draws); no seed: a fresh random one (torch's global RNG is untouched either way)."""
    seed = new_seed() if seed is None else seed
    return [torch.Generator(device=device).manual_seed(seed + j) for j in range(n)]


def new_seed() -> int:
    """A fresh random seed (from the OS, not from torch's generator)."""
    return secrets.randbits(31)


def run_prefix(model: LanguageModel, ids: list[int], state: Optional[list], batch: int) -> Optional[list]:
    """The :class:`Stepper` state after running ``ids`` through the recurrent layers once (no
    output layer), starting from the Stepper ``state`` (None: zeros); ``state`` itself when
    ``ids`` is empty. Use under ``torch.inference_mode()``."""
    if not ids:
        return state
    device = next(model.parameters()).device
    prefix = torch.tensor([ids], device=device).expand(batch, -1)  # (N, P)
    _, module_state = model.encoder(prefix, None if state is None else Stepper.to_module_state(state))
    return Stepper.from_module_state(module_state)


def sample_steps(stepper: Stepper, token: torch.Tensor, state: list, length: int, gens: list[torch.Generator], *,
                 greedy: bool = False, top_k: Optional[int] = None,
                 top_p: Optional[float] = None) -> Iterator[tuple[torch.Tensor, list]]:
    """From the last token seen, ``token`` (N,), and the state before it, yield ``length``
    sampled tokens (N,), each with the state before it (the state after the previous token).
    Temperature and banned tokens are the ``stepper``'s; sample ``j`` draws from ``gens[j]``. Use under
    ``torch.inference_mode()``."""
    filtered = top_k is not None or top_p is not None
    noise = torch.empty(0)
    chunk = 1
    for t in range(length):
        logits, state = stepper(token, state)  # (N, V)
        if greedy:
            token = logits.argmax(dim=-1)
            yield token, state
            continue
        if filtered:
            logits = filter_logits(logits, top_k, top_p)
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample from softmax(logits);
        # the noise is drawn for many steps at once, which is much cheaper per step.
        if t == 0:
            chunk = noise_chunk(logits.shape[-1])
        if t % chunk == 0:
            steps = min(chunk, length - t)
            noise = torch.stack([_gumbel((steps, logits.shape[-1]), g, token.device) for g in gens], dim=1)  # (S, N, V)
        token = (logits + noise[t % chunk]).argmax(dim=-1)  # (N,)
        yield token, state


def noise_chunk(vocab_size: int) -> int:
    """Steps of noise drawn at once: up to 256, at most about 1 MB per sample (a word vocabulary draws fewer)."""
    return max(1, min(256, (1 << 18) // vocab_size))


def _gumbel(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Standard Gumbel noise, -log(E) with E ~ Exponential(1)."""
    return torch.empty(shape, device=device).exponential_(generator=gen).log_().neg_()


def generate(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str = "",
    length: int = 500,
    *,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    greedy: bool = False,
    num_samples: int = 1,
    seed: Optional[int] = None,
    ban: Sequence[int] = (),
    label: int = 0,
) -> Iterator[list[str]]:
    """Stream generated text: yields, per step, one text piece for each sample. ``ban``: token ids
    never sampled (besides ``<unk>``; e.g. a conditioned model's label markers); ``label``: a
    conditioned model's label (1 + its index) for every step (see :mod:`textrnn.condition`).

    ``length`` counts tokens (characters for a char model). The prompt itself is not
    yielded. Same seed and checkpoint give the same text.
    """
    check_options(tokenizer.vocab_size, temperature, top_k, top_p, greedy, length, num_samples)
    prompt_ids = encode_prompt(tokenizer, prompt)
    decoders = [tokenizer.stream_decoder() for _ in range(num_samples)]
    for d in decoders:  # let word spacing and BPE byte joins see the prompt's end
        for i in prompt_ids[-1:]:
            d(i)
    banned = banned_ids(tokenizer, ban) or None
    for tokens in sample_ids(model, prompt_ids, length, temperature=temperature, top_k=top_k,
                             top_p=top_p, greedy=greedy, num_samples=num_samples, seed=seed,
                             banned=banned, label=label):
        yield [d(i) for d, i in zip(decoders, tokens.tolist())]
    tails = [d.flush() for d in decoders]
    if any(tails):
        yield tails


def banned_ids(tokenizer: Tokenizer, ban: Sequence[int] = ()) -> list[int]:
    """The token ids sampling never gives: ``<unk>`` (if the vocabulary has one) and ``ban``."""
    return ([tokenizer.unk_id] if tokenizer.unk_id is not None else []) + list(ban)


def generate_many(model: LanguageModel, tokenizer: Tokenizer, prompt: str = "", length: int = 500, *,
                  num_samples: int = 1, batch_size: int = 100, seed: Optional[int] = None,
                  **options: Any) -> Iterator[dict[str, Any]]:
    """Sample ``num_samples`` texts in batches of ``batch_size``; yield one record per sample, in
    order: ``sample`` (1, 2, ...), ``seed`` (that sample's own: ``generate(..., seed=it)`` gives its
    text again), ``prompt``, ``text`` (the continuation) and the settings (``length`` and the
    ``options``: temperature, top_k, top_p, greedy)."""
    base = new_seed() if seed is None else seed
    for first in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - first)
        texts = joined(generate(model, tokenizer, prompt, length, num_samples=n, seed=base + first, **options), n)
        for j, text in enumerate(texts):
            yield {"sample": first + j + 1, "seed": base + first + j, "prompt": prompt, "text": text,
                   "length": length, **{k: options.get(k, d) for k, d in SETTINGS.items()}}


def joined(stream: Iterator[list[str]], num_samples: int) -> list[str]:
    """The whole text of each sample of a :func:`generate` stream."""
    parts: list[list[str]] = [[] for _ in range(num_samples)]
    for pieces in stream:
        for acc, piece in zip(parts, pieces):
            acc.append(piece)
    return ["".join(p) for p in parts]


SETTINGS = {k: inspect.signature(generate).parameters[k].default for k in ("temperature", "top_k", "top_p", "greedy")}
"""The sampling settings a record of :func:`generate_many` carries, with their defaults (generate's)."""


def encode_prompt(tokenizer: Tokenizer, prompt: str, what: str = CLI_NAMES["prompt"]) -> list[int]:
    """Ids of the prompt; an empty prompt starts from a newline (or the first token). Errors name it ``what``."""
    if not prompt:
        ids = tokenizer.encode("\n").tolist()
        if not ids or (tokenizer.unk_id is not None and ids[-1] == tokenizer.unk_id):
            return [0 if tokenizer.unk_id != 0 else min(1, tokenizer.vocab_size - 1)]
        return ids[-1:]
    ids = encode_text(tokenizer, prompt, what)
    if not ids:
        raise TextRNNError(f"{what} encodes to no tokens; give a prompt with text in it")
    return ids


def encode_text(tokenizer: Tokenizer, text: str, what: str = CLI_NAMES["prompt"]) -> list[int]:
    """Ids of ``text`` (maybe none); a character the model never saw is an error about ``what``."""
    unknown = tokenizer.unknown_chars(text)
    if unknown:
        shown = " ".join(repr(u) for u in unknown[:10])
        raise TextRNNError(f"{what} has characters the model never saw in training: {shown}; "
                           f"remove them or train on a corpus that has them")
    return tokenizer.encode(text).tolist()
