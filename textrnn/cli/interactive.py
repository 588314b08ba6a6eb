"""``textrnn generate --interactive``: a prompt loop in the terminal over a
:class:`~textrnn.inference.session.Session` (the text and its recurrent state carry on across turns).

Each line typed is fed with a newline after it, so the continuation starts on a new line (a
char model continues the text as the next line); an empty line continues the text without
adding to it. The continuation streams to stdout; the banner, settings and errors go to
stderr. Ctrl-C stops a continuation (the text keeps what was shown) or, at the prompt, clears
the line, as in a shell; Ctrl-D or ``/quit`` ends with exit status 0.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from typing import Any, Iterator, Optional

import click

from ..errors import TextRNNError

PROMPT = "> "


def _commands() -> dict[str, Any]:
    """``--interactive``'s setting commands, from the sampling declaration: ``temp`` -> its field."""
    from ..inference.options import SamplingOptions

    return {f.metadata["flag"][2:]: f for f in SamplingOptions.fields() if f.metadata["command"]}


def _help() -> str:
    """What /help shows: how to use the loop, and each setting command with its help (from the declaration)."""
    from ..inference.options import repeatable, value_type

    lines = ["Type a line and press Enter: it is fed (with a newline) and the continuation streams back;",
             "the text carries on across turns. An empty line continues the text; //text feeds \"/text\"."]
    for name, f in _commands().items():
        kind = value_type(f)
        value = "on|off" if kind is bool else ("TEXT|off" if repeatable(f) else
                                               {int: "N", float: "F"}.get(kind, "TEXT") + ("|off" if f.default is None
                                                                                           else ""))
        more = " (again: one more; off: none)" if repeatable(f) else ""
        lines.append(f"  /{name} {value}".ljust(18) + f.metadata["help"] + more)
    lines += ["  /reset".ljust(18) + "start a fresh text", "  /help".ljust(18) + "this help",
              "  /quit".ljust(18) + "end (or Ctrl-D)",
              "A setting command without a value shows the settings. Ctrl-C stops a continuation."]
    return "\n".join(lines)


def interact(checkpoint: Optional[str], device: str, prompt: str, options: dict[str, Any],
             condition: Optional[str] = None) -> None:
    """Load the model and run the prompt loop until Ctrl-D or ``/quit``. ``prompt`` is fed
    first as context (not continued); ``options``: the sampling options given (see
    :class:`~textrnn.inference.options.SamplingOptions`); ``condition``: a conditioned model's label."""
    if options.get("num_samples", 1) != 1:
        raise click.UsageError("--interactive samples one stream; leave out --num-samples")
    from ..api import load

    session = load(checkpoint, device=device).session(condition=condition, **options)
    if prompt:
        session.feed(prompt)
    prompt_text = _line_editing()
    commands = " ".join(f"/{name}" for name in [*_commands(), "reset", "help", "quit"])
    click.echo(f"textrnn interactive: type text and press Enter; commands: {commands}; Ctrl-D ends", err=True)
    with _interruptible():
        _loop(session, prompt_text)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here whatever the process inherited: a program started with SIGINT
    ignored (a background job of a script, some launchers) or blocked keeps that disposition across exec, and
    Python then installs no handler, so Ctrl-C would neither stop a continuation nor clear the prompt. Restored
    on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = hasattr(signal, "pthread_sigmask") and \
        signal.SIGINT in signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, old)


def _on_off(value: str) -> bool:
    """``on`` / ``off`` (or true / false, yes / no, 1 / 0) as a bool."""
    words = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
    if value.lower() not in words:
        raise ValueError(value)
    return words[value.lower()]


def _loop(session: Any, prompt_text: str) -> None:
    while True:
        try:
            line = input(prompt_text)
        except EOFError:
            if prompt_text:
                sys.stdout.write("\n")  # the shell's prompt on a line of its own
            return
        except KeyboardInterrupt:  # at the prompt: drop the line, as a shell does
            sys.stdout.write("\n")
            continue
        try:
            if not _turn(session, line):
                return
        except KeyboardInterrupt:  # the continuation was stopped (see _stream); the session goes on
            pass
        except TextRNNError as e:
            click.echo(f"error: {' '.join(str(e).split())}", err=True)


