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

Every admitted stream holds a slot (``max_streams`` in all) from :meth:`Batcher.submit` until the
step loop lets it go, exactly once, whenever its job ends (finished, cancelled while its prompt
runs or between two steps, failed, cut at shutdown). A step that fails (say the device runs out of
memory) is tried again on smaller groups of its rows, down to one row: only the jobs whose rows
fail alone end, with a server error (:data:`GENERATION_FAILED`, HTTP 500); a prompt whose run
fails is tried again alone. A failure anywhere else ends every job (500), and the loop goes on.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any, Optional

import torch

from ..errors import TextRNNError
from ..inference import state as states
from ..inference.generate import banned_ids, encode_prompt
from ..inference.sampling import draws_for, new_seed, pick
from ..inference.stepper import Stepper, prefill
from .jobs import Job, wake
from .requests import RequestError, Sampling

logger = logging.getLogger(__name__)
SHUTTING_DOWN = "the server is shutting down"
GENERATION_FAILED = "the generation failed (a server error; the server's log says why)"


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
        self._admitted = 0  # slots taken: streams of the jobs joining or running (what max_streams bounds)
        self._held: dict[Job, int] = {}  # slots each job the step loop has taken still holds
        self._live = 0  # streams being prefilled or in the batch, as of the step loop's last iteration
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
        """Streams joining, having their prompt run, or in the batch: counted from those lists (at
        rest, 0; with no slot leaked, equal to :attr:`admitted`)."""
        with self._cond:
            return self._live + sum(job.sampling.num_samples for job in self._joining)

    @property
    def admitted(self) -> int:
        """Slots taken (what ``max_streams`` bounds): a stream's from its submit until the step loop lets it go."""
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
                    joining = self._take_joining()
                try:
                    self._iterate(joining)
                except Exception:  # a failure not isolated to some jobs: they all end, the server goes on
                    logger.exception("generation failed")
                    self._fail_all(GENERATION_FAILED, 500)
                self._publish()
                self._wake()
            with self._cond:
                self._take_joining()
            self._fail_all(SHUTTING_DOWN, 503)
            self._wake()

    def _take_joining(self) -> list[Job]:
        """The jobs submitted since the last call, now held by the step loop (call with ``_cond`` held)."""
        joining, self._joining = self._joining, []
        for job in joining:
            self._held[job] = job.sampling.num_samples
        return joining

    def _publish(self) -> None:
        """Count the streams the step loop holds, for :attr:`streams`."""
        live = len(self._rows) + sum(p.job.sampling.num_samples for p in self._prefilling)
        with self._cond:
            self._live = live

    def _iterate(self, joining: list[Job]) -> None:
        """Cut everything past the drain's deadline; run the prompts of the joining (a chunk
        each); those done join the batch, the ended leave; then one step, and the ended leave."""
        if self._closing_at is not None and time.monotonic() >= self._closing_at:
            self._fail_all(SHUTTING_DOWN, 503)
            return
        for job in joining:
            if job.sampling.length == 0:  # nothing to generate
                job._end()
            self._prefilling.append(_Prefill(job))
        self._prefill_isolated()
        self._leave()
        if self._rows:
            self._step_isolated()
            self._leave()  # (the finished free their slots before their consumers wake)

    def _prefill(self) -> None:
        """Run the next chunk (up to :data:`PREFILL_CHUNK` tokens) of every prompt being run, one
        batch per chunk length; a job whose prompt is done (all but its last token, as generate's
        :func:`~textrnn.inference.generate.run_prefix`) joins the batch. Ended jobs leave."""
        groups: dict[tuple[int, bool], list[_Prefill]] = {}
        for p in self._prefilling:
            if not p.job.ended:  # (an ended job leaves below)
                groups.setdefault((min(PREFILL_CHUNK, len(p.ids) - p.done), p.state is None), []).append(p)
        for (n, fresh), group in groups.items():
            if n:
                ids = [p.ids[p.done : p.done + n] for p in group]  # (G, n)
                labels = torch.tensor([p.job.label for p in group], device=self._device)  # (G,)
                rows = prefill(self.lm.model, ids, None if fresh else states.stack([p.state for p in group]), labels)
                for k, p in enumerate(group):
                    p.state, p.done = states.row(rows, k), p.done + n
        self._prefilled()

    def _prefilled(self) -> None:
        """After a chunk: each job being prefilled is looked at once; ended, it leaves (its slots
        freed, whenever it ended); with its prompt done, it joins the batch (a join that fails ends it)."""
        waiting, ready = [], []
        for p in self._prefilling:
            if p.job.ended:
                self._release(p.job)
            else:
                (waiting if p.done < len(p.ids) else ready).append(p)
        self._prefilling = waiting
        for p in ready:
            try:
                self._join(p.job, p.state or self._stepper.initial_state(1, self._device))
            except Exception:
                logger.exception("a job could not join the batch")
                self._fail(p.job)

    def _prefill_isolated(self) -> None:
        """:meth:`_prefill`; where that fails, each prompt is run alone, and a job whose prompt still fails ends."""
        try:
            self._prefill()
            return
        except Exception:
            logger.exception("running the prompts failed; each is tried alone")
        everyone, kept = self._prefilling, []
        for p in everyone:
            self._prefilling = [p]
            try:
                self._prefill()  # (a prompt that ran before the failure just runs its next chunk)
            except Exception:
                logger.exception("a prompt's run failed")
                self._fail(p.job)
            else:
                kept.extend(self._prefilling)
        self._prefilling = kept

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

    def _release(self, job: Job, streams: Optional[int] = None) -> None:
        """``streams`` of ``job``'s slots (None: all it still holds) are free again; never more than
        it holds, so a slot is freed once however often its end is seen. Its consumer hears of it."""
        held = self._held.get(job, 0)
        n = held if streams is None else min(streams, held)
        if held > n:
            self._held[job] = held - n
        else:
            self._held.pop(job, None)
        self._touched[job] = None
        with self._cond:
            self._admitted -= n

    def _fail(self, job: Job) -> None:
        """``job`` cannot be run: it ends with a server error and frees its slots (its rows still in
        the batch, if any, leave at the next :meth:`_leave`)."""
        job._end(GENERATION_FAILED, 500)
        self._release(job)

    def _leave(self) -> None:
        """The streams that have ended leave the batch (each stream's end is read once: a cancel
        may come from another thread at any moment)."""
        gone = [s.gone for s in self._rows]
        if not any(gone):
            return
        keep = [k for k, g in enumerate(gone) if not g]
        for s, g in zip(self._rows, gone):
            if g:
                self._release(s.job, 1)
        self._labels = None
        if not keep:
            self._rows, self._state, self._tokens = [], None, None
            return
        index = torch.tensor(keep, device=self._device)
        self._rows = [self._rows[k] for k in keep]
        self._state = states.select(self._state, index)
        self._tokens = self._tokens.index_select(0, index)

    def _step_isolated(self) -> None:
        """One step of the batch (:meth:`_step`). Where it fails, the rows it did not advance are
        stepped again in halves, down to one row: the jobs whose rows fail alone end with a server
        error (:meth:`_fail`), the others go on. (A retried row may draw its noise again.)"""
        rows, state, tokens = self._rows, self._state, self._tokens
        before = [len(s.job.texts[s.sample]) for s in rows]  # pieces emitted: tells a row the step advanced
        try:
            self._step()
            return
        except Exception:
            logger.exception("a step of %d rows failed; its rows are tried again in smaller groups", len(rows))
        done: list[tuple[list[int], list, torch.Tensor]] = []  # (row numbers, their new state, their tokens)
        pending: list[list[int]] = []
        failed: list[int] = []

        def after_failure(ks: list[int]) -> None:
            rest = self._keep_advanced(ks, rows, before, done)
            if len(rest) < len(ks):
                pending.extend([rest] if rest else [])
            elif len(ks) == 1:
                failed.append(ks[0])
            else:
                pending.extend([ks[: len(ks) // 2], ks[len(ks) // 2 :]])

        after_failure(list(range(len(rows))))
        while pending:
            ks = pending.pop()
            index = torch.tensor(ks, device=self._device)
            self._rows, self._labels = [rows[k] for k in ks], None
            self._state, self._tokens = states.select(state, index), tokens.index_select(0, index)
            try:
                self._step()
            except Exception as e:
                logger.warning("a step of %d rows failed again (%s)", len(ks), e)
                after_failure(ks)
            else:
                done.append((ks, self._state, self._tokens))
        for k in failed:
            logger.error("a job's row failed alone: the job ends with an error")
            self._fail(rows[k].job)
        self._reassemble(rows, done)

    def _keep_advanced(self, ks: list[int], rows: list, before: list[int], done: list) -> list[int]:
        """After a failed step of ``rows[ks]`` (the batch as it was tried): the rows it advanced
        (they emitted their token) go to ``done`` with their new state; the others are returned."""
        moved = [i for i, k in enumerate(ks) if len(rows[k].job.texts[rows[k].sample]) > before[k]]
        if moved:
            index = torch.tensor(moved, device=self._device)
            done.append(([ks[i] for i in moved], states.select(self._state, index),
                         self._tokens.index_select(0, index)))
        moved_set = set(moved)
        return [k for i, k in enumerate(ks) if i not in moved_set]

    def _reassemble(self, rows: list, done: list[tuple[list[int], list, torch.Tensor]]) -> None:
        """The batch again from the groups stepped (row numbers into ``rows``), in row order."""
        order = [k for ks, _, _ in done for k in ks]
        self._labels = None
        if not order:
            self._rows, self._state, self._tokens = [], None, None
            return
        perm = torch.tensor(sorted(range(len(order)), key=order.__getitem__), device=self._device)
        self._state = states.select(states.stack([group_state for _, group_state, _ in done]), perm)
        self._tokens = torch.cat([group_tokens for _, _, group_tokens in done]).index_select(0, perm)
        self._rows = [rows[k] for k in sorted(order)]

    def _step(self) -> None:
        rows = self._rows
        if self._labels is None and self.lm.conditions:
            self._labels = torch.tensor([s.job.label for s in rows], device=self._device)  # (B,)
        logits, self._state = self._stepper(self._tokens, self._state, self._labels)  # (B, V)
        self._tokens = pick(logits, [s.draw for s in rows])  # (B,)
        for s, token in zip(rows, self._tokens.tolist()):
            s.emit(token)
            self._touched[s.job] = None

    def _fail_all(self, error: str, status: int) -> None:
        """Every job the step loop holds frees its slots and leaves, then ends with ``error`` (HTTP ``status``)."""
        jobs = list(self._held)
        for job in jobs:
            self._release(job)
        self._prefilling, self._rows, self._state, self._tokens, self._labels = [], [], None, None, None
        self._publish()
        for job in jobs:
            job._end(error, status)

    def _wake(self) -> None:
        """Wake the consumers waiting for the jobs with news."""
        wake(self._touched)
        self._touched.clear()
