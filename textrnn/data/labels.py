"""Which column of a table holds the texts and which the labels; label names and indices.

Columns are found by name (text, sentence, review, ...; label, sentiment, class, ...) or,
for the texts, by content. Every mistake raises :class:`~textrnn.errors.TextRNNError`
with a one-line message naming the file and the option that fixes it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from ..errors import TextRNNError
from ..labelkey import label_key


class Table(Protocol):
    """What the column checks read of a table (:class:`textrnn.data.tables.Table` has it; this module
    does not import that one, which imports this)."""

    path: str
    format: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]

    def values(self, column: str) -> list[Any]: ...


TEXT_NAMES = ("text", "texts", "sentence", "sentences", "review", "reviews",
              "content", "contents", "comment", "comments")
LABEL_NAMES = ("label", "labels", "sentiment", "polarity", "class", "target")


# --- columns -------------------------------------------------------------------------


def detect_text_column(table: Table, requested: str | None = None,
                       mostly_text: Callable[[str], bool] | None = None) -> str:
    """The column holding the texts.

    ``requested`` if given (it must exist); else the first column named like a text
    (text, sentence, review, content, comment, or their plurals; any case); else the one
    column, not named like a label, whose values are mostly non-numeric strings
    (``mostly_text(column)`` tells, by default from ``table.rows``; a reader that streams
    the rows counts :func:`is_text_value` itself).
    """
    if requested is not None:
        return _require_column(table, requested, "--text-column")
    named = text_column_by_name(table.columns)
    if named is not None:
        return named
    mostly_text = mostly_text or (lambda column: _mostly_text(table, column))
    texty = [c for c in table.columns if c.strip().lower() not in LABEL_NAMES and mostly_text(c)]
    if len(texty) == 1:
        return texty[0]
    why = f"columns {quoted_names(texty)} all hold text" if texty else "no column holds text"
    raise TextRNNError(
        f"{table.path}: cannot tell which column is the text ({why}; the columns are "
        f"{quoted_names(table.columns)}{_format_hint(table)}); pass --text-column NAME"
    )


def detect_label_column(table: Table, requested: str | None = None, *, required: bool = True) -> str | None:
    """The column holding the labels.

    ``requested`` if given (it must exist); else the first column named label(s),
    sentiment, polarity, class or target (any case); else ``None`` if not ``required``.
    When ``required`` (training), the column must have a label in every row; when not
    (classifying), blank labels are allowed: those rows are just not scored.
    """
    if requested is not None:
        column = _require_column(table, requested, "--label-column")
    else:
        column = _first_named(table.columns, LABEL_NAMES)
        if column is None:
            if not required:
                return None
            raise _no_label_column(table)
    if not required:
        return column
    for row, line in zip(table.rows, table.lines):
        value = row[column]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise TextRNNError(
                f"{table.path}: line {line}: empty label in column {column!r}; "
                f"give every row a label or remove the row"
            )
    return column


def _no_label_column(table: Table) -> TextRNNError:
    if table.format == "txt":
        return TextRNNError(
            f"{table.path}: a txt file holds one text per line and no labels; "
            f"give a csv, tsv or jsonl table with a label column"
        )
    return TextRNNError(
        f"{table.path}: no label column (none is named {', '.join(LABEL_NAMES)}; the columns are "
        f"{quoted_names(table.columns)}{_format_hint(table)}); pass --label-column NAME"
    )


def _require_column(table: Table, requested: str, option: str) -> str:
    if requested not in table.columns:
        raise TextRNNError(
            f"{table.path}: no column {requested!r} (the columns are {quoted_names(table.columns)}"
            f"{_format_hint(table)}); pass {option} with one of them"
        )
    return requested


def _first_named(columns: list[str], names: tuple[str, ...]) -> str | None:
    return next((c for c in columns if c.strip().lower() in names), None)


def text_column_by_name(columns: list[str], requested: str | None = None) -> str | None:
    """The text column if the names tell (as :func:`detect_text_column` decides): ``requested``
    if ``columns`` has it, else the first column named like a text; otherwise ``None``."""
    if requested is not None:
        return requested if requested in columns else None
    return _first_named(columns, TEXT_NAMES)


def is_text_value(value: Any) -> bool:
    """A non-blank string that is not a number (what a text column mostly holds)."""
    return isinstance(value, str) and value.strip() != "" and not _is_number(value)


def _mostly_text(table: Table, column: str) -> bool:
    """More than half the rows hold a text value."""
    return sum(map(is_text_value, table.values(column))) * 2 > len(table.rows)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def quoted_names(columns: list[str]) -> str:
    """'a', 'b' (for messages)."""
    return ", ".join(repr(c) for c in columns) if columns else "(none)"


def _format_hint(table: Table) -> str:
    """A single csv/tsv column whose name holds the other separator: wrong --format."""
    if len(table.columns) != 1 or table.format not in ("csv", "tsv"):
        return ""
    other, sep = ("tsv", "\t") if table.format == "csv" else ("csv", ",")
    if sep not in table.columns[0]:
        return ""
    return f"; read as {table.format}, is it {other}? if so pass --format {other}"


# --- labels --------------------------------------------------------------------------


def parse_labels(values: list, *, column: str = "label", source: str | None = None) -> tuple[list, list[int]]:
    """Label names in a stable order, and each value's index into them.

    If every value is an int (or an integral float, or a string like ``"0"``, ``" 1 "``,
    ``"-1"``), the names are ints sorted numerically; otherwise they are strings
    (stripped; ints written in decimal, JSON booleans as ``"true"``/``"false"``) sorted
    alphabetically. ``column`` and ``source`` only name things in error messages.
    """
    prefix = f"{source}: " if source else ""
    keys = [_label_key(v, i, column, prefix) for i, v in enumerate(values)]
    if not all(isinstance(k, int) for k in keys):
        keys = [str(k) for k in keys]
    names = sorted(set(keys))
    if not names:
        raise TextRNNError(f"{prefix}labels column {column!r} is empty; a classifier needs labelled rows")
    if len(names) == 1:
        raise TextRNNError(
            f"{prefix}labels column {column!r} has only one class {str(names[0])!r}; "
            f"a classifier needs at least two"
        )
    index = {name: i for i, name in enumerate(names)}
    return names, [index[k] for k in keys]


def label_lookup(names: Sequence[Any], aliases: Optional[Mapping[str, Any]] = None) -> dict[int | str, int]:
    """Each label's index by the normal form (:func:`label_key`) of its name and of each alias
    (``aliases``: an alias -> the name it stands for, as a run's ``label_aliases``). A name wins
    over another label's alias of the same form; an alias of no name is left out."""
    index = {label_key(n): i for i, n in enumerate(names)}
    named = {**index}
    for alias, name in (aliases or {}).items():
        key = label_key(alias)
        if key is not None and key not in named and label_key(name) in named:
            index[key] = named[label_key(name)]
    return index


def match_labels(values: Sequence[Any], names: Sequence[Any],
                 aliases: Optional[Mapping[str, Any]] = None) -> list[Optional[int]]:
    """Each of ``values``' index into a model's label ``names``, matched by name or by alias (a raw
    value the label had in its training file: the shipped sst2's ``0`` is ``negative``); compared in
    normal form (``1``, ``1.0``, ``"+1"`` are the same). None for a value that is no label (blank)
    or that matches none."""
    index = label_lookup(names, aliases)
    return [index.get(key) if (key := label_key(v)) is not None else None for v in values]


def _label_key(value: Any, i: int, column: str, prefix: str) -> int | str:
    key = label_key(value)
    if key is not None:
        return key
    if value is None or isinstance(value, str):
        raise TextRNNError(f"{prefix}labels column {column!r}: row {i + 1} has no label; give every row a label")
    raise TextRNNError(
        f"{prefix}labels column {column!r}: row {i + 1} has the label {value!r:.40}; "
        f"labels must be strings or integers"
    )
