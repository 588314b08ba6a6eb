"""textrnn.data.table_output: rows written as a table read back as the same rows (Python's csv module, and
textrnn's own reader)."""

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from textrnn.data.table_output import render_rows
from textrnn.data.tables import read_table

line_breaking_text = st.text(st.one_of(st.sampled_from(list('\r\n,"\t ;a')), st.characters(
    exclude_categories=("Cs",), exclude_characters="\x00")), max_size=40)  # (NUL: read_table refuses it)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(line_breaking_text, min_size=1, max_size=6), fmt=st.sampled_from(["csv", "tsv", "jsonl"]))
def test_rendered_rows_read_back_as_the_same_rows(texts, fmt):
    rows = [{"text": t, "label": "pos" if i % 2 else "neg"} for i, t in enumerate(texts)]
    out = render_rows(rows, ["text", "label"], fmt)
    if fmt == "tsv":  # no quoting in tsv: tabs and line ends become spaces
        rows = [{**r, "text": r["text"].replace("\r\n", " ").translate(str.maketrans("\t\r\n", "   "))} for r in rows]
    if fmt == "csv":
        assert list(csv.reader(io.StringIO(out, newline=""))) == [["text", "label"]] + [list(r.values()) for r in rows]
    assert read_table(out.encode(), format=fmt, name="out").rows == rows


def test_a_lone_carriage_return_keeps_its_row():
    out = render_rows([{"text": "line one\rline two", "label": 1}], ["text", "label"], "csv")
    assert list(csv.reader(io.StringIO(out, newline=""))) == [["text", "label"], ["line one\rline two", "1"]]
    assert read_table(out.encode(), name="out").rows == [{"text": "line one\rline two", "label": "1"}]