def _line_editing() -> str:
    """The prompt to show: ``PROMPT`` with readline line editing on a terminal, none when
    stdin is a pipe (the output is then just the text)."""
    if not sys.stdin.isatty():
        return ""
    try:
        import readline  # noqa: F401 - importing it gives input() line editing and history
    except ImportError:  # pragma: no cover - e.g. Windows
        pass
    return PROMPT


def _turn(session: Any, line: str) -> bool:
    """Act on one line typed: a command or text to continue. False: end the session."""
    if line.startswith("/") and not line.startswith("//"):
        return _command(session, line)
    text = line[1:] if line.startswith("//") else line
    _stream(session.feed_and_continue(text + "\n" if text else ""))
    return True


def _command(session: Any, line: str) -> bool:
    """Run one ``/command``. False: end the session."""
    name, _, value = line[1:].strip().partition(" ")
    value = value.strip()
    if name == "quit":
        return False
    if name == "help":
        click.echo(_help(), err=True)
    elif name == "reset":
        session.reset()
        click.echo("(a fresh text)", err=True)
    elif name in _commands():
        if value:
            _set(session, name, value)
        click.echo(_describe(session.settings), err=True)
    else:
        commands = " ".join(f"/{c}" for c in [*_commands(), "reset", "help", "quit"])
        click.echo(f"error: unknown command /{name}; commands: {commands} (/help)", err=True)
    return True


def _set(session: Any, name: str, value: str) -> None:
    """Change one setting; a bad value is one ``error:`` line and no change. A list setting (/stop, /ban) gets
    one more value, or none with ``off``."""
    from ..inference.options import OptionError, repeatable, unescape, value_type

    f = _commands()[name]
    kind = value_type(f)
    try:
        if value.lower() in ("off", "none") and (f.default is None or repeatable(f)):
            parsed: Any = () if repeatable(f) else None
        elif repeatable(f):
            parsed = (*getattr(session.settings, f.name), unescape(value) if f.metadata["escapes"] else value)
        else:
            parsed = _on_off(value) if kind is bool else kind(value)
    except ValueError:
        click.echo(f"error: /{name} got {value!r}; see /help", err=True)
        return
    try:
        session.configure(**{f.name: parsed})
    except OptionError as e:  # the option's one check, named as the commands name it
        click.echo(f"error: {e.message('interactive')}", err=True)


def _describe(settings: Any) -> str:
    """The settings on one line, as the commands name them."""
    return "  ".join(f"/{name} {_shown(getattr(settings, f.name))}" for name, f in _commands().items())


def _shown(value: Any) -> str:
    """A setting's value as typed: ``off`` for None, False and no values, ``on`` for True, a list's values
    in Python's quotes (a newline shows as \\n)."""
    if value is None or value is False or value == ():
        return "off"
    if isinstance(value, tuple):
        return " ".join(repr(v) for v in value)
    return "on" if value is True else str(value)


def _stream(pieces: Iterator[str]) -> None:
    """Write a continuation to stdout as it is sampled (what is ready, about 20 times a
    second), everything received written even when Ctrl-C stops it; ends the line."""
    out = sys.stdout
    buffer: list[str] = []
    last_flush = time.perf_counter()
    ends_line = True
    try:
        for piece in pieces:
            buffer.append(piece)
            now = time.perf_counter()
            if now - last_flush > 0.05:
                ends_line = _write(out, buffer, ends_line)
                last_flush = now
    finally:
        pieces.close()  # type: ignore[attr-defined]  # a generator: stop it where it stands
        ends_line = _write(out, buffer, ends_line)
        if not ends_line:
            out.write("\n")
        out.flush()


def _write(out: Any, buffer: list[str], ends_line: bool) -> bool:
    """Write and clear ``buffer``, flushed; whether the output now ends a line."""
    text = "".join(buffer)
    buffer.clear()
    if text:
        out.write(text)
        out.flush()
        ends_line = text.endswith("\n")
    return ends_line
