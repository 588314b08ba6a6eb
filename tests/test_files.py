"""textrnn.files: atomic writes (a temporary name, flushed, renamed into place) and what the checkpoint
format builds on them."""

import pytest

from textrnn import checkpoint, files
from textrnn.errors import TextRNNError


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    dest = tmp_path / "f.json"
    checkpoint.write_file(dest, "old")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", fail)
    with pytest.raises(TextRNNError, match="No space left"):
        checkpoint.write_file(dest, "new")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary left behind


def test_atomic_file_writes_whole_or_not_at_all(tmp_path):
    dest = tmp_path / "out.txt"
    with files.atomic_file(dest) as f:
        f.write("first")
    with pytest.raises(RuntimeError):
        with files.atomic_file(dest) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert dest.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    files.atomic_write(dest, b"bytes too")
    assert dest.read_bytes() == b"bytes too"
