"""Sampling text from a language model, one step per token.

The prompt is run through the network once to set the recurrent state; after that each
new token costs one step of the :class:`~textrnn.model.Stepper` (never a re-run of the
prefix). ``num_samples`` streams are sampled together as one batch. Sampling options:
temperature, top-k, top-p (nucleus) and greedy; ``<unk>`` is never sampled.
"""

from __future__ import annotations

from typing import Iterator, Optional

import torch

from .errors import TextRNNError
from .model import LanguageModel
from .stepper import Stepper
from .tokenizer import Tokenizer


def check_options(vocab_size: int, temperature: float, top_k: Optional[int], top_p: Optional[float],
                  greedy: bool, length: int, num_samples: int) -> None:
    if not greedy and not temperature > 0:
        raise TextRNNError(f"--temp must be > 0 (got {temperature}); use --greedy for argmax decoding")
    if top_p is not None and not 0 < top_p <= 1:
        raise TextRNNError(f"--top-p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise TextRNNError(f"--top-k must be >= 1, got {top_k}")
    if top_k is not None and top_k > vocab_size:
        raise TextRNNError(f"--top-k must be at most the vocabulary size {vocab_size}, got {top_k}")
    if length < 0:
        raise TextRNNError(f"--length must be >= 0, got {length}")
    if num_samples <= 0:
        raise TextRNNError(f"--num-samples must be positive, got {num_samples}")


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
) -> Iterator[torch.Tensor]:
    """Yield ``length`` steps of sampled ids, each ``(num_samples,)``, after the prompt."""
    if not prompt_ids:
        raise TextRNNError("the prompt is empty")
    device = next(model.parameters()).device
    gen = sampling_generator(seed, device)
    model.eval()
    with torch.inference_mode():
        # temperature and banned tokens are folded into the head once, not applied per step
        stepper = model.stepper(logit_scale=1.0 if greedy else 1.0 / temperature, banned=banned)
        state = run_prefix(model, prompt_ids[:-1], None, num_samples)
        if state is None:
            state = stepper.initial_state(num_samples, device)
        token = torch.full((num_samples,), prompt_ids[-1], dtype=torch.long, device=device)  # (N,)
        for token, _ in sample_steps(stepper, token, state, length, gen, greedy=greedy, top_k=top_k, top_p=top_p):
            yield token


def sampling_generator(seed: Optional[int], device: torch.device) -> torch.Generator:
    """A random generator for one sampler: seeded, or with a fresh non-deterministic seed
    (torch's global RNG is untouched either way)."""
    gen = torch.Generator(device=device)
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    return gen


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


def sample_steps(stepper: Stepper, token: torch.Tensor, state: list, length: int, gen: torch.Generator, *,
                 greedy: bool = False, top_k: Optional[int] = None,
                 top_p: Optional[float] = None) -> Iterator[tuple[torch.Tensor, list]]:
    """From the last token seen, ``token`` (N,), and the state before it, yield ``length``
    sampled tokens (N,), each with the state before it (the state after the previous token).
    Temperature and banned tokens are the ``stepper``'s. Use under ``torch.inference_mode()``."""
    filtered = top_k is not None or top_p is not None
    noise = torch.empty(0)
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
        if t % _NOISE_CHUNK == 0:
            noise = _gumbel((min(_NOISE_CHUNK, length - t), *logits.shape), gen, token.device)
        token = (logits + noise[t % _NOISE_CHUNK]).argmax(dim=-1)  # (N,)
        yield token, state


_NOISE_CHUNK = 256


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
) -> Iterator[list[str]]:
    """Stream generated text: yields, per step, one text piece for each sample.

    ``length`` counts tokens (characters for a char model). The prompt itself is not
    yielded. Same seed and checkpoint give the same text.
    """
    check_options(tokenizer.vocab_size, temperature, top_k, top_p, greedy, length, num_samples)
    prompt_ids = encode_prompt(tokenizer, prompt)
    decoders = [tokenizer.stream_decoder() for _ in range(num_samples)]
    for d in decoders:  # let word spacing and BPE byte joins see the prompt's end
        for i in prompt_ids[-1:]:
            d(i)
    banned = [tokenizer.unk_id] if tokenizer.unk_id is not None else None
    for tokens in sample_ids(model, prompt_ids, length, temperature=temperature, top_k=top_k,
                             top_p=top_p, greedy=greedy, num_samples=num_samples, seed=seed,
                             banned=banned):
        yield [d(i) for d, i in zip(decoders, tokens.tolist())]
    tails = [d.flush() for d in decoders]
    if any(tails):
        yield tails


def encode_prompt(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """Ids of the prompt; an empty prompt starts from a newline (or the first token)."""
    if not prompt:
        ids = tokenizer.encode("\n").tolist()
        if not ids or (tokenizer.unk_id is not None and ids[-1] == tokenizer.unk_id):
            return [0 if tokenizer.unk_id != 0 else min(1, tokenizer.vocab_size - 1)]
        return ids[-1:]
    ids = encode_text(tokenizer, prompt)
    if not ids:
        raise TextRNNError("--prompt encodes to no tokens; give a prompt with text in it")
    return ids


def encode_text(tokenizer: Tokenizer, text: str, what: str = "--prompt") -> list[int]:
    """Ids of ``text`` (maybe none); a character the model never saw is an error about ``what``."""
    unknown = tokenizer.unknown_chars(text)
    if unknown:
        shown = " ".join(repr(u) for u in unknown[:10])
        raise TextRNNError(f"{what} has characters the model never saw in training: {shown}; "
                           f"remove them or train on a corpus that has them")
    return tokenizer.encode(text).tolist()
