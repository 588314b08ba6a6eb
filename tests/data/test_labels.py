"""Finding the text and label columns; label names and indices."""

from pathlib import Path

import pytest

from textrnn.data.labels import detect_label_column, detect_text_column, label_key, parse_labels
from textrnn.data.tables import Table, read_table
from textrnn.errors import TextRNNError


def write(tmp_path: Path, name: str, data: str) -> Path:
    p = tmp_path / name
    p.write_text(data)
    return p


# --- columns -------------------------------------------------------------------------


def table(columns: list[str], *rows: list) -> Table:
    return Table("t.csv", "csv", columns, [dict(zip(columns, r)) for r in rows], list(range(2, 2 + len(rows))))


def test_text_column_by_name_any_case():
    t = table(["id", "Reviews", "note"], ["1", "good", "x"])
    assert detect_text_column(t) == "Reviews"


def test_text_column_by_only_string_column():
    t = table(["id", "tweet", "score", "sentiment"],
              ["1", "loved it", "4.5", "positive"], ["2", "hated it", "1", "negative"], ["3", "", "", "neutral"])
    assert detect_text_column(t) == "tweet"  # 'sentiment' is named like a label, so not a candidate


def test_text_column_ambiguous_or_absent_lists_columns():
    with pytest.raises(TextRNNError, match=r"t\.csv: .*'title', 'body' all hold text.*--text-column"):
        detect_text_column(table(["title", "body"], ["a", "b"]))
    with pytest.raises(TextRNNError, match=r"no column holds text; the columns are 'a', 'b'.*--text-column"):
        detect_text_column(table(["a", "b"], ["1", "2.5"]))


def test_requested_columns():
    t = table(["body", "stars"], ["good", "5"], ["bad", "1"])
    assert detect_text_column(t, "body") == "body"
    assert detect_label_column(t, "stars") == "stars"
    with pytest.raises(TextRNNError, match=r"no column 'text' \(the columns are 'body', 'stars'\); pass --text-column"):
        detect_text_column(t, "text")
    expected = r"no column 'label' \(the columns are 'body', 'stars'\); pass --label-column"
    with pytest.raises(TextRNNError, match=expected):
        detect_label_column(t, "label", required=False)


def test_label_column_by_name_or_none():
    assert detect_label_column(table(["text", "Polarity"], ["a", "1"])) == "Polarity"
    t = table(["text", "stars"], ["a", "1"])
    assert detect_label_column(t, required=False) is None
    with pytest.raises(TextRNNError, match=r"no label column.*'text', 'stars'.*--label-column"):
        detect_label_column(t)


def test_empty_label_cell_names_the_line(tmp_path):
    t = read_table(write(tmp_path, "gap.csv", "text,label\ngood,1\nbad, \n"))
    with pytest.raises(TextRNNError, match=r"gap\.csv: line 3: empty label in column 'label'"):
        detect_label_column(t)


# --- labels --------------------------------------------------------------------------


def test_string_labels_sorted_alphabetically():
    names, idx = parse_labels(["positive", "negative", "neutral ", "positive"])
    assert names == ["negative", "neutral", "positive"]
    assert idx == [2, 0, 1, 2]


def test_integer_labels_sorted_numerically():
    assert parse_labels(["1", "10", " 2", "0", "-1"]) == ([-1, 0, 1, 2, 10], [2, 4, 3, 1, 0])
    assert parse_labels([1, 0, 1.0]) == ([0, 1], [1, 0, 1])
    assert parse_labels([1, "0"]) == ([0, 1], [1, 0])


def test_mixed_labels_are_strings():
    assert parse_labels(["1", "pos", 2]) == (["1", "2", "pos"], [0, 2, 1])
    assert parse_labels([True, False]) == (["false", "true"], [1, 0])


def test_bad_labels():
    with pytest.raises(TextRNNError, match="^d.csv: labels column 'y' has only one class 'pos'; .*at least two"):
        parse_labels(["pos", " pos"], column="y", source="d.csv")
    with pytest.raises(TextRNNError, match="only one class '1'"):
        parse_labels([1, "1"])
    with pytest.raises(TextRNNError, match="row 2 has the label 0.5; labels must be strings or integers"):
        parse_labels(["1", 0.5])
    with pytest.raises(TextRNNError, match="row 1 has no label"):
        parse_labels([None, "a"])
    with pytest.raises(TextRNNError, match="is empty"):
        parse_labels([])


def test_label_key_is_the_normalisation_of_parse_labels():
    assert [label_key(v) for v in (True, False, 1.0, "+1", " 0 ", "-2", 3, " pos ")] == \
        ["true", "false", 1, 1, 0, -2, 3, "pos"]
    assert [label_key(v) for v in (None, "", "  ", 0.5, [1])] == [None] * 5
    assert parse_labels(["+1", 0.0, True]) == (["0", "1", "true"], [1, 0, 2])
    with pytest.raises(TextRNNError, match="row 1 has no label"):
        parse_labels([" ", "a"])


def test_match_labels_by_name_or_alias():
    from textrnn.data.labels import match_labels

    names, aliases = ["negative", "positive"], {"0": "negative", "1": "positive"}
    assert match_labels([0, "1", 1.0, "+1", "positive", " negative ", None, "", "2", "neutral"], names, aliases) == \
        [0, 1, 1, 1, 1, 0, None, None, None, None]
    assert match_labels([0, "positive"], names) == [None, 1]  # no aliases: by name only
    # a name wins over another label's alias of the same form; an alias of no label is left out
    assert match_labels(["b", "x"], ["a", "b"], {"b": "a", "x": "nothing"}) == [1, None]
    assert match_labels([1, 0], [0, 1]) == [1, 0]  # a run's own int labels, as before
