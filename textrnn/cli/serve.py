"""``textrnn serve``: trained models behind an HTTP server (the ``serve`` extra)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import click

from ..config import DEVICES
from ..serve.limits import EVENT_INTERVAL, Limits

SERVE_EXTRA = ("starlette", "uvicorn", "anyio")  # what `pip install 'textrnn[serve]'` brings (anyio: with starlette)


def _limit_options(command: Callable) -> Callable:
    """One option per :class:`Limits` field, its default and help from the declaration."""
    for f in reversed(dataclasses.fields(Limits)):
        command = click.option("--" + f.name.replace("_", "-"), f.name, default=f.default, show_default=True,
                               type=int, help=f.metadata["help"])(command)
    return command


@click.command("serve")
@click.option("--checkpoint", "-c", "checkpoints", multiple=True, type=click.Path(),
              help="A run directory or shipped model to serve; repeat for several (the first of each task is "
                   "its default) [default: the latest LM and classifier in ./checkpoints, else the shipped ones].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="A name the server answers to besides its --host (and, on a loopback or every-interface "
                   "--host, localhost, 127.0.0.1 and ::1; on every interface, any IP address); repeat for several. "
                   "A request for another name gets 400 (what stops DNS rebinding); '*': any name.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on (0: a free one).")
@click.option("--device", default="cpu", show_default=True, help=" | ".join(DEVICES))
@click.option("--threads", type=int, help="PyTorch's threads for the models [default: PyTorch's, one per core].")
@click.option("--shutdown-timeout", default=5.0, show_default=True, type=float,
              help="On SIGTERM or Ctrl-C, seconds running generations get to finish before they are cut.")
@click.option("--event-interval", default=EVENT_INTERVAL, show_default=True, type=float,
              help="Streaming: seconds between two events of one stream (the text generated meanwhile comes in "
                   "one event: fewer, larger events under load); 0: an event per token.")
@_limit_options
def serve_command(checkpoints: tuple[str, ...], host: str, allow_hosts: tuple[str, ...], port: int, device: str,
                  threads: int | None, shutdown_timeout: float, event_interval: float, **limits: Any) -> None:
    """Serve language models and classifiers over HTTP: POST /generate (JSON, or server-sent
    events with "stream": true), /classify, /evaluate; GET /models, /healthz, and a page at /.
    POST bodies are JSON sent as Content-Type: application/json.

    \b
    textrnn serve                                   # the latest runs, at http://127.0.0.1:8000
    curl -H 'Content-Type: application/json' -d '{"prompt": "ROMEO:", "length": 200, "seed": 1}' \\
         localhost:8000/generate
    """
    from ..errors import TextRNNError

    limits_ = Limits(**limits)
    if threads is not None and threads < 1:
        raise TextRNNError(f"--threads must be a positive integer, got {threads}")
    if not (math.isfinite(shutdown_timeout) and shutdown_timeout >= 0):
        raise TextRNNError(f"--shutdown-timeout must be a number of seconds >= 0, got {shutdown_timeout}")
    if not 0 <= event_interval <= 10:
        raise TextRNNError(f"--event-interval must be between 0 and 10 seconds, got {event_interval}")
    try:
        from ..serve.app import serve
    except ImportError as e:  # only a missing web library is the extra's; any other is a bug, and propagates
        if (e.name or "").partition(".")[0] not in SERVE_EXTRA:
            raise
        raise TextRNNError(f"textrnn serve needs the serve extra ({e}); install it: pip install 'textrnn[serve]'") \
            from None
    import torch

    from ..serve.models import TASKS, load_models

    if threads is not None:
        torch.set_num_threads(threads)
    models = load_models(checkpoints, limits_, device)
    names = ", ".join(f"{s.name} ({TASKS[s.task]})" for s in models.served.values())
    serve(models, limits_, host, port, grace=shutdown_timeout, event_interval=event_interval, allow_hosts=allow_hosts,
          on_ready=lambda url: click.echo(f"serving {names} at {url} (Ctrl-C or SIGTERM stops)"))
