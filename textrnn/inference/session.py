"""A generation session: text goes in turn by turn, each continuation streams out, and the
recurrent state carries on across turns (the library side of ``textrnn generate --interactive``).

    session = textrnn.load("checkpoints/mine").session(temperature=0.8, length=200, seed=1)
    for piece in session.feed_and_continue("ROMEO:\\n"):
        print(piece, end="")
    session.configure(top_p=0.9, stop=["\\n\\n"])
    reply = "".join(session.feed_and_continue("JULIET:\\n"))   # continues the same text
    session.reset()                                             # a fresh text

The state carried is the state after the text shown: the text fed and the tokens of each
continuation whose text was yielded, so a continuation that is abandoned part way (a consumer that
stops iterating, or a ``KeyboardInterrupt``) or that ends at a stop string (not shown) leaves the
state of the text that was shown. Sampling is :mod:`textrnn.inference.generate`'s (one prefix run
per turn, then one :class:`~textrnn.inference.stepper.Stepper` step per token), drawn as
:mod:`textrnn.inference.sampling` draws, from one random stream for the whole session.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import torch

from ..model import LanguageModel
from ..tokenizer import Tokenizer
from .generate import banned_ids, encode_prompt, encode_text, steps
from .options import SamplingOptions
from .sampling import BannedWords, Draw, generators
from .stepper import Stepper, prefill

HISTORY = 256  # tokens of the text kept for the banned words (a banned word longer than this is not seen whole)


class Session:
    """A text that grows turn by turn; see the module's docstring. ``options``: how each continuation is
    sampled (``length`` tokens per continuation; ``seed`` makes the whole session reproducible and
    :meth:`reset` starts its random stream again; None: a fresh seed). A conditioned model's session
    writes text of ``label`` (1 + its index): every text starts from ``start`` (its marker), the markers
    ``banned`` are never sampled."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, options: SamplingOptions = SamplingOptions(), *,
                 banned: Sequence[int] = (), label: int = 0, start: str = ""):
        self.model, self.tokenizer = model, tokenizer
        self.options = options.replace(num_samples=1).check(tokenizer.vocab_size)
        self._device = next(model.parameters()).device
        self._stepper = Stepper(model, banned_ids(tokenizer, banned))
        self._labels = torch.tensor([label], device=self._device) if label else None
        self._start = start
        self._turn = 0
        self.reset()

    @property
    def settings(self) -> SamplingOptions:
        """The options each continuation is sampled with."""
        return self.options

    def configure(self, **changes: Any) -> SamplingOptions:
        """Change options (names of :class:`~textrnn.inference.sampling.SamplingOptions`), checked as
        ``textrnn generate`` checks them: on a bad value an
        :class:`~textrnn.inference.sampling.OptionError` and no change."""
        self.options = self.options.replace(**changes).check(self.tokenizer.vocab_size)
        return self.options

    def reset(self) -> None:
        """Forget the text: the next turn starts as ``generate`` does, from the zero state."""
        self._turn += 1
        # (the state before the last token seen, that token (1,)); None: nothing seen yet
        self._carry: Optional[tuple[Optional[list], torch.Tensor]] = None
        self._history: list[int] = []  # the text's last tokens
        (self._generator,) = generators(self.options.seed, self._device, 1)

    @property
    def empty(self) -> bool:
        """Whether nothing has been fed or generated since the start or the last :meth:`reset`."""
        return self._carry is None

    def feed(self, text: str) -> None:
        """Add ``text`` to the session's text (run through the network once), without continuing
        it; any continuation still open ends. Fed to an empty session, ``""`` starts from a newline, as an
        empty ``--prompt`` does. A character the model never saw is a
        :class:`~textrnn.errors.TextRNNError` (and no change)."""
        tok = self.tokenizer
        ids = encode_text(tok, text, "the text", self._start if self._carry is None else "")
        if not ids and self._carry is None:
            ids = encode_prompt(tok, "")
        self._turn += 1  # a new turn, even for "": the open continuation is over
        if not ids:
            return
        state, last = self._carry if self._carry is not None else (None, None)
        prefix = ([int(last)] if last is not None else []) + ids[:-1]
        self.model.eval()
        with torch.inference_mode():
            state = prefill(self.model, [prefix], state, self._labels)
            self._carry = (state, torch.tensor([ids[-1]], device=self._device))
        self._history = (self._history + ids)[-HISTORY:]

    def feed_and_continue(self, text: str) -> Iterator[str]:
        """Feed ``text`` (now: errors are raised here), then stream ``options.length`` tokens
        of continuation, piece by piece."""
        self.feed(text)
        return self._continue(self._turn)

    def _continue(self, turn: int) -> Iterator[str]:
        """Stream the continuation of turn ``turn``; the carried state follows each piece yielded.
        A token whose text is held back (BPE bytes inside a character, a possible start of a stop string)
        is committed with the piece that shows it. Nothing once the session has been fed or reset since."""
        if self._turn != turn:
            return
        state, token = self._carry
        decoder = self.tokenizer.stream_decoder()
        decoder(int(token))  # let word spacing and BPE byte joins see the text's end
        draw = Draw(self.options, self._generator, decoder, BannedWords(self.tokenizer, self.options.ban),
                    self._history, self.tokenizer.vocab_size, self._device)
        history = list(self._history)
        self.model.eval()
        with torch.inference_mode():
            if state is None:
                state = self._stepper.initial_state(1, self._device)
            for token, before, (piece,) in steps(self._stepper, token, state, [draw], self._labels):
                history.append(int(token))
                if len(history) > 2 * HISTORY:  # (a long continuation keeps only what a banned word can see)
                    del history[:-HISTORY]
                if not piece:
                    continue
                self._carry = (before, token)  # one assignment: never half done when interrupted
                self._history = history[-HISTORY:]
                yield piece
                if self._turn != turn:  # the session was fed or reset meanwhile: this stream is over
                    return
