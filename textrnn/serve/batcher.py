"""One language model shared by every generation request: batched stepping.

A :class:`Batcher` owns a model and one thread, the step loop. A request
(:meth:`Batcher.submit`) becomes a :class:`Job` of ``num_samples`` streams. Between two steps
new jobs join: each prompt is run through the network once
(:func:`~textrnn.inference.generate.run_prefix`) and its state becomes rows of the batch; finished and
cancelled streams leave (their rows are dropped). Then every active stream advances by one
token in one batched :class:`~textrnn.inference.stepper.Stepper` step.

Each stream is drawn as :mod:`textrnn.inference.sampling` draws for ``textrnn generate``: its
own :class:`~textrnn.inference.sampling.Draw` (temperature, top-k, top-p, greedy, stop strings,
banned words; its own random generator, seed + sample index, its Gumbel noise in the same chunks)
and a conditioned model's label for its row of the step, so a request's text depends on its
seed, not on what else runs: it is the text ``textrnn generate --seed`` gives, up to float
rounding (a batched matrix product may round a row differently from a lone one, which could flip
a near tie).

A request's consumer reads its :class:`~textrnn.serve.jobs.Job`; the step loop wakes a waiting
consumer once per step at most, so a slow reader gets the tokens of several steps at once.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from typing import Any, Callable, Optional

import torch

from ..errors import TextRNNError
from ..inference import state as states
from ..inference.generate import banned_ids, encode_prompt
from ..inference.sampling import draws_for, new_seed, pick
from ..inference.stepper import Stepper, prefill
from .jobs import Job
from .requests import RequestError, Sampling

logger = logging.getLogger(__name__)
SHUTTING_DOWN = "the server is shutting down"


PREFILL_CHUNK = 128
"""Prompt tokens a joining request runs through the network per iteration of the step loop: a
long prompt takes several iterations, so the running streams wait at most about one chunk's time
between two steps."""


class _Prefill:
    """A job whose prompt is being run: the ids to run (all but the last), how many are done, the state."""

    def __init__(self, job: Job):
        self.job, self.ids, self.done = job, job.prompt_ids[:-1], 0
        self.state: Optional[list] = None


class _Stream:
    """One sample of a job: its row's :class:`~textrnn.inference.sampling.Draw`."""

    def __init__(self, job: Job, sample: int, draw: Any):
        self.job, self.sample, self.draw = job, sample, draw

    def emit(self, token: int) -> None:
        piece = self.draw.accept(token)
        self.job._add(self.sample, piece, self.draw.done)

    @property
    def gone(self) -> bool:
        return self.draw.done or self.job.ended


