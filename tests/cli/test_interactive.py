"""``textrnn generate --interactive``: the prompt loop in a terminal (the Session itself:
tests/inference/test_session.py)."""

import os
import re
import sys
from pathlib import Path

import pytest

from conftest import run_cli as run
from textrnn.api import load

REPO = Path(__file__).resolve().parents[2]


def test_piped_stdin(lm_run):
    lines = "First\n/temp 0.5\n/temp 0\n/top-p off\n/frob\n/help\n\n/reset\n/greedy on\n//x\n/quit\nnever read\n"
    res = run(["generate", "-i", "-c", str(lm_run), "-n", "20", "--seed", "1"], input=lines)
    assert res.exit_code == 0, res.output
    assert "/quit" in res.stderr  # the banner
    assert "error: /temp must be from 0.001 to 1000, got 0.0" in res.stderr and "use /greedy" in res.stderr
    assert "/length 20  /temp 0.5  /top-k off  /top-p off  /greedy off  /stop off  /ban off" in res.stderr
    assert "error: unknown command /frob" in res.stderr
    assert "/reset" in res.stderr and "(a fresh text)" in res.stderr
    assert "error: the text has characters the model never saw in training: '/' 'x'" in res.stderr  # //x: text
    assert 40 <= len(res.stdout) <= 42 and res.stdout.endswith("\n")  # two continuations, each ending its line


def test_stop_and_ban_commands(lm_run):
    lines = "/stop e\n/ban th\nFirst\n/stop off\n/stop \\n\n"
    res = run(["generate", "-i", "-c", str(lm_run), "-n", "200", "--seed", "1"], input=lines)
    assert res.exit_code == 0, res.output
    assert "/stop 'e'  /ban off" in res.stderr and "/stop 'e'  /ban 'th'" in res.stderr
    assert "/stop off  /ban 'th'" in res.stderr and "/stop '\\n'  /ban 'th'" in res.stderr
    lm = load(lm_run)
    expected = lm.generate("First\n", 200, seed=1, stop=["e"], ban=["th"])
    assert res.stdout == expected + "\n" and "e" not in expected and "th" not in "First\n" + expected


def test_a_conditioned_model_writes_its_label_and_never_a_marker(conditioned_run):
    res = run(["generate", "-i", "-c", str(conditioned_run), "-n", "300", "--seed", "2", "--condition", "up"],
              input="\n")
    assert res.exit_code == 0, res.output
    assert not any(0xF0000 <= ord(ch) < 0xF0400 for ch in res.stdout)
    session = load(conditioned_run).session(condition="up", length=300, seed=2)
    assert res.stdout == "".join(session.feed_and_continue("\n")) + "\n"


def test_prompt_is_context(lm_run):
    args = ["generate", "-i", "-c", str(lm_run), "-n", "20", "--greedy"]
    with_prompt = run([*args, "-p", "First"], input="\n")
    assert with_prompt.exit_code == 0
    assert with_prompt.stdout == load(lm_run).generate("First", 20, greedy=True) + "\n"


def test_num_samples_is_a_usage_error(lm_run):
    res = run(["generate", "-i", "-c", str(lm_run), "--num-samples", "2"], input="")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == ["error: --interactive samples one stream; leave out --num-samples"]


@pytest.mark.skipif(sys.platform == "win32", reason="pexpect's spawn needs a POSIX pseudo-terminal")
def test_in_a_pseudo_terminal(lm_run):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TERM": "dumb"}
    child = pexpect.spawn(sys.executable, ["-m", "textrnn", "generate", "--interactive", "-c", str(lm_run),
                                           "--seed", "1", "-n", "40"], env=env, timeout=30, encoding="utf-8")
    try:
        child.expect_exact("Ctrl-D ends")
        child.expect_exact("> ")
        child.sendline("First")
        child.expect_exact("> ")
        assert len(child.before.replace("\r", "")) > len("First\n") + 10  # the echo, then the continuation
        child.sendline("/temp 0.5")
        child.expect_exact("/temp 0.5  /top-k off")
        child.expect_exact("> ")
        child.sendline("/reset")
        child.expect_exact("(a fresh text)")
        child.expect_exact("> ")
        child.sendline("/length 1000000")
        child.expect_exact("> ")
        child.sendline("the")
        child.expect(re.compile(r"the\r\n.{20}", re.DOTALL))  # streaming
        child.sendintr()  # Ctrl-C: stops the continuation, not the session
        child.expect_exact("> ")
        assert len(child.before) < 1000000
        child.sendline("/help")
        child.expect_exact("/quit           end (or Ctrl-D)")
        child.expect_exact("> ")
        child.sendintr()  # Ctrl-C at the prompt: a fresh prompt
        child.expect_exact("> ")
        child.sendeof()  # Ctrl-D ends
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before


LAUNCH = {  # textrnn started by a parent that ignores or blocks SIGINT (a background job of a script, some launchers)
    "ignored": "signal.signal(signal.SIGINT, signal.SIG_IGN)",
    "blocked": "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})",
}


@pytest.mark.skipif(sys.platform == "win32", reason="pexpect's spawn needs a POSIX pseudo-terminal")
@pytest.mark.parametrize("inherited", sorted(LAUNCH))
def test_ctrl_c_stops_a_continuation_whatever_sigint_was_inherited(lm_run, inherited):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TERM": "dumb"}
    launcher = (f"import os, signal, sys; {LAUNCH[inherited]}; "
                "os.execv(sys.executable, [sys.executable, '-m', 'textrnn', *sys.argv[1:]])")
    child = pexpect.spawn(sys.executable, ["-c", launcher, "generate", "--interactive", "-c", str(lm_run),
                                           "--seed", "1", "-n", "100000000"], env=env, timeout=60, encoding="utf-8")
    try:
        child.expect_exact("Ctrl-D ends")
        child.expect_exact("> ")
        child.sendline("the")
        child.expect(re.compile(r"the\r\n.{20}", re.DOTALL))  # streaming a continuation of 10**8 characters
        child.sendintr()  # Ctrl-C: stops the continuation, not the session
        child.expect_exact("> ")
        child.sendintr()  # Ctrl-C at the prompt: a fresh prompt
        child.expect_exact("> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
