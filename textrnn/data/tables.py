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

The file is decoded whole first (:func:`decode_bytes`), so a wrong encoding
is reported with its byte offset and line. Every mistake in the input raises
:class:`~textrnn.errors.TextRNNError` with a one-line message naming the file (and the
line, where there is one) and what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import TextRNNError
from .corpus import binary_error, decode_error, lookup_codec
from .labels import quoted_names
from .labels import detect_label_column, detect_text_column, label_key  # noqa: F401 (textrnn.cli imports these)

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
    if fmt == "jsonl":
        columns, rows, lines = _parse_jsonl(text, name)
    elif fmt == "txt":
        columns, rows, lines = _parse_txt(text)
    else:
        columns, rows, lines = _parse_delimited(text, name, fmt)
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


def _parse_delimited(text: str, name: str, fmt: str) -> Parsed:
    """csv or tsv: the first non-blank row is the header; blank rows are skipped."""
    dialect: dict[str, Any] = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    reader = csv.reader(io.StringIO(text, newline=""), **dialect)
    header: list[str] | None = None
    rows, lines = [], []
    for line, fields in _records(reader, name, fmt):
        if all(not f.strip() for f in fields):
            continue
        if header is None:
            header = _header(fields, name, line)
            continue
        if len(fields) != len(header):
            raise _width_error(name, fmt, line, len(fields), header)
        rows.append(dict(zip(header, fields)))
        lines.append(line)
    return header or [], rows, lines


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


def _parse_jsonl(text: str, name: str) -> Parsed:
    seen: dict[str, None] = {}  # ordered set of keys
    objects, lines = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            obj = _json_object(line.strip(), name, number)
            seen.update(dict.fromkeys(obj))
            objects.append(obj)
            lines.append(number)
    columns = list(seen)
    return columns, [{c: obj.get(c) for c in columns} for obj in objects], lines


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


# --- writing -------------------------------------------------------------------------


def render_rows(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> str:
    """``rows`` (their ``columns``, in order) as a table in ``fmt`` that reads back as the
    same rows, with the same texts, through :func:`read_table` and through :mod:`csv`.

    ``csv``: the csv module's default (Excel) dialect: rows end with ``\\r\\n``, and a field
    holding a comma, a quote, ``\\r`` or ``\\n`` is quoted, so a text with a lone carriage
    return stays one field of one row. ``None`` is an empty field.
    ``tsv``: no quoting, as :func:`read_table` reads tsv: a field cannot hold a tab or a line
    end, so each tab, ``\\r``, ``\\n`` and ``\\r\\n`` in a value becomes one space.
    ``jsonl``: one JSON object per line (non-ASCII characters as they are).
    """
    buf = io.StringIO()
    if fmt == "jsonl":
        for r in rows:
            buf.write(json.dumps({c: r.get(c) for c in columns}, ensure_ascii=False) + "\n")
    elif fmt == "tsv":
        for values in [columns] + [[r.get(c) for c in columns] for r in rows]:
            buf.write("\t".join(_tsv_field(v) for v in values) + "\n")
    elif fmt == "csv":
        writer = csv.writer(buf, lineterminator="\r\n")  # (csv quotes fields with the terminator's characters)
        writer.writerow(columns)
        writer.writerows([r.get(c) for c in columns] for r in rows)
    else:
        raise TextRNNError(f"--format: cannot write a {fmt!r} table; use csv, tsv or jsonl")
    return buf.getvalue()


def _tsv_field(value: Any) -> str:
    s = "" if value is None else str(value)
    return s.replace("\r\n", " ").translate(_TSV_SPACES)


_TSV_SPACES = str.maketrans("\t\r\n", "   ")
