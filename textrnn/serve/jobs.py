"""A generation request as its consumer sees it: a :class:`Job` fills up with text from the
step loop (:mod:`textrnn.serve.batcher`) and is read from any thread (:meth:`Job.wait`,
:meth:`Job.take`, :meth:`Job.result`) or from an asyncio loop (:meth:`Job.updates`)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any, AsyncIterator, Callable, Iterable, Optional

from .requests import RequestError, Sampling


@dataclasses.dataclass(frozen=True)
class Update:
    """A job's news since the last :meth:`Job.take`: each sample's new text, the tokens it
    holds, whether the job has ended, and why it failed (None: it did not)."""

    pieces: list[str]
    tokens: int
    finished: bool
    error: Optional[str]


class Job:
    """One generation request: ``num_samples`` streams of ``sampling.length`` tokens."""

    def __init__(self, sampling: Sampling, seed: int, prompt_ids: list[int], label: int, labelled: bool):
        self.sampling, self.seed, self.prompt_ids, self.label = sampling, seed, prompt_ids, label
        n = sampling.num_samples
        self.texts: list[list[str]] = [[] for _ in range(n)]  # every piece so far, per sample
        self.tokens = 0  # generated so far, all samples
        self.error: Optional[str] = None
        self.error_status = 503  # the HTTP status of ``error``: 503 shutting down, 500 the server's failure
        self.cancelled = False
        self._labelled, self._running = labelled, n
        self._lock = threading.Lock()
        self._new: list[list[str]] = [[] for _ in range(n)]
        self._new_tokens = 0
        self._done = False
        self._waker: Optional[tuple[Optional[asyncio.AbstractEventLoop], Callable[[], None]]] = None
        self._end_only = False  # the waker waits for the job's end only

    # -- the consumer's side ----------------------------------------------------------------
    def take(self) -> Update:
        """The news since the last call (maybe none)."""
        with self._lock:
            pieces = ["".join(p) for p in self._new]
            for p in self._new:
                p.clear()
            tokens, self._new_tokens = self._new_tokens, 0
            return Update(pieces, tokens, self._done, self.error)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until there is news (or the job has ended); False: ``timeout`` passed first."""
        event = threading.Event()
        return not self._arm(None, event.set) or event.wait(timeout)

    def result(self, timeout: Optional[float] = None) -> list[str]:
        """Wait for the end (each wait at most ``timeout``); each sample's whole text. A failed
        job raises its error as a :class:`~textrnn.serve.requests.RequestError` (its :attr:`error_status`)."""
        while not self.take().finished:
            if not self.wait(timeout):
                raise TimeoutError(f"no news from the generation within {timeout} s")
        if self.error:
            raise RequestError(self.error_status, self.error)
        return self.text()

    async def updates(self, every: float = 0.0) -> AsyncIterator[Update]:
        """The job's news as it comes, in an asyncio loop; the last update has ``finished``. With
        ``every`` (seconds) each update is followed by a pause of that long, cut short by the job's
        end, so the news of several steps comes together (the first update comes at once, the
        last as soon as the job ends)."""
        loop = asyncio.get_running_loop()
        while True:
            update = self.take()
            if update.tokens or update.finished or any(update.pieces):
                yield update
                if update.finished:
                    return
                if every:
                    event = asyncio.Event()
                    timer = loop.call_later(every, event.set)
                    if self._arm(loop, event.set, end_only=True):
                        await event.wait()
                    timer.cancel()
                continue
            event = asyncio.Event()
            if self._arm(loop, event.set):
                await event.wait()

    def cancel(self) -> None:
        """Stop generating (the streams leave before the next step); a no-op once ended."""
        self.cancelled = True

    def text(self) -> list[str]:
        return ["".join(pieces) for pieces in self.texts]

    def records(self) -> list[dict[str, Any]]:
        """One record per sample, as ``textrnn generate --format jsonl`` writes them."""
        s = self.sampling
        labelled = {"condition": s.condition} if self._labelled else {}
        return [{"sample": j + 1, "seed": self.seed + j, "prompt": s.prompt, "text": text, **s.settings(), **labelled}
                for j, text in enumerate(self.text())]

    def _arm(self, loop: Optional[asyncio.AbstractEventLoop], wake: Callable[[], None],
             end_only: bool = False) -> bool:
        """Ask to be woken (from ``loop``, None: any thread) at the next news, or with ``end_only`` at
        the job's end; False: that is here now."""
        with self._lock:
            if self._done or not end_only and (self._new_tokens or any(self._new)):
                return False
            self._waker, self._end_only = (loop, wake), end_only
            return True

    # -- the step loop's side -----------------------------------------------------------------
    def _add(self, sample: int, piece: str, last: bool) -> None:
        with self._lock:
            self._new[sample].append(piece)
            self.texts[sample].append(piece)
            self._new_tokens += 1
            self.tokens += 1
            self._running -= last
            self._done = self._done or self._running == 0

    def _end(self, error: Optional[str] = None, status: int = 503) -> None:
        """The job ends (``error``: why it failed, HTTP ``status``); a no-op once it has ended."""
        with self._lock:
            if not self._done:
                self.error, self.error_status, self._done = error, status, True

    @property
    def ended(self) -> bool:
        return self._done or self.cancelled

    def _disarm(self) -> Optional[tuple[Optional[asyncio.AbstractEventLoop], Callable[[], None]]]:
        """The waker to call now that the job has news (None: none, or it waits for the end only)."""
        with self._lock:
            if self._end_only and not self._done:
                return None
            waker, self._waker = self._waker, None
            return waker


def wake(jobs: Iterable[Job]) -> None:
    """Wake the consumers waiting for ``jobs`` (jobs with news): one call per asyncio loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
    for job in jobs:
        waker = job._disarm()
        if waker is None:
            continue
        loop, call = waker
        if loop is None:
            call()
        else:
            by_loop.setdefault(loop, []).append(call)
    for loop, calls in by_loop.items():
        try:
            loop.call_soon_threadsafe(_call_all, calls)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _call_all(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()
