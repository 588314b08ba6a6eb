"""``textrnn generate --interactive``: a prompt loop in the terminal over a
:class:`~textrnn.inference.session.Session` (the text and its recurrent state carry on across turns).

Each line typed is fed with a newline after it, so the continuation starts on a new line (a
char model continues the text as the next line); an empty line continues the text without
adding to it. The continuation streams to stdout; the banner, settings and errors go to
stderr. Ctrl-C stops a continuation (the text keeps what was shown) or, at the prompt, clears
the line, as in a shell; Ctrl-D or ``/quit`` ends with exit status 0.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterator, Optional

import click

from ..errors import TextRNNError

HELP = """\
Type a line and press Enter: it is fed (with a newline) and the continuation streams back;
the text carries on across turns. An empty line continues the text; //text feeds "/text".
  /temp F         sampling temperature
  /top-k N|off    sample among the N most likely tokens
  /top-p F|off    sample within the smallest set of probability >= F
  /length N       tokens per continuation
  /greedy on|off  always take the most likely token
  /reset          start a fresh text
  /help           this help
  /quit           end (or Ctrl-D)
A setting command without a value shows the settings. Ctrl-C stops a continuation."""

PROMPT = "> "


def _on_off(value: str) -> bool:
    """``on`` / ``off`` (or true / false, yes / no, 1 / 0) as a bool."""
    words = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
    if value.lower() not in words:
        raise ValueError(value)
    return words[value.lower()]


# command -> (Settings field, parser of its value, whether "off" means None)
SETTINGS: dict[str, tuple[str, Callable[[str], Any], bool]] = {
    "temp": ("temperature", float, False),
    "top-k": ("top_k", int, True),
    "top-p": ("top_p", float, True),
    "length": ("length", int, False),
    "greedy": ("greedy", _on_off, False),
}
COMMANDS = [f"/{name}" for name in SETTINGS] + ["/reset", "/help", "/quit"]


def interact(checkpoint: Optional[str], device: str, prompt: str, num_samples: int, *, seed: Optional[int],
             **settings: Any) -> None:
    """Load the model and run the prompt loop until Ctrl-D or ``/quit``. ``prompt`` is fed
    first as context (not continued); ``settings`` are those of :class:`~textrnn.inference.session.Settings`."""
    if num_samples != 1:
        raise click.UsageError("--interactive samples one stream; leave out --num-samples")
    from ..api import load

    session = load(checkpoint, device=device).session(seed=seed, **settings)
    if prompt:
        session.feed(prompt)
    prompt_text = _line_editing()
    click.echo(f"textrnn interactive: type text and press Enter; commands: {' '.join(COMMANDS)}; "
               f"Ctrl-D ends", err=True)
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
        click.echo(HELP, err=True)
    elif name == "reset":
        session.reset()
        click.echo("(a fresh text)", err=True)
    elif name in SETTINGS:
        if value:
            _set(session, name, value)
        click.echo(_describe(session.settings), err=True)
    else:
        click.echo(f"error: unknown command /{name}; commands: {' '.join(COMMANDS)} (/help)", err=True)
    return True


def _set(session: Any, name: str, value: str) -> None:
    """Change one setting; a bad value is one ``error:`` line and no change."""
    field, parse, optional = SETTINGS[name]
    try:
        parsed = None if optional and value.lower() in ("off", "none") else parse(value)
    except ValueError:
        click.echo(f"error: /{name} got {value!r}; see /help", err=True)
        return
    try:
        session.configure(**{field: parsed})
    except TextRNNError as e:  # the option checks of `textrnn generate`, named as commands here
        click.echo(f"error: {str(e).replace('--', '/')}", err=True)


def _describe(settings: Any) -> str:
    """The settings on one line, as the commands name them."""
    return "  ".join(f"/{name} {_shown(getattr(settings, field))}" for name, (field, _, _) in SETTINGS.items())


def _shown(value: Any) -> str:
    """A setting's value as typed: ``off`` for None and False, ``on`` for True."""
    if value is None or value is False:
        return "off"
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
