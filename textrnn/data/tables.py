"""Tables of texts, with or without labels, for text classifiers: :func:`read_table` reads
them, :func:`render_rows` writes them (so that they read back as the same rows).

The format comes from ``format=`` or from the file's extension:

``csv`` (.csv)
    Comma-separated, read by :mod:`csv` with its default dialect: a field may be quoted,
    a quote inside a quoted field is doubled (``""``), and quoted fields may hold commas
    and newlines. ``\\n``, ``\\r\\n`` and ``\\r`` line ends all work. The first row is the header.
``tsv`` (.tsv, .tab)
    Tab-separated with no quoting at all: every row is one line and ``"`` is an ordinary
    character (the GLUE SST-2 files are like this). The first row is the header.
``jsonl`` (.jsonl, .ndjson)
    One JSON object per non-empty line. The columns are the union of the keys, in the
    order they are first seen; a row that lacks a key gets ``None`` there. Values are
    kept as JSON gives them (str, int, float, bool, None, list, dict).
``txt`` (.txt)
    One document per non-empty line, in a single column ``text``; no labels.

For csv and tsv, rows whose fields are all blank are skipped; header names are stripped
of surrounding spaces and must be non-empty and distinct; and every row must have exactly
as many fields as the header. A row with *fewer* fields is an error, not padded with
``""``: a short row almost always means a text broken across lines or a quote that is
never closed, and padding would silently train on an empty text or label. Values are
kept as strings, unstripped.

:func:`read_table` decodes the file whole first (:func:`decode_bytes`), so a wrong encoding
is reported with its byte offset and line; :func:`text_column_lines` (a table given as a
language-model corpus) streams it instead, with the same text and errors. Every mistake in
the input raises
:class:`~textrnn.errors.TextRNNError` with a one-line message naming the file (and the
line, where there is one) and what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..condition import check_no_markers
from ..errors import TextRNNError
from .corpus import binary_error, decode_error, decoded_blocks, lookup_codec, text_start
from .labels import detect_text_column, is_text_value, quoted_names, text_column_by_name

FORMATS = ("csv", "tsv", "jsonl", "txt")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}
TABLE_SUFFIXES = tuple(k for k, v in EXTENSIONS.items() if v != "txt")  # what counts as a table input


def decode_bytes(raw: bytes, name: str, encoding: str = "utf-8") -> str:
    """Decode ``raw`` read from ``name`` (a UTF-8 BOM dropped); the error names the byte
    offset and the fix."""
    codec = lookup_codec(encoding)
    start = len(codecs.BOM_UTF8) if codec == "utf-8" and raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = str(memoryview(raw)[start:], codec)
    except UnicodeDecodeError as e:
        if b"\x00" in raw[:8192]:
            raise binary_error(name) from None
        offset = start + e.start
        raise decode_error(name, codec, offset, raw.count(b"\n", 0, offset) + 1) from None
    if "\x00" in text[:8192]:
        raise binary_error(name)
    return text.removeprefix("\ufeff")


@dataclass
class Table:
    """A parsed table. ``lines[i]`` is the 1-based line where ``rows[i]`` starts."""

    path: str  # name for messages ("-" or "<stdin>" for stdin)
    format: str  # "csv" | "tsv" | "jsonl" | "txt"
    columns: list[str]  # in file order
    rows: list[dict[str, Any]]  # in file order; every row has every column
    lines: list[int]

    def values(self, column: str) -> list[Any]:
        """The values of one column, in row order."""
        return [row[column] for row in self.rows]


# --- reading -------------------------------------------------------------------------


def read_table(
    source: str | os.PathLike | bytes,
    *,
    format: str | None = None,
    encoding: str = "utf-8",
    name: str | None = None,
    option: str = "--format",
) -> Table:
    """Read a table from a path or from raw bytes (e.g. stdin's content).

    For bytes, ``name`` names the source in messages (default ``"<stdin>"``) and the
    format is ``format`` or else csv. For a path, the format is ``format`` or else the
    one its extension names; an unknown extension is an error suggesting ``option``
    (the command-line option that sets ``format``, named in messages).
    """
    fmt = _check_format(format, option)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<stdin>"
        raw, fmt = bytes(source), fmt or "csv"
    else:
        path = Path(source)
        name = name or str(path)
        raw = _read_bytes(path, name)
        fmt = fmt or _format_from_extension(path, name, option)
    text = decode_bytes(raw, name, encoding)
    if fmt == "txt":
        columns, rows, lines = _parse_txt(text)
    else:
        columns = []
        numbered = list(_rows(io.StringIO(text, newline=_NEWLINE[fmt]), name, fmt, columns))
        lines = [line for line, _ in numbered]
        rows = [row for _, row in numbered]
        if fmt == "jsonl":  # every row gets every column
            rows = [{c: row.get(c) for c in columns} for row in rows]
    if not rows:
        raise _no_rows(name, fmt, columns)
    return Table(name, fmt, columns, rows, lines)


def _check_format(format: str | None, option: str = "--format") -> str | None:
    if format is None:
        return None
    fmt = format.lower()
    if fmt not in FORMATS:
        raise TextRNNError(f"{option}: unknown table format {format!r}; use one of {', '.join(FORMATS)}")
    return fmt


def _read_bytes(path: Path, name: str) -> bytes:
    if not path.exists():
        raise TextRNNError(f"{name}: no such file; check the path")
    if path.is_dir():
        raise TextRNNError(f"{name}: is a directory; give a table file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise TextRNNError(f"{name}: cannot read ({e.strerror})") from None


def _format_from_extension(path: Path, name: str, option: str = "--format") -> str:
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        what = f"extension {suffix!r}" if suffix else "a name without an extension"
        raise TextRNNError(
            f"{name}: cannot tell the table format from {what}; pass {option} ({', '.join(FORMATS)})"
        )
    return EXTENSIONS[suffix]


def _no_rows(name: str, fmt: str, columns: list[str]) -> TextRNNError:
    if columns and fmt in ("csv", "tsv"):
        return TextRNNError(f"{name}: no rows, only a header; give at least one row under it")
    return TextRNNError(f"{name}: no rows (the file is empty); give a table with at least one row")


Parsed = tuple[list[str], list[dict[str, Any]], list[int]]
_NEWLINE = {"csv": "", "tsv": "", "jsonl": "\n"}  # where lines end (io's newline=): csv's \r, \r\n too


def _rows(lines: Iterable[str], name: str, fmt: str, columns: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a csv, tsv or jsonl text given line by line (line ends kept), each with
    the line it starts on. ``columns`` is filled in as they are found: the header's names,
    or the JSON objects' keys so far in the order first seen (a jsonl row has its own keys)."""
    if fmt == "jsonl":
        seen = set(columns)
        for number, line in enumerate(lines, 1):
            if line.strip():
                obj = _json_object(line.strip(), name, number)
                if new := [k for k in obj if k not in seen]:
                    columns.extend(new)
                    seen.update(new)
                yield number, obj
        return
    dialect: dict[str, Any] = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    for line, fields in _records(csv.reader(lines, **dialect), name, fmt):
        if all(not f.strip() for f in fields):  # blank rows are skipped
            continue
        if not columns:  # the first non-blank row is the header
            columns.extend(_header(fields, name, line))
            continue
        if len(fields) != len(columns):
            raise _width_error(name, fmt, line, len(fields), columns)
        yield line, dict(zip(columns, fields))


def _records(reader: Any, name: str, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, fields) for every row, blank ones included."""
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if str(e).startswith("field larger than field limit"):  # (csv tells it by its message only)
                raise TextRNNError(
                    f"{name}: line {line}: a field is longer than the csv module's limit of "
                    f"{csv.field_size_limit()} characters; call textrnn.configure_process() first, "
                    f"as the textrnn command does, or raise csv.field_size_limit()") from None
            hint = "check for a quote that is never closed" if fmt == "csv" else "check the row"
            raise TextRNNError(f"{name}: line {line}: cannot read the {fmt} row ({e}); {hint}") from None
        yield line, fields


def _header(fields: list[str], name: str, line: int) -> list[str]:
    names = [f.strip() for f in fields]
    for i, col in enumerate(names):
        if not col:
            raise TextRNNError(
                f"{name}: line {line}: header column {i + 1} has no name; "
                f"the first row must be a header naming every column"
            )
        if col in names[:i]:
            raise TextRNNError(
                f"{name}: line {line}: the header names column {col!r} twice; "
                f"the first row must be a header with distinct names"
            )
    return names


def _width_error(name: str, fmt: str, line: int, n: int, header: list[str]) -> TextRNNError:
    if n > len(header):
        fix = "quote fields that contain commas" if fmt == "csv" else "a text must not contain a tab"
    elif fmt == "csv":
        fix = "fill in the missing fields, or close a quote left open"
    else:
        fix = "fill in the missing fields (a text must not be broken across lines)"
    return TextRNNError(
        f"{name}: line {line}: {n} field{'s' if n != 1 else ''} but the header has {len(header)} "
        f"({quoted_names(header)}); {fix}"
    )


def _json_object(line: str, name: str, number: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise TextRNNError(
            f"{name}: line {number}: not valid JSON ({e.msg}, column {e.colno}); give one JSON object per line"
        ) from None
    except (ValueError, RecursionError) as e:  # too-long integers, too-deep nesting
        raise TextRNNError(f"{name}: line {number}: unreadable JSON ({e}); give one JSON object per line") from None
    if not isinstance(obj, dict):
        raise TextRNNError(
            f"{name}: line {number}: a JSON {type(obj).__name__}, not an object; "
            f'give one JSON object per line, e.g. {{"text": "...", "label": "..."}}'
        )
    return obj


def _parse_txt(text: str) -> Parsed:
    rows, lines = [], []
    for number, line in enumerate(text.split("\n"), 1):
        doc = line.removesuffix("\r")
        if doc.strip():
            rows.append({"text": doc})
            lines.append(number)
    return ["text"], rows, lines


# --- a text column, streamed --------------------------------------------------------


def text_column_lines(path: str | os.PathLike, *, encoding: str = "utf-8",
                      text_column: str | None = None) -> Iterator[str]:
    """The texts of the csv, tsv or jsonl table at ``path``, each followed by a newline
    (``None`` values left out): what a language-model corpus takes from a table.

    The same text, and the same errors, as :func:`read_table` then :func:`detect_text_column`,
    but the file is streamed a block at a time, never held whole: the column is found by
    name from the header (jsonl: from the keys as they come), or, when only the values can
    tell, after a first pass that counts them.
    """
    name, fmt, columns, rows = _streamed_rows(path, encoding)
    column, counts, n_rows, written = None, Counter(), 0, False
    for _, row in rows:
        n_rows += 1
        if column is None:
            column = text_column_by_name(columns, text_column)
            if column is None and fmt != "jsonl" and text_column is not None:  # (a header's names are all)
                detect_text_column(Table(name, fmt, columns, [], []), text_column)  # raises
        if column is None:
            counts.update(c for c, v in row.items() if is_text_value(v))
        elif (value := row.get(column)) is not None:
            yield f"{value}\n"
            written = True
    if not n_rows:
        raise _no_rows(name, fmt, columns)
    if column is None:  # no name told: the values do (or a --text-column the file lacks, an error)
        column = detect_text_column(Table(name, fmt, columns, [], []), text_column,
                                    mostly_text=lambda c: counts[c] * 2 > n_rows)
        for _, row in _streamed_rows(path, encoding)[3]:
            if (value := row.get(column)) is not None:
                yield f"{value}\n"
                written = True
    if not written:
        yield "\n"


def labelled_lines(path: str | os.PathLike, *, encoding: str = "utf-8", text_column: str | None = None,
                   label_column: str) -> Iterator[tuple[str, str]]:
    """(label, text + newline) of each row of the csv, tsv or jsonl table at ``path`` that has a
    text (``None`` texts are left out), streamed: what a conditioned language model's corpus
    takes from a table. The text column is found by name (``text_column``, else a usual name);
    a row without a label, or whose text holds a label marker (:mod:`textrnn.condition`), is an error."""
    name, fmt, columns, rows = _streamed_rows(path, encoding)
    n_rows = 0
    for line, row in rows:
        n_rows += 1
        column = text_column_by_name(columns, text_column)
        if column is None or (fmt != "jsonl" and label_column not in columns):
            what = f"no column {label_column!r} to condition on" if column else "no text column found by name"
            raise TextRNNError(f"{name}: {what} (columns: {quoted_names(columns)}); "
                               "name them with --text-column and --condition-column")
        text, label = row.get(column), row.get(label_column)
        if text is None:
            continue
        if label is None or not str(label).strip():
            raise TextRNNError(f"{name}, line {line}: no {label_column!r} value to condition on; "
                               "fill it in or drop the row")
        check_no_markers(str(text), f"{name}, line {line}")  # (a marker would switch the label in mid-row)
        yield str(label).strip(), f"{text}\n"
    if not n_rows:
        raise _no_rows(name, fmt, columns)


def _streamed_rows(path: str | os.PathLike, encoding: str) -> tuple[str, str, list[str], Iterator[tuple[int, dict]]]:
    """A table's name, format, columns (filled in as the rows are read: see :func:`_rows`) and rows, streamed."""
    path, columns = Path(path), []
    fmt = _format_from_extension(path, str(path))
    return str(path), fmt, columns, _rows(_file_lines(path, lookup_codec(encoding), _NEWLINE[fmt]), str(path), fmt,
                                          columns)


def _file_lines(path: Path, codec: str, newline: str) -> Iterator[str]:
    """The lines of the file at ``path`` (line ends kept), as ``io.StringIO(text,
    newline=newline)`` cuts its decoded text, read a block at a time; a BOM is dropped."""
    ends = _LINE_ENDS[newline]
    first, pending = True, []  # (pending: the start of a line that may go on)
    for text, _ in decoded_blocks(path, codec, text_start(path, codec)):
        if first and text:
            text, first = text.removeprefix("\ufeff"), False  # (a BOM in another codec, or a second one)
        if not ends.search(text) and not (pending and pending[-1].endswith("\r")):
            pending.append(text)  # (a line longer than a block)
            continue
        text, start = "".join(pending) + text, 0
        for end in ends.finditer(text):
            if end.group() == "\r" and end.end() == len(text):  # (maybe the first half of a \r\n)
                break
            yield text[start:end.end()]
            start = end.end()
        pending = [text[start:]] if start < len(text) else []
    if pending:
        yield "".join(pending)


_LINE_ENDS = {"": re.compile(r"\r\n?|\n"), "\n": re.compile(r"\n")}  # (io's newline="" and "\n")
