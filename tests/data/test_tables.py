import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textrnn.errors import TextRNNError
from textrnn.data.labels import detect_label_column, detect_text_column, parse_labels

from textrnn.data import corpus
from textrnn.data.table_output import render_rows
from textrnn.data.tables import read_table, text_column_lines


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


# --- csv -----------------------------------------------------------------------------


def test_csv_quotes_commas_and_embedded_newlines(tmp_path):
    p = write(tmp_path, "r.csv", 'text,label\n"Hello, ""world""",pos\n"two\nlines",neg\nplain,pos\n')
    t = read_table(p)
    assert (t.format, t.columns, t.path) == ("csv", ["text", "label"], str(p))
    assert t.values("text") == ['Hello, "world"', "two\nlines", "plain"]
    assert t.values("label") == ["pos", "neg", "pos"]
    assert t.lines == [2, 3, 5]  # the quoted newline makes row 2 two lines long


def test_bom_windows_line_ends_and_blank_rows(tmp_path):
    raw = b"\xef\xbb\xbftext,label\r\ngood film,1\r\n\r\n,\r\n  ,  \r\nbad film,0\r\n"
    t = read_table(write(tmp_path, "w.csv", raw))
    assert t.columns == ["text", "label"]  # no BOM glued to the first name
    assert t.rows == [{"text": "good film", "label": "1"}, {"text": "bad film", "label": "0"}]
    assert t.lines == [2, 6]


def test_too_many_fields_names_the_line(tmp_path):
    p = write(tmp_path, "x.csv", "text,label\nfine,1\nnot, fine,0\n")
    with pytest.raises(TextRNNError, match=r"x\.csv: line 3: 3 fields but the header has 2.*quote"):
        read_table(p)


def test_too_few_fields_is_an_error_not_padding(tmp_path):
    p = write(tmp_path, "x.tsv", "sentence\tlabel\na text broken\nacross lines\t1\n")
    with pytest.raises(TextRNNError, match=r"x\.tsv: line 2: 1 field but the header has 2"):
        read_table(p)


@pytest.mark.parametrize("header, problem", [("text,,label", "has no name"), ("text,label,text", "twice")])
def test_bad_header(tmp_path, header, problem):
    with pytest.raises(TextRNNError, match=f"h.csv: line 1: .*{problem}"):
        read_table(write(tmp_path, "h.csv", header + "\na,b,c\n"))


@pytest.mark.parametrize("content", ["", "\n\n", "text,label\n", "text,label\n,\n"])
def test_no_rows(tmp_path, content):
    with pytest.raises(TextRNNError, match=r"e\.csv: no rows"):
        read_table(write(tmp_path, "e.csv", content))


# --- tsv -----------------------------------------------------------------------------


def test_tsv_has_no_quoting(tmp_path):
    p = write(tmp_path, "sst.tsv", 'sentence\tlabel\na "quoted" word\t1\nit \'s "fine\t0\n')
    t = read_table(p)
    assert t.format == "tsv"
    assert t.rows == [{"sentence": 'a "quoted" word', "label": "1"}, {"sentence": "it 's \"fine", "label": "0"}]
    assert t.lines == [2, 3]
    assert (detect_text_column(t), detect_label_column(t)) == ("sentence", "label")


def test_tsv_with_label_first(tmp_path):
    t = read_table(write(tmp_path, "d.tab", "label\tcontent\r\nneg\tdull\r\npos\tgreat\r\n"))
    assert (t.format, t.columns) == ("tsv", ["label", "content"])
    assert (detect_text_column(t), detect_label_column(t)) == ("content", "label")
    assert t.values("content") == ["dull", "great"]


def test_tsv_read_as_csv_hints_at_format(tmp_path):
    t = read_table(write(tmp_path, "d.csv", "sentence\tlabel\ngood\t1\n"))
    with pytest.raises(TextRNNError, match="--format tsv"):
        detect_label_column(t)


# --- jsonl and txt -------------------------------------------------------------------


