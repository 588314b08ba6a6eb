"""The HTTP side of ``textrnn serve``: a Starlette application on uvicorn (the ``serve`` extra).

Endpoints: ``GET /`` (the page), ``GET /healthz``, ``GET /models``, ``POST /generate`` (JSON, or
server-sent events with ``"stream": true``), ``POST /classify``, ``POST /evaluate``. Every
refusal is JSON ``{"error": ..., "field": ...}`` with a 4xx status (5xx: the server's fault: 500
a failure, 503 busy or shutting down), and the server goes on serving.

What other sites' pages cannot do (a page the user visits may send requests to 127.0.0.1): a
request whose ``Host`` is not one of the server's names is refused (400; a page that made its
own name point at this server, DNS rebinding, sends its own name), one whose ``Origin`` is
another site is refused (403), and a POST body must be ``Content-Type: application/json`` (415;
a page cannot send that to another site without asking it first). A body must arrive within
``--body-timeout`` (408) and hold at most ``--max-body-bytes`` (413).

Work nobody waits for stops: a /generate whose client goes away (streaming or not, before or
after its response starts) is cancelled, its streams freed; /classify and /evaluate run one at a
time, at most ``--max-queue`` of them waiting or running (503 beyond), and one whose client
has gone is not run.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import signal
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Optional
from urllib.parse import urlsplit

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import TextRNNError
from ..inference.classify import predicted_labels
from ..inference.scoring import score_texts
from .jobs import Job
from .models import Models, Served
from .limits import EVENT_INTERVAL, Limits
from .requests import (CLASSIFY_FIELDS, RequestError, model_name, parse_generate, parse_json, parse_min_confidence,
                       parse_texts)

logger = logging.getLogger(__name__)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
CLOSE_AFTER = (408, 413, 415)  # refusals that may leave a body unread: the connection closes


@dataclasses.dataclass(frozen=True)
class Hosts:
    """The names (``Host`` headers, port aside) a server answers to: ``names``, and with
    ``addresses`` any IP address (a server on every interface; an address cannot be a DNS
    rebinding), with ``anything`` any name at all (``--allow-host '*'``: no rebinding guard)."""

    names: frozenset = frozenset(LOOPBACK_NAMES)
    addresses: bool = False
    anything: bool = False

    @classmethod
    def bound_to(cls, host: str, allow: Iterable[str] = ()) -> "Hosts":
        """For a server listening on ``host``: that name, the loopback names when it is a loopback
        address or every interface, and the names ``allow`` (``textrnn serve --allow-host``)."""
        allow = [_host_name(a) for a in allow]
        names = {_host_name(host), *(a for a in allow if a != "*")}
        wildcard = host in WILDCARDS
        if wildcard or _is_loopback(host):
            names.update(LOOPBACK_NAMES)
        return cls(frozenset(names - {""}), wildcard, "*" in allow)

    def allows(self, header: str) -> bool:
        name = _host_name(header)
        return self.anything or name in self.names or (self.addresses and _is_address(name))


def _host_name(header: str) -> str:
    """The name in a Host header (or an address), lower case, without its port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return (header.rpartition(":")[0] if header.count(":") == 1 else header).rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    return name == "localhost" or (_is_address(name) and ipaddress.ip_address(name).is_loopback)


class _Guard:
    """Refuses a request whose ``Host`` is not one of ``hosts`` (400) or whose ``Origin`` is not the
    server's own (403): what a page of another site sends, or a page that rebound its name to this server."""

    def __init__(self, app: ASGIApp, hosts: Hosts):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _refusal(Headers(scope=scope), self.hosts) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await _refused_response(refusal, close=True)(scope, receive, send)


def _refusal(headers: Headers, hosts: Hosts) -> Optional[RequestError]:
    host, origin = headers.get("host"), headers.get("origin")
    if host is not None and not hosts.allows(host):
        return RequestError(400, f"this server does not answer to the name {_host_name(host)!r}; to serve it under "
                                 "that name, start it with --allow-host NAME")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or host is None or parts.netloc.lower() != host.strip().lower():
            return RequestError(403, f"requests from other sites' pages (Origin {origin!r}) are refused; only this "
                                     "server's own page may call it")
    return None


class _ClientGone(Exception):
    """The client went away before its answer was ready: nobody reads what the server sends."""


