"""textrnn evaluate end to end: the table, --format json, --per-line rows, one-line errors."""

import csv
import io
import json

from conftest import FIXTURES, run_cli as run


def test_json_summary_parses(lm_run):
    res = run(["evaluate", "-c", str(lm_run), str(FIXTURES / "tiny.txt"), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["checkpoint"] == str(lm_run)
    (found,) = doc["files"]
    assert found["file"] == str(FIXTURES / "tiny.txt") and found["tokens"] > 1000
    assert {"loss", "perplexity", "bits_per_char", "word_perplexity", "unknown_share", "seconds"} <= set(found)


def test_table_names_the_file(lm_run):
    res = run(["evaluate", "-c", str(lm_run), str(FIXTURES / "tiny.txt")])
    assert res.exit_code == 0, res.output
    assert str(FIXTURES / "tiny.txt") in res.stdout and "word perplexity" in res.stdout


def test_per_line_rows_round_trip_through_csv(lm_run, tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text('first, "quoted" line\n\nsecond line\n')
    out = tmp_path / "scores.csv"
    res = run(["evaluate", "-c", str(lm_run), str(src), "--per-line", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert [r["text"] for r in rows] == ['first, "quoted" line', "second line"]
    assert [r["line"] for r in rows] == ["1", "3"] and all(float(r["nats"]) > 0 for r in rows)
    jsonl = run(["evaluate", "-c", str(lm_run), str(src), "--per-line", "--format", "json"])
    assert jsonl.exit_code == 0 and len(list(csv.DictReader(io.StringIO(jsonl.stdout)))) == 2  # rows on stdout
    assert json.loads(jsonl.stderr)["files"][0]["lines"] == 3  # the summary moves to stderr


def test_per_line_jsonl_by_extension(lm_run, tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text("one\ntwo\n")
    out = tmp_path / "scores.jsonl"
    assert run(["evaluate", "-c", str(lm_run), str(src), "--per-line", "-o", str(out)]).exit_code == 0
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["one", "two"]


def test_a_classifier_checkpoint_is_a_one_line_error(int_clf):
    res = run(["evaluate", "-c", str(int_clf), str(FIXTURES / "tiny.txt")])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "classifier" in res.stderr and "language model" in res.stderr


def test_bad_files_are_one_line_errors(lm_run, tmp_path):
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01ab")
    for name, match in [("missing.txt", "no such file"), ("bin.dat", "binary")]:
        res = run(["evaluate", "-c", str(lm_run), str(tmp_path / name)])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1 and match in res.stderr, res.stderr
    res = run(["evaluate", "-c", str(lm_run), str(FIXTURES / "tiny.txt"), "-o", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "--per-line" in res.stderr


def test_train_test_file_shows_in_the_summary(tmp_path):
    from conftest import TINY

    args = ["train", str(FIXTURES / "tiny.txt"), "--out", str(tmp_path / "run"), "--test-file",
            str(FIXTURES / "tiny.txt"), "--max-steps", "3", "--eval-every", "3"]
    args += [a for k, v in TINY.items() if k not in ("eval_every",) for a in (f"--{k.replace('_', '-')}", str(v))]
    res = run(args)
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "test loss" in said and "word perplexity" in said
