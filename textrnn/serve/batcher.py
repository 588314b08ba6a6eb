"""One language model shared by every generation request: batched stepping.

A :class:`Batcher` owns a model and one thread, the step loop. A request
(:meth:`Batcher.submit`) becomes a :class:`Job` of ``num_samples`` streams. Between two steps
new jobs join: each prompt is run through the network once
(:func:`~textrnn.inference.generate.run_prefix`) and its state becomes rows of the batch; finished and
cancelled streams leave (their rows are dropped). Then every active stream advances by one
token in one batched :class:`~textrnn.inference.stepper.Stepper` step.

Each stream samples as :func:`textrnn.inference.generate.sample_steps` does, with its own settings
(temperature, top-k, top-p, greedy; a conditioned model's label) and its own random generator
(seed + sample index, its Gumbel noise drawn in the same chunks), so a request's text depends
on its seed, not on what else runs: it is the text ``textrnn generate --seed`` gives, up to
float rounding (the temperature scales the logits here, where generate folds it into the output
layer, and a batched matrix product may round a row differently from a lone one; either could
flip a near tie).

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

from ..condition import marker_ids
from ..errors import TextRNNError
from ..inference.generate import _gumbel, encode_prompt, filter_logits, new_seed, noise_chunk, sampling_generators
from ..inference.stepper import Stepper
from .jobs import Job
from .requests import JSON_NAMES, RequestError, Sampling

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
    """One sample of a job: its row's sampling settings, random generator, noise and decoder."""

    def __init__(self, job: Job, sample: int, generator: torch.Generator, decoder: Any):
        s = job.sampling
        self.job, self.sample, self.generator, self.decoder = job, sample, generator, decoder
        self.length, self.greedy, self.t = s.length, s.greedy, 0
        self.scale = 1.0 if s.greedy else 1.0 / s.temperature
        self.filter = None if s.greedy or (s.top_k is None and s.top_p is None) else (s.top_k, s.top_p)
        self.noise: Optional[torch.Tensor] = None

    def noise_row(self, vocab: int, chunk: int, zeros: torch.Tensor) -> torch.Tensor:
        """This step's Gumbel noise (V,), drawn ``chunk`` steps at a time as sample_steps draws it."""
        if self.greedy:
            return zeros
        k = self.t % chunk
        if k == 0:
            self.noise = _gumbel((min(chunk, self.length - self.t), vocab), self.generator, zeros.device)
        return self.noise[k]

    def emit(self, token: int) -> None:
        self.t += 1
        piece = self.decoder(token)
        last = self.t >= self.length
        self.job._add(self.sample, piece + self.decoder.flush() if last else piece, last)

    @property
    def gone(self) -> bool:
        return self.t >= self.length or self.job.ended


