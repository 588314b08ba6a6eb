"""The sampling options, declared once (no torch import: the command line builds its options from them).

:class:`SamplingOptions` declares every sampling option once: its type, default, help and
bounds. ``textrnn generate``'s options, ``--interactive``'s commands (``/temp``, ``/stop``, ...), the
server's request fields and the exported ``sample.py``'s flags (through :func:`declaration`,
written into an ONNX export's ``model.json``) all come from it, and :meth:`SamplingOptions.check`
is the one check: an option out of range is an :class:`OptionError` whose message names the
option as the front end in use names it (``--temp``, ``/temp``, ``temperature``).
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import typing
from typing import Any, Optional

from ..errors import TextRNNError

MAX_SEED = 2**53 - 1  # the largest integer a JavaScript number keeps exactly (the server's clients)
TEMPERATURES = (1e-3, 1e3)  # beyond them float32 logits overflow or vanish: --greedy is the limit


def _option(default: Any, help: str, *, flag: str, short: Optional[str] = None, alias: Optional[str] = None,
            command: bool = True, low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False,
            high_is_vocab: bool = False, unless: Optional[str] = None, hint: str = "", escapes: bool = False,
            metavar: Optional[str] = None) -> Any:
    """One sampling option (a dataclass field). ``flag``: the command line's (``--temp``; ``short`` and ``alias``
    too); ``command``: whether ``--interactive`` has it as ``/<flag>``; ``low`` / ``high`` (``low_open``:
    excluded; ``high_is_vocab``: the vocabulary size) bound a number, or each string's length for a list (a
    tuple default: repeatable); ``unless``: a boolean option under which the bounds are not checked; ``hint``:
    what the error adds; ``escapes``: text front ends read ``\\n``, ``\\t`` and ``\\\\`` in it."""
    return dataclasses.field(default=default, metadata={
        "help": help, "flag": flag, "short": short, "alias": alias, "command": command, "low": low, "high": high,
        "low_open": low_open, "high_is_vocab": high_is_vocab, "unless": unless, "hint": hint, "escapes": escapes,
        "metavar": metavar})


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    """How a language model's text is sampled (every front end's options come from these fields)."""

    length: int = _option(500, "Tokens to generate (per continuation, interactively).", flag="--length",
                          short="-n", low=0)
    temperature: float = _option(1.0, "Sampling temperature (lower is more conservative).", flag="--temp",
                                 alias="--temperature", low=TEMPERATURES[0], high=TEMPERATURES[1], unless="greedy",
                                 hint="; use {greedy} for argmax decoding")
    top_k: Optional[int] = _option(None, "Sample only among the k most likely tokens.", flag="--top-k", low=1,
                                   high_is_vocab=True)
    top_p: Optional[float] = _option(None, "Sample only within the smallest set of probability >= p.",
                                     flag="--top-p", low=0, high=1, low_open=True)
    greedy: bool = _option(False, "Always take the most likely token.", flag="--greedy")
    stop: tuple[str, ...] = _option((), "End the text at the first occurrence of this string, which is not "
                                        "written (repeatable; \\n is a newline).", flag="--stop", low=1,
                                    escapes=True, metavar="STR")
    ban: tuple[str, ...] = _option((), "Never write this word: a token that would complete it is never drawn "
                                       "(repeatable; a character model bans it as characters).", flag="--ban",
                                   low=1, escapes=True, metavar="WORD")
    num_samples: int = _option(1, "Samples to draw (each with its own seed: --seed + its index).",
                               flag="--num-samples", command=False, low=1)
    seed: Optional[int] = _option(None, "Random seed (same seed, options and model: the same text).", flag="--seed",
                                  command=False, low=0, high=MAX_SEED)

    @staticmethod
    def fields() -> tuple[dataclasses.Field, ...]:
        """The options (a subclass's own fields, such as a request's prompt, are not options)."""
        return dataclasses.fields(SamplingOptions)

    def replace(self, **changes: Any) -> "SamplingOptions":
        """A copy with ``changes`` (lists become tuples), not yet checked."""
        return dataclasses.replace(self, **{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})

    def check(self, vocab_size: Optional[int] = None) -> "SamplingOptions":
        """Raise an :class:`OptionError` for the first option out of its bounds (``top_k`` against
        ``vocab_size`` when given); returns itself."""
        for f in self.fields():
            problem = bound_problem(f, getattr(self, f.name), self, vocab_size)
            if problem is not None:
                raise OptionError(f.name, problem)
        return self

    def settings(self) -> dict[str, Any]:
        """What a record of a sample repeats about how it was drawn (not the seed nor the count)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in self.fields()
                if f.name not in ("num_samples", "seed")}