class Batcher:
    """Generation for every request of one loaded language model (a
    :class:`~textrnn.api.Trained`), batched; at most ``max_streams`` streams at once."""

    def __init__(self, lm: Any, max_streams: int = 256):
        self.lm, self.max_streams = lm, max_streams
        self._device = next(lm.model.parameters()).device
        self._stepper = Stepper(lm.model, banned_ids(lm.tokenizer, lm.conditioning(None).banned))
        self._cond = threading.Condition()
        self._joining: list[Job] = []  # submitted, not yet seen by the step loop
        self._prefilling: list[_Prefill] = []  # their prompts being run
        self._admitted = 0  # streams of the jobs joining or running
        self._closing_at: Optional[float] = None
        self._stopped = False
        self._rows: list[_Stream] = []  # the running streams, in the batch's row order
        self._state: Optional[list] = None
        self._tokens: Optional[torch.Tensor] = None  # (B,) each row's last token
        self._labels: Optional[torch.Tensor] = None  # (B,) a conditioned model's label per row, as the rows are
        self._touched: dict[Job, None] = {}  # jobs with news this iteration
        self._thread = threading.Thread(target=self._run, name="textrnn-batcher", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # (a step cut short by the interpreter's exit aborts the process)

    @property
    def streams(self) -> int:
        """Streams joining or running now."""
        return self._admitted

    def submit(self, sampling: Sampling) -> Job:
        """Queue a checked request; it joins before the next step. Its prompt with characters the
        model never saw is a 422 :class:`RequestError`; a full or closing server a 503."""
        conditioning = self.lm.conditioning(sampling.condition)
        try:
            ids = encode_prompt(self.lm.tokenizer, sampling.prompt, "prompt", conditioning.start)
        except TextRNNError as e:
            raise RequestError(422, str(e), "prompt") from None
        seed = new_seed() if sampling.seed is None else sampling.seed
        job = Job(sampling, seed, ids, conditioning.label, self.lm.conditions is not None)
        n = sampling.num_samples
        with self._cond:
            if self._stopped or self._closing_at is not None:
                raise RequestError(503, SHUTTING_DOWN)
            if self._admitted + n > self.max_streams:
                raise RequestError(503, f"the server is busy: {self._admitted} of its {self.max_streams} streams "
                                        "(--max-streams) are running; try again shortly")
            self._admitted += n
            self._joining.append(job)
            self._cond.notify()
        return job

    def drain(self, grace: float) -> None:
        """Take no new jobs; the running ones may finish within ``grace`` seconds, then they end
        with an error. Only sets attributes: safe to call from a signal handler."""
        if self._closing_at is None:
            self._closing_at = time.monotonic() + grace

    def close(self, timeout: float = 10.0) -> None:
        """Stop the step loop; jobs still running end with an error."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)
        atexit.unregister(self.close)

    # -- the step loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not (self._joining or self._prefilling or self._rows or self._stopped):
                        self._cond.wait()
                    if self._stopped:
                        break
                    joining, self._joining = self._joining, []
                try:
                    self._iterate(joining)
                except Exception:  # a bug: its streams end with an error, the server goes on
                    logger.exception("generation failed")
                    self._fail_all(joining, "the generation failed (a server error)")
                self._wake()
            self._fail_all(self._joining, SHUTTING_DOWN)
            self._wake()

    def _iterate(self, joining: list[Job]) -> None:
        """Cut everything past the drain's deadline; run the prompts of the joining (a chunk
        each); those done join the batch, the ended leave; then one step."""
        if self._closing_at is not None and time.monotonic() >= self._closing_at:
            for job in [*joining, *(p.job for p in self._prefilling), *(s.job for s in self._rows)]:
                job._end(SHUTTING_DOWN)
        for job in joining:
            if job.sampling.length == 0:  # nothing to generate
                job._end()
            self._prefilling.append(_Prefill(job))
        self._prefill()
        self._leave()
        if self._rows:
            self._step()

    def _prefill(self) -> None:
        """Run the next chunk (up to :data:`PREFILL_CHUNK` tokens) of every prompt being run, one
        batch per chunk length; a job whose prompt is done (all but its last token, as generate's
        :func:`~textrnn.inference.generate.run_prefix`) joins the batch. Ended jobs leave."""
        groups: dict[tuple[int, bool], list[_Prefill]] = {}
        for p in self._prefilling:
            if p.job.ended:
                self._release(p.job, p.job.sampling.num_samples)
            else:
                groups.setdefault((min(PREFILL_CHUNK, len(p.ids) - p.done), p.state is None), []).append(p)
        for (n, fresh), group in groups.items():
            if n:
                ids = [p.ids[p.done : p.done + n] for p in group]  # (G, n)
                labels = torch.tensor([p.job.label for p in group], device=self._device)  # (G,)
                rows = prefill(self.lm.model, ids, None if fresh else states.stack([p.state for p in group]), labels)
                for k, p in enumerate(group):
                    p.state, p.done = states.row(rows, k), p.done + n
        self._prefilling = [p for p in self._prefilling if not p.job.ended and p.done < len(p.ids)]
        for group in groups.values():
            for p in group:
                if p.done == len(p.ids):
                    self._join(p.job, p.state or self._stepper.initial_state(1, self._device))

    def _join(self, job: Job, state: list) -> None:
        """``job``'s streams join the batch, from ``state`` (1 row) after its prompt but the last token."""
        n, last = job.sampling.num_samples, job.prompt_ids[-1]
        draws = draws_for(job.sampling, self.lm.tokenizer, job.seed, n, job.prompt_ids, self._device)
        tokens = torch.full((n,), last, dtype=torch.long, device=self._device)
        joined = states.repeat(state, n)
        self._state = joined if self._state is None else states.stack([self._state, joined])
        self._tokens = tokens if self._tokens is None else torch.cat([self._tokens, tokens])
        self._rows.extend(_Stream(job, j, d) for j, d in enumerate(draws))
        self._labels = None

    def _release(self, job: Job, streams: int) -> None:
        """``streams`` of ``job``'s streams are done with; its consumer hears of it."""
        self._touched[job] = None
        with self._cond:
            self._admitted -= streams

    def _leave(self) -> None:
        keep = [k for k, s in enumerate(self._rows) if not s.gone]
        if len(keep) == len(self._rows):
            return
        for s in self._rows:
            if s.gone:
                self._release(s.job, 1)
        self._labels = None
        if not keep:
            self._rows, self._state, self._tokens = [], None, None
            return
        index = torch.tensor(keep, device=self._device)
        self._rows = [self._rows[k] for k in keep]
        self._state = states.select(self._state, index)
        self._tokens = self._tokens.index_select(0, index)

    def _step(self) -> None:
        rows = self._rows
        if self._labels is None and self.lm.conditions:
            self._labels = torch.tensor([s.job.label for s in rows], device=self._device)  # (B,)
        logits, self._state = self._stepper(self._tokens, self._state, self._labels)  # (B, V)
        self._tokens = pick(logits, [s.draw for s in rows])  # (B,)
        for s, token in zip(rows, self._tokens.tolist()):
            s.emit(token)
            self._touched[s.job] = None

    def _fail_all(self, joining: list[Job], error: str) -> None:
        for job in [*joining, *(p.job for p in self._prefilling), *(s.job for s in self._rows)]:
            job._end(error)
            self._touched[job] = None
        with self._cond:
            self._admitted = sum(j.sampling.num_samples for j in self._joining)
        self._prefilling, self._rows, self._state, self._tokens, self._labels = [], [], None, None, None

    def _wake(self) -> None:
        """Wake the consumers waiting for the jobs with news: one call per asyncio loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
        for job in self._touched:
            waker = job._disarm()
            if waker is None:
                continue
            loop, wake = waker
            if loop is None:
                wake()
            else:
                by_loop.setdefault(loop, []).append(wake)
        self._touched.clear()
        for loop, wakes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_call_all, wakes)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _call_all(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()
