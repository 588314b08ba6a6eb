"""Hugging Face datasets as corpora (--dataset), with the local builders (offline)."""

import json


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
    from textrnn.data.hf_datasets import export_dataset

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