def bound_problem(f: dataclasses.Field, value: Any, options: Any, vocab_size: Optional[int]) -> Optional[str]:
    """The message template of ``value`` out of ``f``'s bounds (``{name}`` is the option, other ``{x}`` other
    options), or None."""
    m = f.metadata
    if value is None or (m["unless"] and getattr(options, m["unless"])):
        return None
    high = vocab_size if m["high_is_vocab"] else m["high"]
    for v in (value if isinstance(value, tuple) else (value,)):
        n = len(v) if isinstance(v, str) else v
        if (m["low"] is not None and (n <= m["low"] if m["low_open"] else n < m["low"])) or \
                (high is not None and n > high) or n != n:  # (NaN)
            return bound_text(f, high).replace("{value}", repr(v) if isinstance(v, str) else str(v))
    return None


def bound_text(f: dataclasses.Field, high: Optional[float] = None) -> str:
    """The one error text of an option out of its bounds, with ``{name}`` and ``{value}`` to fill."""
    m = f.metadata
    low, high = _shown(m["low"]), _shown(high)
    if repeatable(f):
        return "{name} must not be empty" + m["hint"]
    if m["low_open"]:
        rule = f"in ({low}, {high}]"
    elif high is not None and m["high_is_vocab"]:
        rule = f"from {low} to the vocabulary size {high}"
    elif high is not None:
        rule = f"from {low} to {high}"
    else:
        rule = f">= {low}"
    return "{name} must be " + rule + ", got {value}" + m["hint"]


def _shown(bound: Optional[float]) -> Optional[str]:
    return None if bound is None else str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def value_type(f: dataclasses.Field) -> type:
    """An option's value type: int, float, bool or str (a repeatable option's items are str)."""
    return _value_types()[f.name]


@functools.cache
def _value_types() -> dict[str, type]:
    """Each option's value type, read from the annotations once (reading them costs a millisecond: the
    server parses every request's fields with them)."""
    types = {}
    for name, hint in typing.get_type_hints(SamplingOptions).items():
        args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
        types[name] = args[0] if args else hint
    return types


def repeatable(f: dataclasses.Field) -> bool:
    """Whether an option takes a list of values (given once per value on a command line)."""
    return isinstance(f.default, tuple)


def option_name(name: str, front_end: str = "command line") -> str:
    """How ``front_end`` names the option ``name``: ``--temp``, ``/temp``, ``temperature``."""
    f = {f.name: f for f in SamplingOptions.fields()}[name]
    if front_end == "server":
        return '"greedy": true' if name == "greedy" else name
    if front_end == "interactive" and f.metadata["command"]:
        return "/" + f.metadata["flag"][2:]
    return f.metadata["flag"]


class OptionError(TextRNNError):
    """A sampling option out of range: ``field`` (a :class:`SamplingOptions` field) and the message template;
    ``str()`` names options as the command line does, :meth:`message` as another front end does."""

    def __init__(self, field: str, template: str):
        self.field, self.template = field, template
        super().__init__(self.message())

    def message(self, front_end: str = "command line") -> str:
        names = {f.name: option_name(f.name, front_end) for f in SamplingOptions.fields()}
        return self.template.replace("{name}", names[self.field]).format(**names)


def unescape(text: str) -> str:
    """``\\n``, ``\\t``, ``\\\\`` (and other Python string escapes) in text typed on a command line."""
    return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape") if "\\" in text else text


def declaration(vocab_size: int) -> list[dict[str, Any]]:
    """The options as plain data, for a sampler that cannot import textrnn (an ONNX export's ``sample.py``):
    name, flag, type, default, help, whether repeatable, and the error text of each bound."""
    out = []
    for f in SamplingOptions.fields():
        m = f.metadata
        high = vocab_size if m["high_is_vocab"] else m["high"]
        out.append({"name": f.name, "flag": m["flag"], "short": m["short"], "alias": m["alias"],
                    "type": value_type(f).__name__,
                    "default": list(f.default) if repeatable(f) else f.default,
                    "repeatable": repeatable(f), "help": m["help"], "low": m["low"], "high": high,
                    "low_open": m["low_open"], "unless": m["unless"], "escapes": m["escapes"],
                    "error": None if m["low"] is None and high is None else bound_text(f, high)})
    return out


def given_options(values: dict[str, Any]) -> dict[str, Any]:
    """The options a text front end was given (``values``: name -> value, None or empty when not given), with
    the escapes of text options read (``\\n``: a newline), checked as far as they can be without the model
    (:meth:`SamplingOptions.check`); returns the given ones, to pass on."""
    fields = {f.name: f for f in SamplingOptions.fields()}
    given = {}
    for name, value in values.items():
        if value is None or value == () or value is False:
            continue
        if fields[name].metadata["escapes"]:
            value = tuple(unescape(v) for v in value)
        given[name] = value
    SamplingOptions().replace(**given).check()
    return given