def create_app(models: Models, limits: Limits, event_interval: float = EVENT_INTERVAL,
               hosts: Hosts = Hosts()) -> Starlette:
    """The application serving ``models`` within ``limits``, streaming an event per stream at most
    every ``event_interval`` seconds, answering to ``hosts`` (default: the loopback names); its
    shutdown closes the models' batchers."""
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    work = anyio.CapacityLimiter(1)  # classify and evaluate run one at a time, beside the step loops
    queued = [0]  # classify and evaluate requests running or waiting for ``work``

    async def body_of(request: Request) -> dict[str, Any]:
        return parse_json(await _read(request, limits))

    async def in_turn(request: Request, function: Callable, *args: Any) -> Any:
        """``function(*args)`` in a thread, after the classify/evaluate work before it (503 when
        --max-queue requests wait already); not run, or its result dropped, if the client goes away."""
        if queued[0] >= limits.max_queue:
            raise RequestError(503, f"the server is busy: {queued[0]} /classify and /evaluate requests (its "
                                    "--max-queue) are running or waiting; try again shortly")
        queued[0] += 1
        try:
            return await _while_connected(request, lambda: anyio.to_thread.run_sync(function, *args, limiter=work))
        finally:
            queued[0] -= 1

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        batchers = [s.batcher for s in models.served.values() if s.batcher is not None]
        return JSONResponse({"status": "ok", "streams": sum(b.streams for b in batchers),
                             "admitted": sum(b.admitted for b in batchers), "queued": queued[0]})

    async def list_models(request: Request) -> Response:
        return JSONResponse({"models": models.describe()})

    async def generate(request: Request) -> Response:
        body = await body_of(request)
        served = models.pick("lm", model_name(body))
        lm = served.trained
        sampling, stream = parse_generate(body, limits, lm.tokenizer.vocab_size, lm.conditions)
        job = served.batcher.submit(sampling)
        if stream:
            return _EventStream(job, served.name, event_interval)
        try:
            await _while_connected(request, lambda: _finished(job))
        finally:
            job.cancel()  # (a no-op once it has ended)
        if job.error:
            raise RequestError(job.error_status, job.error)
        return JSONResponse(_result(job, served.name))

    async def classify(request: Request) -> Response:
        body = await body_of(request)
        served = models.pick("classify", model_name(body))
        texts, _ = parse_texts(body, limits, CLASSIFY_FIELDS)
        labels, names = served.trained.labels, list(map(str, served.trained.labels))
        min_confidence = parse_min_confidence(body, labels)
        probs = await in_turn(request, served.trained.predict_proba, texts)
        results = [{"label": label, "probability": float(p.max()), "probabilities": dict(zip(names, p.tolist()))}
                   for label, p in zip(predicted_labels(probs, labels, min_confidence), probs)]
        return JSONResponse({"model": served.name, "labels": labels, "results": results})

    async def evaluate(request: Request) -> Response:
        body = await body_of(request)
        served = models.pick("lm", model_name(body))
        texts, _ = parse_texts(body, limits)
        rows = await in_turn(request, _score, served, texts)
        return JSONResponse({"model": served.name, "results": rows})

    routes = [Route("/", index), Route("/healthz", healthz), Route("/models", list_models),
              Route("/generate", generate, methods=["POST"]), Route("/classify", classify, methods=["POST"]),
              Route("/evaluate", evaluate, methods=["POST"])]
    handlers: dict[Any, Callable] = {RequestError: _refused, TextRNNError: _refused, HTTPException: _http_error,
                                     _ClientGone: _nobody, Exception: _server_error}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=_closing(models),
                     middleware=[Middleware(_Guard, hosts=hosts)])


def _closing(models: Models) -> Callable:
    """The application's lifespan: at its shutdown the models' batchers close."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            models.close()

    return lifespan


async def _read(request: Request, limits: Limits) -> bytes:
    """The request body: JSON by its Content-Type (else 415), refused (413) as soon as it passes
    ``--max-body-bytes``, or (408) when it has not all come within ``--body-timeout`` seconds."""
    kind = request.headers.get("content-type", "")
    if kind.partition(";")[0].strip().lower() != "application/json":
        raise RequestError(415, f"the body must be JSON sent with Content-Type: application/json, got "
                                f"{kind or 'no Content-Type'!r}")
    limit = limits.max_body_bytes
    too_large = RequestError(413, f"the body is larger than {limit} bytes (the server's --max-body-bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(limits.body_timeout) as timer:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    chunks.clear()
                    raise too_large
                chunks.append(chunk)
        except ClientDisconnect:
            raise RequestError(400, "the client went away before sending the whole body") from None
    if timer.cancelled_caught:
        chunks.clear()  # (the exception's frame would hold them)
        raise RequestError(408, f"the body did not arrive within {limits.body_timeout} s (the server's "
                                "--body-timeout)")
    return b"".join(chunks)


async def _while_connected(request: Request, work: Callable[[], Awaitable[Any]]) -> Any:
    """``await work()``, cancelled if the client goes away first (then :class:`_ClientGone`). Only
    once the body has been read: what comes from the client next is its going away."""
    outcome: list = []

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async with anyio.create_task_group() as group:
        scope = group.cancel_scope
        group.start_soon(watch)
        try:
            outcome.append((True, await work()))
        except Exception as e:  # (raised below, outside the task group: not as an ExceptionGroup)
            outcome.append((False, e))
        scope.cancel()
    if not outcome:
        raise _ClientGone()
    done, value = outcome[0]
    if not done:
        raise value
    return value


async def _finished(job: Job) -> None:
    async for _ in job.updates():
        pass


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


class _EventStream(StreamingResponse):
    """``job`` as server-sent events (:func:`_events`); cancelled whenever the response ends, also
    when the client went away before it started (then the events' generator never runs)."""

    def __init__(self, job: Job, name: str, every: float):
        super().__init__(_events(job, name, every), media_type="text/event-stream", headers=SSE_HEADERS)
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:  # (ASGI 2.4 servers: sending to a closed connection) nobody to tell
            pass
        finally:
            self.job.cancel()


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
        return _refused_response(exc)
    return JSONResponse({"error": " ".join(str(exc).split()), "field": None}, status_code=422)


def _refused_response(exc: RequestError, close: bool = False) -> Response:
    headers = {"Connection": "close"} if close or exc.status in CLOSE_AFTER else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _nobody(request: Request, exc: _ClientGone) -> Response:
    return Response(status_code=499)  # (nginx's "client closed request": nobody receives it)


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
          event_interval: float = EVENT_INTERVAL, allow_hosts: Iterable[str] = (),
          on_ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve ``models`` until SIGTERM or Ctrl-C; ``on_ready`` gets the URL once it listens (``port``
    0: a free one). It answers to the names of :meth:`Hosts.bound_to` (``host`` and ``allow_hosts``)."""
    app = create_app(models, limits, event_interval, Hosts.bound_to(host, allow_hosts))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(grace) + 2,
                            limit_concurrency=limits.max_connections + 1)  # (uvicorn counts the new one too)
    _Server(config, models, grace, on_ready).run()
