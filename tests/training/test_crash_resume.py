"""SIGKILL at random moments (many during checkpoint writes), resume each time: every
checkpoint left behind loads, and the per-step losses equal an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from textrnn import checkpoint

ARGS = ["--hidden", "24", "--embed", "8", "--batch-size", "4", "--seq-len", "16", "--warmup-steps", "2",
        "--max-steps", "300", "--eval-every", "1", "--save-every", "1", "--seed", "7", "--dropout", "0.1",
        "--device", "cpu"]  # where a GPU is, it could finish before the random kills land


def train_cmd(corpus, out, *extra):
    return [sys.executable, "-m", "textrnn", "train", str(corpus), "--out", str(out), *ARGS, *extra]


def per_step_losses(out):
    return {m["step"]: m["train_loss"] for m in checkpoint.read_metrics(out)}


def assert_loadable(out):
    for which in ("best", "last"):
        checkpoint.load(out, which=which)
    state = checkpoint.load_trainer_state(out)
    assert state["step"] >= 1


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_matches_uninterrupted_run(tmp_path, tiny_corpus):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = tmp_path / "full"
    subprocess.run(train_cmd(tiny_corpus, full), check=True, env=env, capture_output=True)
    expected = per_step_losses(full)
    assert sorted(expected) == list(range(1, 301))

    out = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    first = True
    while kills < 10:
        cmd = train_cmd(tiny_corpus, out) if first else train_cmd(tiny_corpus, out, "--resume")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start_step = checkpoint.load_trainer_state(out)["step"] if not first else 0
        deadline = time.time() + 60
        # wait until this process is training (its first new checkpoint), then kill at a random moment
        while time.time() < deadline and proc.poll() is None:
            d = checkpoint.last_dir(out)
            try:
                if d is not None and checkpoint.load_trainer_state(out)["step"] > start_step:
                    break
            except Exception:  # noqa: BLE001 - mid-swap; poll again
                pass
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))
        if proc.poll() is not None:  # finished before we struck: nothing left to kill
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        first = False
        assert_loadable(out)  # whatever moment it died at, the checkpoint is whole

    assert kills == 10, "the run finished before it was killed 10 times"
    subprocess.run(train_cmd(tiny_corpus, out, "--resume"), check=True, env=env, capture_output=True)
    got = per_step_losses(out)
    assert sorted(got) == sorted(expected)
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, abs=1e-6), step
    assert json.loads((out / "config.json").read_text())["model"]["hidden"] == 24
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_sigterm_saves_last_checkpoint_and_exits_143(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    cmd = train_cmd(tiny_corpus, out)[:-len(ARGS)] + [a if a != "300" else "100000" for a in ARGS]
    cmd[cmd.index("--save-every") + 1] = "5"
    cmd[cmd.index("--eval-every") + 1] = "100000"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while checkpoint.last_dir(out) is None and time.time() < deadline:  # wait until it trains
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (proc.returncode, err)
    state = checkpoint.load_trainer_state(out)
    assert state["step"] >= 1 and state["stopped_by"] == "terminate"
    assert checkpoint.load(out, which="last").run.task == "lm"
    assert "--resume" in err
