"""The options of ``textrnn train``, generated from their declarations in :mod:`textrnn.config`.

An option's name comes from its field's name (``embed_dropout`` -> ``--embed-dropout``),
its type from the annotation (a bool is a ``--x/--no-x`` switch, a ``Path`` a path), its
help and the defaults shown there from the declaration. On the command line every option
defaults to None, so a command can tell which were given and pass on only those; the
pipelines fill in the rest from the same declarations.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import click

from ..config import DataOptions, ModelConfig, RunOptions, TrainConfig
from ..declare import options_of

DECLARED = (RunOptions, DataOptions, ModelConfig, TrainConfig)
"""The classes whose declared options are the options of ``textrnn train``, in help order."""
TASK_NAMES = {"lm": "language model", "classify": "classifier"}
DEFAULT_NAMES = {"classify": "classify", "finetune": "fine-tuning (--init-from)",  # how the help names the defaults
                 "adapt": "from a classifier (--init-from)"}


def show(value: Any) -> str:
    """A default as the help shows it: ``512``, ``0.006``, ``on``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def flag_name(name: str) -> str:
    """``embed_dropout`` -> ``--embed-dropout``."""
    return "--" + name.replace("_", "-")


def help_text(f: dataclasses.Field) -> str:
    """The help of a declared option, with its choices and its real defaults, e.g.
    ``Hidden units per layer.  [default: 512; classify: 384]``."""
    m = f.metadata
    notes = [" | ".join(m["choices"])] if m["choices"] else []
    plain_flag = m["off"] == ""
    if m["only"]:  # one task's option: that task's default is the default
        defaults = {}
        lm_default = m["defaults"].get(m["only"], f.default)
    else:
        defaults = m["defaults"]
        lm_default = m["unlimited"] if m["stop"] else f.default
    if m["default_text"]:
        notes.append(f"default: {m['default_text']}")
    elif m["fitted"]:
        notes.append(f"default: fitted to the corpus and budget; {show(lm_default)} with --no-fit")
    elif lm_default is not None and not plain_flag:
        notes.append(f"default: {show(lm_default)}")
    notes += [f"{DEFAULT_NAMES[task]}: {show(value)}" for task, value in defaults.items()]
    if m["stop"] and (lm_default is not None or defaults):
        notes.append("when no limit is given")
    text = m["help"]
    if m["only"]:
        text = f"{TASK_NAMES[m['only']].capitalize()}: {text[:1].lower()}{text[1:]}"
    return text + (f"  [{'; '.join(notes)}]" if notes else "")


def _value_type(annotation: Any) -> Any:
    """``Optional[int]`` -> ``int``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation


_CLICK_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING, Path: click.Path()}  # paths come as str


def click_option(f: dataclasses.Field, annotation: Any) -> click.Option:
    """The click option of one declared field (default None: given or not)."""
    m = f.metadata
    kind = str if m["parse"] else _value_type(annotation)  # a parsed option is given as text ("5m")
    decls = [flag_name(f.name), *([m["short"]] if m["short"] else []), f.name]
    extra: dict[str, Any] = {"metavar": m["metavar"]} if m["metavar"] else {}
    if kind is bool and m["off"] == "":
        extra["is_flag"] = True
    elif kind is bool:
        decls[0] += "/--" + (m["off"] or "no-" + f.name.replace("_", "-"))
    else:
        extra["type"] = _CLICK_TYPES[kind]
    return click.Option(decls, default=None, help=help_text(f), **extra)


def train_params() -> list[click.Option]:
    """The options of ``textrnn train``, one per declared field."""
    params = []
    for cls in DECLARED:
        hints = typing.get_type_hints(cls)
        params += [click_option(f, hints[f.name]) for f in options_of(cls)]
    return params
