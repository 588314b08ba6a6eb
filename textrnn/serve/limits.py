"""The server's limits: how much one request may ask for, and the server takes on at once.
Declared once here: ``textrnn serve``'s options are made from them (no torch import)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import TextRNNError


EVENT_INTERVAL = 0.05
"""Seconds a streaming response waits after each event before it sends the next (cut short by
the job's end): the text generated meanwhile goes out in one event. Under load that means
fewer, larger events (the server's own cost per event is what limits it there, not the model's
step): 64 clients 4,075-4,192 tokens/s at 20 ms, 5,546-5,787 at 50 ms on a 2-core EPYC, one
client unchanged. Twenty updates a second still reads as a smooth stream, and the first event
goes out at once (``textrnn serve --event-interval``; 0: an event per step)."""


def _limit(default: int, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much one request may ask for, and the server takes on at once (``textrnn serve``'s options)."""

    max_streams: int = _limit(256, "Generation streams at once, all requests together (each sample is one); "
                                   "a request beyond them gets 503.")
    max_length: int = _limit(2000, "Tokens one sample may ask for (length).")
    max_samples: int = _limit(16, "Samples one /generate request may ask for (num_samples).")
    max_prompt_chars: int = _limit(10_000, "Characters of a prompt.")
    max_texts: int = _limit(256, "Texts one /classify or /evaluate request may send.")
    max_text_chars: int = _limit(10_000, "Characters of each of those texts.")
    max_body_bytes: int = _limit(1_000_000, "Bytes of a request body; a larger one gets 413.")
    body_timeout: int = _limit(10, "Seconds a request body may take to arrive; a slower one gets 408 (its bytes "
                                   "are dropped).")
    max_queue: int = _limit(16, "/classify and /evaluate requests at once, running or waiting their turn (they "
                                "run one at a time); one more gets 503.")
    max_connections: int = _limit(256, "Connections the server holds open at once (uvicorn's limit_concurrency); "
                                       "one more gets 503.")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TextRNNError(f"--{f.name.replace('_', '-')} must be a positive integer, got {value!r}")
