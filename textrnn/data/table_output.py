"""Writing rows as a table (csv, tsv or jsonl) that reads back the same: what ``classify`` and
``evaluate --per-line`` write. (Reading tables: :mod:`textrnn.data.tables`.)"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..errors import TextRNNError


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
