"""The run directory: locking, leftovers of killed processes, default names, and checks before writing."""

import subprocess
import sys

import pytest

from textrnn.errors import TextRNNError
from textrnn.training import rundir


def test_second_process_is_refused_and_lock_dies_with_its_owner(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from textrnn.training.rundir import RunLock\n"
         f"with RunLock({str(out)!r}):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TextRNNError, match=f"pid {holder.pid}"):
            with rundir.RunLock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with rundir.RunLock(out):  # SIGKILL released it
        pass


def test_remove_leftovers_clears_every_kind_of_half_written_file(tmp_path):
    (tmp_path / ".last.ab12").mkdir()
    (tmp_path / ".last.ab12" / "trainer.pt").write_bytes(b"x")
    (tmp_path / ".model.safetensors.q1w2.tmp").write_bytes(b"x")
    (tmp_path / ".tmpWU1F7x").write_bytes(b"x")  # safetensors writes these before its own rename
    (tmp_path / ".lock").write_text("1")
    (tmp_path / "config.json").write_text("{}")
    rundir.remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "config.json"]


def test_default_run_directory_names():
    assert rundir.default_run_dir("corpora/tinyshakespeare.txt").as_posix() == "checkpoints/tinyshakespeare"
    assert rundir.default_run_dir("books/*.txt").as_posix() == "checkpoints/books"
    assert rundir.default_run_dir("books/**/x.md").as_posix() == "checkpoints/books"
    assert rundir.default_run_dir(".").name not in ("", ".", "checkpoints")


def test_a_run_directory_that_cannot_be_created_is_one_line(tmp_path, tiny_corpus):
    from conftest import run_cli

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker / "run", "/proc/textrnn-run"):
        res = run_cli(["train", str(tiny_corpus), "--out", str(out), "--max-steps", "1"])
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: --out {out}: cannot create"), res.stderr
        assert "choose another --out" in lines[0]
    assert blocker.read_text() == "x"
