"""Sampling text from a language model, one step per token.

The prompt is run through the network once (:func:`~textrnn.inference.stepper.prefill`) to set the
recurrent state; after that each new token costs one step of the
:class:`~textrnn.inference.stepper.Stepper` (never a re-run of the prefix). ``num_samples`` streams
are sampled together as one batch, each drawn as :mod:`textrnn.inference.sampling` draws
(:func:`generate_many`: any number, batch after batch, one record each). ``<unk>`` is never sampled.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor

from ..condition import check_no_markers
from ..errors import TextRNNError
from ..model import LanguageModel
from ..tokenizer import Tokenizer
from .options import SamplingOptions
from .sampling import Draw, draws_for, new_seed, pick, texts_of
from .state import State
from .stepper import Stepper, prefill


def steps(stepper: Stepper, token: Tensor, state: State, draws: Sequence[Draw],
          labels: Optional[Tensor] = None) -> Iterator[tuple[Tensor, State, list[str]]]:
    """From the last token seen, ``token`` (N,), and the state before it, step until every draw is done:
    per step the tokens drawn (N,), the state before them (after the previous token) and the text each
    stream writes now ("" for a stream already done). Use under ``torch.inference_mode()``."""
    while not all(d.done for d in draws):
        logits, state = stepper(token, state, labels)  # (N, V)
        token = pick(logits, draws)  # (N,)
        yield token, state, [("" if d.done else d.accept(i)) for d, i in zip(draws, token.tolist())]


def sample_ids(model: LanguageModel, prompt_ids: list[int], options: SamplingOptions, *,
               banned: Sequence[int] = (), label: int = 0, tokenizer: Optional[Tokenizer] = None
               ) -> Iterator[Tensor]:
    """Yield the ids sampled after the prompt, one ``(num_samples,)`` tensor per step (``options.length``
    steps, fewer once every sample has met a stop string). ``banned``: ids never sampled; ``label``: a
    conditioned model's label (1 + its index) for every step. Without ``tokenizer`` no text is decoded (stop
    strings and banned words need it)."""
    for token, _, _ in _sample(model, prompt_ids, options, banned, label, tokenizer):
        yield token


def _sample(model: LanguageModel, prompt_ids: list[int], options: SamplingOptions, banned: Sequence[int],
            label: int, tokenizer: Optional[Tokenizer]) -> Iterator[tuple[Tensor, State, list[str]]]:
    if not prompt_ids:
        raise TextRNNError("the prompt is empty")
    n = options.num_samples
    device = next(model.parameters()).device
    seed = new_seed() if options.seed is None else options.seed
    draws = draws_for(options, tokenizer, seed, n, prompt_ids, device, vocab_size=model.cfg.vocab_size)
    labels = torch.full((n,), label, dtype=torch.long, device=device) if label else None
    model.eval()
    with torch.inference_mode():
        stepper = Stepper(model, banned)
        state = prefill(model, torch.tensor([prompt_ids[:-1]], device=device).expand(n, -1), None, labels)
        if state is None:
            state = stepper.initial_state(n, device)
        token = torch.full((n,), prompt_ids[-1], dtype=torch.long, device=device)  # (N,)
        yield from steps(stepper, token, state, draws, labels)


def generate(model: LanguageModel, tokenizer: Tokenizer, prompt: str = "",
             options: SamplingOptions = SamplingOptions(), *, banned: Sequence[int] = (),
             label: int = 0, start: str = "") -> Iterator[list[str]]:
    """Stream generated text: yields, per step, one text piece for each sample. ``banned``: token ids never
    sampled besides ``<unk>`` (e.g. a conditioned model's label markers); ``label``, ``start``: a conditioned
    model's label (1 + its index) for every step and the text before the prompt (its marker; see
    :mod:`textrnn.condition`). ``options.length`` counts tokens (characters for a char model). The prompt itself
    is not yielded. Same seed and checkpoint give the same text."""
    options.check(tokenizer.vocab_size)
    prompt_ids = encode_prompt(tokenizer, prompt, start=start)
    for _, _, pieces in _sample(model, prompt_ids, options, banned_ids(tokenizer, banned), label, tokenizer):
        yield pieces


def banned_ids(tokenizer: Tokenizer, ban: Sequence[int] = ()) -> list[int]:
    """The token ids sampling never gives: ``<unk>`` (if the vocabulary has one) and ``ban``."""
    return ([tokenizer.unk_id] if tokenizer.unk_id is not None else []) + list(ban)


def generate_many(model: LanguageModel, tokenizer: Tokenizer, prompt: str = "",
                  options: SamplingOptions = SamplingOptions(), *, batch_size: int = 100,
                  banned: Sequence[int] = (), label: int = 0, start: str = "") -> Iterator[dict[str, Any]]:
    """Sample ``options.num_samples`` texts in batches of ``batch_size``; yield one record per sample, in
    order: ``sample`` (1, 2, ...), ``seed`` (that sample's own: ``generate`` with it gives its text again),
    ``prompt``, ``text`` (the continuation) and the settings (:meth:`SamplingOptions.settings`)."""
    if batch_size <= 0:
        raise TextRNNError(f"--batch-size must be positive, got {batch_size}")
    options.check(tokenizer.vocab_size)
    base = new_seed() if options.seed is None else options.seed
    total = options.num_samples
    for first in range(0, total, batch_size):
        batch = dataclasses.replace(options, num_samples=min(batch_size, total - first), seed=base + first)
        pieces = generate(model, tokenizer, prompt, batch, banned=banned, label=label, start=start)
        texts = texts_of(pieces, batch.num_samples)
        for j, text in enumerate(texts):
            yield {"sample": first + j + 1, "seed": base + first + j, "prompt": prompt, "text": text,
                   **options.settings()}


def encode_prompt(tokenizer: Tokenizer, prompt: str, what: str = "--prompt", start: str = "") -> list[int]:
    """Ids of ``start`` (a conditioned model's marker) and the prompt; an empty one starts from a newline (or the
    first token). Errors name the prompt ``what``."""
    if not start + prompt:
        ids = tokenizer.encode("\n").tolist()
        if not ids or (tokenizer.unk_id is not None and ids[-1] == tokenizer.unk_id):
            return [0 if tokenizer.unk_id != 0 else min(1, tokenizer.vocab_size - 1)]
        return ids[-1:]
    ids = encode_text(tokenizer, prompt, what, start)
    if not ids:
        raise TextRNNError(f"{what} encodes to no tokens; give a prompt with text in it")
    return ids


def encode_text(tokenizer: Tokenizer, text: str, what: str = "--prompt", start: str = "") -> list[int]:
    """Ids of ``start`` and ``text`` (maybe none); a character the model never saw, or one reserved for a
    conditioned model's label markers, is an error about ``what``."""
    check_no_markers(text, what)
    unknown = tokenizer.unknown_chars(text)
    if unknown:
        shown = " ".join(repr(u) for u in unknown[:10])
        raise TextRNNError(f"{what} has characters the model never saw in training: {shown}; "
                           f"remove them or train on a corpus that has them")
    return tokenizer.encode(start + text).tolist()
