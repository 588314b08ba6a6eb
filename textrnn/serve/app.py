"""The HTTP side of ``textrnn serve``: a Starlette application on uvicorn (the ``serve`` extra).

Endpoints: ``GET /`` (the page), ``GET /healthz``, ``GET /models``, ``POST /generate`` (JSON, or
server-sent events with ``"stream": true``), ``POST /classify``, ``POST /evaluate``. Every
refusal is JSON ``{"error": ..., "field": ...}`` with a 4xx status (5xx: the server's fault),
and the server goes on serving.
"""

from __future__ import annotations

import json
import logging
import signal
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, AsyncIterator, Callable, Optional

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import TextRNNError
from ..inference.scoring import score_texts
from .jobs import Job
from .models import Models, Served
from .limits import EVENT_INTERVAL, Limits
from .requests import RequestError, model_name, parse_generate, parse_json, parse_texts

logger = logging.getLogger(__name__)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(models: Models, limits: Limits, event_interval: float = EVENT_INTERVAL) -> Starlette:
    """The application serving ``models`` within ``limits``, streaming an event per stream at most
    every ``event_interval`` seconds; its shutdown closes the models' batchers."""
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    work = anyio.CapacityLimiter(1)  # classify and evaluate run one at a time, beside the step loops

    async def body_of(request: Request) -> dict[str, Any]:
        return parse_json(await _read(request, limits.max_body_bytes))

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        streams = sum(s.batcher.streams for s in models.served.values() if s.batcher is not None)
        return JSONResponse({"status": "ok", "streams": streams})

    async def list_models(request: Request) -> Response:
        return JSONResponse({"models": models.describe()})

    async def generate(request: Request) -> Response:
        body = await body_of(request)
        served = models.pick("lm", model_name(body))
        lm = served.trained
        sampling, stream = parse_generate(body, limits, lm.tokenizer.vocab_size, lm.conditions)
        job = served.batcher.submit(sampling)
        if stream:
            events = _events(job, served.name, event_interval)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        try:
            async for _ in job.updates():
                pass
        finally:
            job.cancel()  # (a no-op once it has ended)
        if job.error:
            raise RequestError(503, job.error)
        return JSONResponse(_result(job, served.name))

    async def classify(request: Request) -> Response:
        body = await body_of(request)
        served = models.pick("classify", model_name(body))
        texts, _ = parse_texts(body, limits)
        probs = await anyio.to_thread.run_sync(served.trained.predict_proba, texts, limiter=work)
        labels = served.trained.labels
        results = [{"label": labels[int(p.argmax())], "probability": float(p.max()),
                    "probabilities": {str(label): float(x) for label, x in zip(labels, p)}} for p in probs]
        return JSONResponse({"model": served.name, "labels": labels, "results": results})

    async def evaluate(request: Request) -> Response:
        body = await body_of(request)
        served = models.pick("lm", model_name(body))
        texts, _ = parse_texts(body, limits)
        rows = await anyio.to_thread.run_sync(_score, served, texts, limiter=work)
        return JSONResponse({"model": served.name, "results": rows})

    routes = [Route("/", index), Route("/healthz", healthz), Route("/models", list_models),
              Route("/generate", generate, methods=["POST"]), Route("/classify", classify, methods=["POST"]),
              Route("/evaluate", evaluate, methods=["POST"])]
    handlers: dict[Any, Callable] = {RequestError: _refused, TextRNNError: _refused, HTTPException: _http_error,
                                     Exception: _server_error}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            models.close()

    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


async def _read(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes."""
    too_large = RequestError(413, f"the body is larger than {limit} bytes (the server's --max-body-bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client went away before sending the whole body") from None
    return b"".join(chunks)


def _score(served: Served, texts: list[str]) -> list[dict[str, Any]]:
    """Each text scored on its own, as ``textrnn evaluate --per-line`` scores a line (a newline
    ends it): tokens, nats, loss (nats per predicted token), bits per character, perplexity."""
    lm = served.trained
    lines = [t if t.endswith("\n") else t + "\n" for t in texts]
    rows = score_texts(lm.model, lm.tokenizer, lines, lm.run.train.seq_len)
    for i, row in enumerate(rows):
        if row["tokens"] < 2:
            raise RequestError(422, f"texts[{i}] is too short to score: it and its newline make {row['tokens']} "
                                    "token; give at least two", "texts")
        row["loss"] = row["nats"] / (row["tokens"] - 1)
    return rows


async def _events(job: Job, name: str, every: float) -> AsyncIterator[str]:
    """The job as server-sent events: ``{"sample", "text"}`` pieces as they come (at most one event
    every ``every`` seconds), then ``done`` (the whole result, as a non-streaming request gets it) or ``error``."""
    try:
        async for update in job.updates(every):
            parts = [_sse(None, {"sample": j + 1, "text": piece}) for j, piece in enumerate(update.pieces) if piece]
            if update.finished:
                parts.append(_sse("error", {"error": job.error}) if job.error else _sse("done", _result(job, name)))
            if parts:
                yield "".join(parts)
    finally:
        job.cancel()  # the client went away, or the stream ended (then a no-op)


def _sse(event: Optional[str], data: Any) -> str:
    return (f"event: {event}\n" if event else "") + f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _result(job: Job, name: str) -> dict[str, Any]:
    return {"model": name, "tokens": job.tokens, "samples": job.records()}


async def _refused(request: Request, exc: TextRNNError) -> Response:
    if isinstance(exc, RequestError):
        return JSONResponse(exc.body(), status_code=exc.status)
    return JSONResponse({"error": " ".join(str(exc).split()), "field": None}, status_code=422)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"error": exc.detail, "field": None}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "the server failed on this request (its log says why)", "field": None},
                        status_code=500)


class _Server(uvicorn.Server):
    """uvicorn's server, with textrnn's start-up line and shutdown: on SIGTERM (or a first Ctrl-C)
    the listening socket closes, running generations get ``grace`` seconds to finish and are then
    cut (an ``error`` event ends their streams), and the process exits with status 0."""

    def __init__(self, config: uvicorn.Config, models: Models, grace: float, on_ready: Callable[[str], None]):
        super().__init__(config)
        self._models, self._grace, self._on_ready = models, grace, on_ready

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_ready(f"http://{f'[{host}]' if ':' in host else host}:{port}")

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop now
            return
        self.should_exit = True  # (uvicorn's own handler would re-raise the signal after the shutdown)
        self._models.drain(self._grace)


def serve(models: Models, limits: Limits, host: str = "127.0.0.1", port: int = 8000, *, grace: float = 5.0,
          event_interval: float = EVENT_INTERVAL, on_ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve ``models`` until SIGTERM or Ctrl-C; ``on_ready`` gets the URL once it listens (``port``
    0: a free one)."""
    config = uvicorn.Config(create_app(models, limits, event_interval), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=int(grace) + 2)
    _Server(config, models, grace, on_ready).run()
