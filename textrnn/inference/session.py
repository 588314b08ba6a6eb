"""A generation session: text goes in turn by turn, each continuation streams out, and the
recurrent state carries on across turns (the library side of ``textrnn generate --interactive``).

    session = textrnn.load("checkpoints/mine").session(temperature=0.8, length=200, seed=1)
    for piece in session.feed_and_continue("ROMEO:\\n"):
        print(piece, end="")
    session.configure(top_p=0.9)
    reply = "".join(session.feed_and_continue("JULIET:\\n"))   # continues the same text
    session.reset()                                             # a fresh text

The state carried is the state after every token seen: the text fed and the tokens of each
continuation actually yielded, so a continuation that is abandoned part way (a consumer that
stops iterating, or a ``KeyboardInterrupt``) leaves the state of the text that was shown.
Sampling reuses :mod:`textrnn.inference.generate` (one prefix run per turn, then one
:class:`~textrnn.inference.stepper.Stepper` step per token).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional

import torch

from .generate import (banned_ids, check_options, encode_prompt, encode_text, run_prefix, sample_steps,
                       sampling_generators)
from ..model import LanguageModel
from .stepper import Stepper
from ..tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a session samples; ``length`` is the tokens per continuation."""

    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    greedy: bool = False
    length: int = 500


class Session:
    """A text that grows turn by turn; see the module's docstring. ``seed`` makes the whole
    session reproducible (:meth:`reset` starts its random stream again); None: a fresh seed."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, *, seed: Optional[int] = None, **settings: Any):
        self.model, self.tokenizer, self.seed = model, tokenizer, seed
        self.settings = Settings()
        self.configure(**settings)
        self._device = next(model.parameters()).device
        self._banned = banned_ids(tokenizer) or None
        self._stepper: Optional[tuple[float, Stepper]] = None  # (logit scale, the stepper built for it)
        self._turn = 0
        self.reset()

    def configure(self, **changes: Any) -> Settings:
        """Change settings (names of :class:`Settings`), checked as ``textrnn generate``
        checks its options: on a bad value a :class:`~textrnn.errors.TextRNNError` and no change."""
        new = dataclasses.replace(self.settings, **changes)
        check_options(self.tokenizer.vocab_size, new.temperature, new.top_k, new.top_p, new.greedy, new.length, 1)
        self.settings = new
        return new

    def reset(self) -> None:
        """Forget the text: the next turn starts as ``generate`` does, from the zero state."""
        self._turn += 1
        # (the state before the last token seen, that token (1,)); None: nothing seen yet
        self._carry: Optional[tuple[Optional[list], torch.Tensor]] = None
        self._gens = sampling_generators(self.seed, self._device, 1)

    @property
    def empty(self) -> bool:
        """Whether nothing has been fed or generated since the start or the last :meth:`reset`."""
        return self._carry is None

    def feed(self, text: str) -> None:
        """Add ``text`` to the session's text (run through the network once), without continuing
        it. Fed to an empty session, ``""`` starts from a newline, as an empty ``--prompt`` does.
        A character the model never saw is a :class:`~textrnn.errors.TextRNNError` (and no change)."""
        tok = self.tokenizer
        ids = encode_text(tok, text, "the text")
        if not ids and self._carry is None:
            ids = encode_prompt(tok, "")
        if not ids:
            return
        state, last = self._carry if self._carry is not None else (None, None)
        prefix = ([int(last)] if last is not None else []) + ids[:-1]
        self.model.eval()
        with torch.inference_mode():
            state = run_prefix(self.model, prefix, state, 1)
            self._turn += 1
            self._carry = (state, torch.tensor([ids[-1]], device=self._device))

    def feed_and_continue(self, text: str) -> Iterator[str]:
        """Feed ``text`` (now: errors are raised here), then stream ``settings.length`` tokens
        of continuation, piece by piece."""
        self.feed(text)
        return self._continue(self.settings.length, self._turn)

    def _continue(self, length: int, turn: int) -> Iterator[str]:
        """Stream the continuation of turn ``turn``; the carried state follows each piece yielded.
        A token whose text is held back (BPE bytes inside a character) is committed with the piece
        that shows it. Nothing once the session has been fed or reset since."""
        if self._turn != turn:
            return
        s = self.settings
        state, token = self._carry
        decoder = self.tokenizer.stream_decoder()
        decoder(int(token))  # let word spacing and BPE byte joins see the text's end
        self.model.eval()
        with torch.inference_mode():
            stepper = self._stepper_for(s)
            if state is None:
                state = stepper.initial_state(1, self._device)
            for token, before in sample_steps(stepper, token, state, length, self._gens, greedy=s.greedy,
                                              top_k=s.top_k, top_p=s.top_p):
                piece = decoder(int(token))
                if not piece:
                    continue
                self._carry = (before, token)  # one assignment: never half done when interrupted
                yield piece
                if self._turn != turn:  # the session was fed or reset meanwhile: this stream is over
                    return
            tail = decoder.flush()
            if length > 0:
                self._carry = (before, token)
            if tail:
                yield tail

    def _stepper_for(self, s: Settings) -> Stepper:
        """The one-token sampler with this temperature folded in (built once per temperature)."""
        scale = 1.0 if s.greedy else 1.0 / s.temperature
        if self._stepper is None or self._stepper[0] != scale:
            self._stepper = (scale, Stepper(self.model, logit_scale=scale, banned=self._banned))
        return self._stepper[1]
