"""The normal form of a label value: one declaration, beneath both the run's config (its label
names and aliases) and the data stage (the labels in a table)."""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"[+-]?[0-9]{1,18}")  # int-looking label; longer digit strings stay strings


def label_key(value: Any) -> int | str | None:
    """The normal form of one label value, the one :func:`textrnn.data.labels.parse_labels` uses.

    JSON booleans become ``"true"``/``"false"``; ints, integral floats and int-looking
    strings (``"+1"``, ``" 0 "``) become ints; other strings are stripped. ``None`` for a
    value that is no label: ``None``, a blank string, or anything else (``0.5``, a list).
    To match a label against a classifier's label names, compare ``label_key(value)``
    with ``label_key(name)``: a model trained on mixed labels has string names like ``"1"``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        s = value.strip()
        return int(s) if _INT.fullmatch(s) else s
    return None
