"""Hugging Face datasets as corpora (--dataset), with the local builders (offline)."""

import json

import pytest

from textrnn.data.hf_datasets import export_dataset
from textrnn.errors import TextRNNError


def test_dataset_option_reads_local_files_through_hf_builders(tmp_path, tiny_corpus, monkeypatch):
    from click.testing import CliRunner

    from textrnn.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    table = tmp_path / "reviews.csv"
    lines = tiny_corpus.read_text().splitlines()
    table.write_text("id,review\n" + "".join(f'{i},"{line}"\n' for i, line in enumerate(lines) if '"' not in line))
    args = ["--max-steps", "2", "--hidden", "16", "--embed", "8", "--batch-size", "2", "--seq-len", "8"]
    res = CliRunner().invoke(cli, ["train", "--dataset", "csv", str(table), "--text-column", "review", *args,
                                   "--out", "run"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data"]["dataset"] == "csv"
    assert cfg["data"]["train_chars"] + cfg["data"]["val_chars"] == sum(
        len(line) + 1 for line in lines if line and '"' not in line)  # (empty cells are missing values)
    res = CliRunner().invoke(cli, ["train", "--dataset", "csv", str(table), "--text-column", "nope", *args,
                                   "--out", "run2"])
    assert res.exit_code == 2 and "no column 'nope'" in res.stderr


def test_dataset_folder_with_validation_split(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / "mydata"
    folder.mkdir()
    text = tiny_corpus.read_text()
    (folder / "train.txt").write_text(text[:4000])
    (folder / "validation.txt").write_text(text[4000:5000])
    train, val = export_dataset(str(folder), tmp_path / "cache")
    assert train.read_text() == text[:4000] + ("" if text[:4000].endswith("\n") else "\n")
    assert val is not None and val.read_text().startswith(text[4000:4100])
    (folder / "train.txt").write_text(text[:3000])  # an edit makes a new export
    train2, _ = export_dataset(str(folder), tmp_path / "cache")
    assert train2 != train and len(train2.read_text()) < len(train.read_text())


def test_text_files_give_a_train_split_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    notes = tmp_path / "notes.txt"
    notes.write_text("first line\nsecond line\n")
    train, val = export_dataset("text", tmp_path / "cache", data_files=[notes])
    assert train.read_text() == "first line\nsecond line\n" and val is None


def test_a_dataset_folder_with_a_dev_file_has_a_validation_split(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"review": "long enough"}\n' * 3)
    (folder / "dev.jsonl").write_text('{"review": "held out"}\n')
    train, val = export_dataset(str(folder), tmp_path / "cache")
    assert train.read_text() == "long enough\n" * 3 and val is not None and val.read_text() == "held out\n"
    (folder / "dev.jsonl").unlink()
    (folder / "test.jsonl").write_text('{"review": "test only"}\n')
    _, val = export_dataset(str(folder), tmp_path / "cache")
    assert val is None


def test_an_error_in_the_validation_split_is_reported_not_taken_for_no_split(tmp_path, monkeypatch):
    import datasets

    broken = ValueError("Failed to read file 'validation.jsonl' of the validation split: JSON parse error")

    class Broken:
        def __iter__(self):
            raise broken

    def load_dataset(name, config=None, *, split=None, **options):  # a hub dataset whose validation file is bad
        splits = {"train": [{"text": "some text"}] * 3, "validation": Broken()}
        if split is None:
            return splits
        if split not in splits:
            raise ValueError(f"Bad split: {split}. Available splits: {list(splits)}")
        if isinstance(splits[split], Broken):
            raise broken
        return splits[split]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(TextRNNError, match=r"^--dataset someone/data: .*validation.*JSON parse error"):
        export_dataset("someone/data", tmp_path / "cache")
