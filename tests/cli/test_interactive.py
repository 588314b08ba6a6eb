"""``textrnn generate --interactive``: the Session (library) and the prompt loop (terminal)."""

import os
import re
import sys
from itertools import islice
from pathlib import Path

import pytest

from conftest import run_cli as run
from textrnn.api import load
from textrnn.errors import TextRNNError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lm(lm_run):
    return load(lm_run)


def turn(session, text):
    return "".join(session.feed_and_continue(text))


def test_turns_continue_one_text(lm):
    session = lm.session(greedy=True, length=30)
    first = turn(session, "First")
    assert first == lm.generate("First", 30, greedy=True)
    second = turn(session, "\nCitizen:\n")
    # the state carried across turns is the state of the whole text so far
    assert second == lm.generate("First" + first + "\nCitizen:\n", 30, greedy=True)
    assert turn(session, "") == lm.generate("First" + first + "\nCitizen:\n" + second, 30, greedy=True)


def test_seeded_session_samples_as_generate_and_reset_starts_again(lm):
    session = lm.session(seed=3, temperature=0.8, length=40)
    first = turn(session, "First")
    assert first == lm.generate("First", 40, temperature=0.8, seed=3)
    turn(session, "more\n")
    session.reset()
    assert session.empty
    assert turn(session, "First") == first  # reset: the fresh text and the seed's random stream again
    fresh = lm.session(seed=3, temperature=0.8, length=40)
    assert turn(fresh, "") == lm.generate("", 40, temperature=0.8, seed=3)  # an empty start is a newline


def test_stopped_continuation_keeps_the_text_shown(lm):
    session = lm.session(greedy=True, length=200)
    pieces = session.feed_and_continue("First")
    shown = "".join(islice(pieces, 7))
    pieces.close()  # the consumer stops reading
    after = turn(session, "\n")
    assert after == lm.generate("First" + shown + "\n", 200, greedy=True)
    assert list(pieces) == []


def test_keyboard_interrupt_inside_sampling_keeps_the_text_shown(lm, monkeypatch):
    from textrnn.inference.stepper import Stepper

    session = lm.session(greedy=True, length=200)
    calls, step = [0], Stepper.__call__

    def interrupted(self, ids, state, labels=None):
        calls[0] += 1
        if calls[0] == 12:
            raise KeyboardInterrupt
        return step(self, ids, state, labels)

    monkeypatch.setattr(Stepper, "__call__", interrupted)
    shown = []
    with pytest.raises(KeyboardInterrupt):
        for piece in session.feed_and_continue("First"):
            shown.append(piece)
    assert len(shown) == 11
    assert turn(session, "\n") == lm.generate("First" + "".join(shown) + "\n", 200, greedy=True)


def test_a_stream_left_behind_stops_when_the_session_moves_on(lm):
    session = lm.session(greedy=True, length=50)
    old = session.feed_and_continue("First")
    shown = next(old)
    new = turn(session, "\n")
    assert list(old) == []  # resuming it neither yields nor changes the carried state
    unstarted = session.feed_and_continue("\n")
    session.reset()
    assert list(unstarted) == []
    session.feed("First" + shown + "\n" + new)
    assert turn(session, "") == lm.generate("First" + shown + "\n" + new, 50, greedy=True)


def test_settings_are_checked_as_the_options_are(lm):
    session = lm.session(length=10)
    for bad, fragment in [(dict(temperature=0), "--temp"), (dict(top_p=1.5), "--top-p"),
                          (dict(top_k=10**6), "--top-k"), (dict(length=-1), "--length")]:
        with pytest.raises(TextRNNError, match=fragment):
            session.configure(**bad)
    assert session.settings.temperature == 1.0 and session.settings.top_k is None
    session.configure(temperature=0.5, top_p=0.9, top_k=3)
    assert (session.settings.temperature, session.settings.top_p, session.settings.top_k) == (0.5, 0.9, 3)
    with pytest.raises(TextRNNError, match="--temp"):
        lm.session(temperature=-1)


def test_unknown_characters_are_an_error_and_the_session_goes_on(lm):
    session = lm.session(greedy=True, length=20)
    first = turn(session, "First")
    with pytest.raises(TextRNNError, match="never saw"):
        session.feed_and_continue("\u0416")
    assert turn(session, "") == lm.generate("First" + first, 20, greedy=True)


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