def test_jsonl_string_and_int_labels(tmp_path):
    p = write(tmp_path, "d.ndjson", '{"text": "good", "label": 1}\n\n{"label": 0, "text": "bad", "id": 7}\n')
    t = read_table(p)
    assert (t.format, t.columns, t.lines) == ("jsonl", ["text", "label", "id"], [1, 3])
    assert t.rows[0] == {"text": "good", "label": 1, "id": None}
    assert parse_labels(t.values(detect_label_column(t))) == ([0, 1], [1, 0])

    p = write(tmp_path, "s.jsonl",
              '{"review": "meh", "sentiment": "neutral"}\n{"review": "yay", "sentiment": "positive"}\n')
    t = read_table(p)
    assert (detect_text_column(t), detect_label_column(t)) == ("review", "sentiment")
    assert parse_labels(t.values("sentiment")) == (["neutral", "positive"], [0, 1])


@pytest.mark.parametrize("bad, what", [("[1, 2]", "JSON list, not an object"), ("{oops", "not valid JSON")])
def test_bad_jsonl_line_names_the_line(tmp_path, bad, what):
    p = write(tmp_path, "b.jsonl", '{"text": "ok"}\n\n' + bad + "\n")
    with pytest.raises(TextRNNError, match=rf"b\.jsonl: line 3: .*{what}"):
        read_table(p)


def test_txt_one_document_per_line(tmp_path):
    t = read_table(write(tmp_path, "docs.txt", "first doc\r\n\n   \nsecond, with \"quotes\"\n"))
    assert (t.format, t.columns, t.lines) == ("txt", ["text"], [1, 4])
    assert t.values("text") == ["first doc", 'second, with "quotes"']
    assert detect_text_column(t) == "text"
    assert detect_label_column(t, required=False) is None
    with pytest.raises(TextRNNError, match="no labels"):
        detect_label_column(t)


# --- sources, formats, encodings -----------------------------------------------------


def test_bytes_source_defaults_to_csv_and_uses_name():
    t = read_table(b"text,label\nhi,1\n", name="<stdin>")
    assert (t.path, t.format, t.rows) == ("<stdin>", "csv", [{"text": "hi", "label": "1"}])
    t = read_table(b"text\tlabel\nhi\t1\n", format="TSV", name="-")
    assert (t.path, t.format, t.columns) == ("-", "tsv", ["text", "label"])
    with pytest.raises(TextRNNError, match="^-: line 2: 3 fields"):
        read_table(b"text,label\na,b,c\n", name="-")


def test_format_errors(tmp_path):
    with pytest.raises(TextRNNError, match=r"d\.dat: cannot tell the table format.*--format"):
        read_table(write(tmp_path, "d.dat", "text\nhi\n"))
    assert read_table(write(tmp_path, "d.dat", "text\nhi\n"), format="csv").values("text") == ["hi"]
    with pytest.raises(TextRNNError, match="--format: unknown table format 'xlsx'"):
        read_table(b"", format="xlsx")
    with pytest.raises(TextRNNError, match="no such file"):
        read_table(tmp_path / "missing.csv")


def test_non_utf8_names_file_and_line_and_encoding_fixes_it(tmp_path):
    p = write(tmp_path, "l1.csv", b"text,label\ngood,1\ncaf\xe9 noir,0\n")
    with pytest.raises(TextRNNError, match=r"l1\.csv: not valid utf-8 at byte 21 \(line 3\).*--encoding"):
        read_table(p)
    assert read_table(p, encoding="latin-1").values("text") == ["good", "café noir"]


# --- robustness ----------------------------------------------------------------------

table_bytes = st.one_of(
    st.binary(),
    st.text(alphabet=',"\t\n\r :{}[]ab1é\ufeff').map(str.encode),
)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "txt"])
@settings(max_examples=200, deadline=None)
@given(raw=table_bytes)
def test_any_bytes_give_a_table_or_a_user_error(fmt, raw):
    try:
        t = read_table(raw, format=fmt, name="fuzz")
    except TextRNNError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert t.rows and len(t.rows) == len(t.lines)
    assert t.lines == sorted(set(t.lines)) and t.lines[0] >= 1
    assert all(list(row) == t.columns for row in t.rows)
    for detect in (detect_text_column, lambda t: detect_label_column(t, required=False)):
        try:
            detect(t)
        except TextRNNError:
            pass


def test_shipped_sst2_files_load_to_exact_row_counts():
    """The SST-2 TSVs (no quoting, `"` inside sentences, different headers) load exactly."""
    root = Path(__file__).resolve().parents[2] / "corpora" / "sst2"
    counts = {}
    for split in ("train", "dev", "test"):
        table = read_table(root / f"{split}.tsv")
        counts[split] = len(table.rows)
        assert detect_label_column(table) == "label"
    assert counts == {"train": 67349, "dev": 872, "test": 1821}
    assert detect_text_column(read_table(root / "dev.tsv")) == "content"