class Batcher:
    """Generation for every request of one loaded language model (a
    :class:`~textrnn.api.Trained`), batched; at most ``max_streams`` streams at once."""

    def __init__(self, lm: Any, max_streams: int = 256):
        self.lm, self.max_streams = lm, max_streams
        model, tok = lm.model, lm.tokenizer
        self._device = next(model.parameters()).device
        banned = ([tok.unk_id] if tok.unk_id is not None else []) + marker_ids(lm.config, tok)
        self._stepper = _labelled_stepper(model, banned or None, len(lm.conditions or []))
        self._vocab = model.cfg.vocab_size
        self._chunk = noise_chunk(self._vocab)
        self._zeros = torch.zeros(self._vocab, device=self._device)
        self._cond = threading.Condition()
        self._joining: list[Job] = []  # submitted, not yet seen by the step loop
        self._prefilling: list[_Prefill] = []  # their prompts being run
        self._admitted = 0  # streams of the jobs joining or running
        self._closing_at: Optional[float] = None
        self._stopped = False
        self._rows: list[_Stream] = []  # the running streams, in the batch's row order
        self._state: Optional[list] = None
        self._tokens: Optional[torch.Tensor] = None  # (B,) each row's last token
        self._settings: Optional[tuple] = None  # per-row tensors for the rows as they are
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
        start, conditioning = self.lm._conditioning(sampling.condition)
        try:
            ids = encode_prompt(self.lm.tokenizer, start + sampling.prompt, what=JSON_NAMES["prompt"])
        except TextRNNError as e:
            raise RequestError(422, str(e), "prompt") from None
        seed = new_seed() if sampling.seed is None else sampling.seed
        job = Job(sampling, seed, ids, conditioning["label"], self.lm.conditions is not None)
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
                ids = torch.tensor([p.ids[p.done : p.done + n] for p in group], device=self._device)  # (G, n)
                state = None if fresh else Stepper.to_module_state(_stack([p.state for p in group]))
                _, state = self.lm.model.encoder(ids, state)
                rows = Stepper.from_module_state(state)  # per layer (G, H)
                for k, p in enumerate(group):
                    p.state, p.done = [_row(layer, k) for layer in rows], p.done + n
        self._prefilling = [p for p in self._prefilling if not p.job.ended and p.done < len(p.ids)]
        for group in groups.values():
            for p in group:
                if p.done == len(p.ids):
                    self._join(p.job, p.state or self._stepper.initial_state(1, self._device))

    def _join(self, job: Job, state: list) -> None:
        """``job``'s streams join the batch, from ``state`` (1 row) after its prompt but the last token."""
        n, last = job.sampling.num_samples, job.prompt_ids[-1]
        generators = sampling_generators(job.seed, self._device, n)
        streams = [_Stream(job, j, g, self.lm.tokenizer.stream_decoder()) for j, g in enumerate(generators)]
        for s in streams:  # let word spacing and BPE byte joins see the prompt's end (as generate does)
            s.decoder(last)
        tokens = torch.full((n,), last, dtype=torch.long, device=self._device)
        if self._state is None:
            self._state = [_grow(None, layer, n) for layer in state]
            self._tokens = tokens
        else:
            self._state = [_grow(old, new, n) for old, new in zip(self._state, state)]
            self._tokens = torch.cat([self._tokens, tokens])
        self._rows.extend(streams)
        self._settings = None

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
        self._settings = None
        if not keep:
            self._rows, self._state, self._tokens = [], None, None
            return
        index = torch.tensor(keep, device=self._device)
        self._rows = [self._rows[k] for k in keep]
        self._state = [_select(layer, index) for layer in self._state]
        self._tokens = self._tokens.index_select(0, index)

    def _step(self) -> None:
        rows = self._rows
        scale, offsets, groups = self._row_settings()
        ids = self._tokens if offsets is None else self._tokens + offsets
        logits, self._state = self._stepper(ids, self._state)  # (B, V)
        logits = logits * scale
        for index, (top_k, top_p) in groups:
            if index is None:
                logits = filter_logits(logits, top_k, top_p)
            else:
                logits.index_copy_(0, index, filter_logits(logits.index_select(0, index), top_k, top_p))
        noise = torch.stack([s.noise_row(self._vocab, self._chunk, self._zeros) for s in rows])  # (B, V)
        self._tokens = (logits + noise).argmax(dim=-1)  # Gumbel-max (greedy rows: zero noise)
        for s, token in zip(rows, self._tokens.tolist()):
            s.emit(token)
            self._touched[s.job] = None

    def _row_settings(self) -> tuple:
        """The rows' logit scales (B, 1), label offsets (B,) or None, and (rows, filter) groups."""
        if self._settings is None:
            rows, device = self._rows, self._device
            scale = torch.tensor([[s.scale] for s in rows], device=device)
            offsets = None
            if self.lm.conditions:
                offsets = torch.tensor([s.job.label * self._vocab for s in rows], device=device)
            by_filter: dict[tuple, list[int]] = {}
            for k, s in enumerate(rows):
                if s.filter is not None:
                    by_filter.setdefault(s.filter, []).append(k)
            groups = [(None if len(ks) == len(rows) else torch.tensor(ks, device=device), f)
                      for f, ks in by_filter.items()]
            self._settings = (scale, offsets, groups)
        return self._settings

    def _fail_all(self, joining: list[Job], error: str) -> None:
        for job in [*joining, *(p.job for p in self._prefilling), *(s.job for s in self._rows)]:
            job._end(error)
            self._touched[job] = None
        with self._cond:
            self._admitted = sum(j.sampling.num_samples for j in self._joining)
        self._prefilling, self._rows, self._state, self._tokens, self._settings = [], [], None, None, None

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


def _labelled_stepper(model: Any, banned: Optional[list[int]], labels: int) -> Any:
    """A Stepper at logit scale 1; for a model conditioned on ``labels`` labels, its input table
    holds one block of V rows per label (0: none), so each row's token id + label * V picks its own."""
    with torch.no_grad():
        stepper = Stepper(model, banned=banned)
        if labels:
            stepper.table = torch.cat([stepper.table, *(Stepper(model, banned=banned, label=label).table
                                                        for label in range(1, labels + 1))])
    return stepper


def _grow(old: Any, new: Any, n: int) -> Any:
    """A layer's state with ``new`` (one row) repeated ``n`` times below ``old`` (None: nothing)."""
    if isinstance(new, tuple):
        return tuple(_grow(None if old is None else o, x, n) for o, x in zip(old or (None, None), new))
    rows = new.expand(n, -1)
    return rows.contiguous() if old is None else torch.cat([old, rows])


def _stack(states: list[list]) -> list:
    """Per-layer states of one row each, stacked into one state of ``len(states)`` rows."""
    return [tuple(torch.cat(parts) for parts in zip(*layers)) if isinstance(layers[0], tuple) else torch.cat(layers)
            for layers in zip(*states)]


def _row(layer: Any, k: int) -> Any:
    return tuple(t[k : k + 1] for t in layer) if isinstance(layer, tuple) else layer[k : k + 1]


def _select(layer: Any, index: torch.Tensor) -> Any:
    if isinstance(layer, tuple):
        return tuple(t.index_select(0, index) for t in layer)
    return layer.index_select(0, index)
