"""How an option is declared (:func:`option`, a dataclass field with its help, defaults and checks),
and the checks and parsers the declarations share. The declarations themselves are in
:mod:`textrnn.config`."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Optional

from .errors import TextRNNError


def option(default: Any = None, help: str = "", *, classify: Any = dataclasses.MISSING,
           finetune: Any = dataclasses.MISSING, adapt: Any = dataclasses.MISSING, resumable: bool = False,
           choices: Optional[tuple[str, ...]] = None, only: Optional[str] = None, stop: bool = False,
           unlimited: Any = None, parse: Optional[Callable[[Any], Any]] = None, default_text: Optional[str] = None,
           short: Optional[str] = None, off: Optional[str] = None, metavar: Optional[str] = None,
           misuse: Optional[str] = None, fitted: bool = False) -> Any:
    """Declare an option as a dataclass field (its type is the field's annotation).

    ``default``: the language model's default; ``classify``: the classifier's, where it
    differs; ``finetune``: a language model's that starts from another (``--init-from``); ``adapt``:
    a classifier's that starts from another classifier (``--init-from``: a few hundred rows of the
    user's own, typically).
    ``resumable``: a resumed run may change it. ``choices``: the allowed values.
    ``only``: the one task (``lm`` / ``classify``) it is for; ``misuse`` replaces the error
    given when it is used for the other. ``fitted``: a new language model's value is
    chosen by the fit (:mod:`textrnn.training.recipe`) unless given or ``--no-fit``.
    ``stop``: a limit on the run's length; stop options take their defaults (``unlimited``
    for the language model, ``classify``) only when no stop option is given. ``parse``:
    turns (and checks) the text given on the command line. ``default_text``: how the help
    describes a default computed at run time.
    For the command line only: ``short`` (e.g. ``-o``), ``off`` (the name of a boolean's
    off switch: default ``no-<name>``, ``""`` for a plain flag), ``metavar``.
    """
    defaults = {task: value for task, value in (("classify", classify), ("finetune", finetune), ("adapt", adapt))
                if value is not dataclasses.MISSING}
    return dataclasses.field(default=default, metadata={
        "help": help, "defaults": defaults, "resumable": resumable, "choices": choices, "only": only,
        "stop": stop, "unlimited": unlimited, "parse": parse, "default_text": default_text, "short": short,
        "off": off, "metavar": metavar, "misuse": misuse, "fitted": fitted})


def options_of(cls: type) -> tuple[dataclasses.Field, ...]:
    """The fields of ``cls`` that are options (declared with :func:`option`), in order."""
    return tuple(f for f in dataclasses.fields(cls) if "help" in f.metadata)


def _one_of(choices: tuple[str, ...]) -> str:
    return " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)


def check_positive(name: str, value: float) -> None:
    if value is None or value <= 0:
        raise TextRNNError(f"--{name.replace('_', '-')} must be positive, got {value!r}")


def check_probability(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise TextRNNError(f"--{name.replace('_', '-')} must be in [0, 1), got {value!r}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TextRNNError(f"--{name.replace('_', '-')} must be {_one_of(choices)}, got {value!r}")


def check_choices(config: Any) -> None:
    for f in options_of(type(config)):
        if f.metadata["choices"]:
            check_choice(f.name, getattr(config, f.name), f.metadata["choices"])


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def parse_duration(text: str | float | int | None) -> Optional[float]:
    """Parse ``45s``, ``5m``, ``1h30m``, ``90`` (seconds) into seconds; None stays None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = text.strip().lower().replace(" ", "")
        try:
            seconds = float(s)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION_PART.finditer(s):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)]
                pos = m.end()
            if pos != len(s) or not s:
                raise TextRNNError(
                    f"--max-time: cannot parse {text!r}; use a duration like 45s, 5m or 1h30m"
                ) from None
    if seconds <= 0:
        raise TextRNNError(f"--max-time must be positive, got {text!r}")
    return seconds


class DictMixin:
    """Round-trip through plain dicts (``config.json``); unknown keys are ignored."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})