@pytest.fixture
def csv_field_limit():
    """Sets the csv module's field limit (process-wide) for one test, and restores it."""
    saved = csv.field_size_limit()
    yield csv.field_size_limit
    csv.field_size_limit(saved)


@pytest.mark.parametrize("ext,sep", [("csv", ","), ("tsv", "\t")])
def test_fields_over_128_kib(tmp_path, ext, sep, csv_field_limit):
    csv_field_limit(2**31 - 1)  # as textrnn.configure_process() (the textrnn command) does
    long = "word " * 60_000  # 300 KB
    p = tmp_path / f"long.{ext}"
    p.write_text(f"text{sep}label\n{long}{sep}1\nshort{sep}0\n")
    assert read_table(p).values("text") == [long, "short"]


# --- a text column, streamed --------------------------------------------------------


def _outcome(get):
    try:
        return get()
    except TextRNNError as e:
        return f"error: {e}"


def _whole_column_text(path, **options):
    """The text a corpus took from a table before it was streamed: read whole, then joined."""
    table = read_table(path)
    column = detect_text_column(table, options.get("text_column"))
    return "\n".join(str(v) for v in table.values(column) if v is not None) + "\n"


cell = st.one_of(st.none(), st.integers(-5, 5), st.text(alphabet=' ,"\t\r\nab1é\ufeff', max_size=8))
tables = st.builds(
    lambda names, cells, fmt: (render_rows([dict(zip(names, row)) for row in cells], names, fmt), fmt),
    st.lists(st.sampled_from(["text", "review", "id", "label", "body", "score"]), min_size=1, max_size=3,
             unique=True),
    st.lists(st.lists(cell, min_size=3, max_size=3), max_size=5), st.sampled_from(["csv", "jsonl"]))
junk = st.tuples(st.text(alphabet=',"\t\n\r :{}[]ab1é\ufeff'), st.sampled_from(["csv", "tsv", "jsonl"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.one_of(tables, junk), chunk=st.integers(1, 9))
def test_a_streamed_text_column_is_that_of_the_whole_table(tmp_path, monkeypatch, table, chunk):
    text, fmt = table
    p = write(tmp_path, f"t.{fmt}", text)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", chunk)  # blocks end inside lines, \r\n pairs and characters
    streamed = _outcome(lambda: "".join(text_column_lines(p)))
    assert streamed == _outcome(lambda: _whole_column_text(p))


def test_a_streamed_column_keeps_quotes_and_multiline_fields(tmp_path, monkeypatch):
    p = write(tmp_path, "r.csv", 'id,review,label\r\n1,"say ""hi"",\r\nthen\rgo",pos\r\n2,,neg\r\n3,"a\nb",pos\r\n')
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 4)
    assert "".join(text_column_lines(p)) == _whole_column_text(p) == 'say "hi",\r\nthen\rgo\n\na\nb\n'
    late = write(tmp_path, "late.jsonl", '{"id": 1}\n{"id": 2, "body": "x"}\n{"text": "t", "body": "y"}\n')
    assert "".join(text_column_lines(late)) == _whole_column_text(late) == "t\n"  # text is a text-like name
    for requested in ("body", "nope"):
        assert _outcome(lambda: "".join(text_column_lines(late, text_column=requested))) == \
            _outcome(lambda: _whole_column_text(late, text_column=requested))


# --- writing -------------------------------------------------------------------------

@pytest.mark.parametrize("ext,sep", [("csv", ","), ("tsv", "\t")])
def test_a_field_over_the_csv_limit_names_the_line_and_the_fix(tmp_path, ext, sep, csv_field_limit):
    csv_field_limit(1000)
    p = write(tmp_path, f"long.{ext}", f"text{sep}label\nshort{sep}0\n{'word ' * 300}{sep}1\n")
    fix = r"call textrnn\.configure_process\(\) first"
    with pytest.raises(TextRNNError, match=rf"long\.{ext}: line 3: .*limit of 1000 characters; {fix}"):
        read_table(p)
    with pytest.raises(TextRNNError, match=rf"long\.{ext}: line 3: .*limit of 1000 characters; {fix}"):
        "".join(text_column_lines(p))  # (a table given as a corpus)
