"""textrnn.inference.session: a text fed and continued turn by turn, the state carried across turns."""

from itertools import islice

import pytest

from textrnn.api import load
from textrnn.errors import TextRNNError


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


def test_feeding_nothing_ends_the_open_continuation(lm):
    session = lm.session(greedy=True, length=50)
    old = session.feed_and_continue("First")
    shown = next(old)
    session.feed("")  # a new turn even with no text: the old stream may not write the carried state any more
    assert list(old) == []
    assert turn(session, "") == lm.generate("First" + shown, 50, greedy=True)


def test_a_conditioned_session_never_samples_a_marker(conditioned_run):
    lm = load(conditioned_run)
    session = lm.session(condition="down", length=400, seed=5, temperature=2.0)
    text = turn(session, "") + turn(session, "\n")
    assert not any(0xF0000 <= ord(ch) < 0xF0400 for ch in text)  # the markers are banned
    fresh = lm.session(condition="down", length=400, seed=5, temperature=2.0)
    assert turn(fresh, "") == lm.generate("", 400, seed=5, temperature=2.0, condition="down")


def test_stop_strings_and_banned_words_in_a_session(lm):
    session = lm.session(seed=1, length=200, stop=["e"], ban=["th"])
    first = turn(session, "First")
    assert first == lm.generate("First", 200, seed=1, stop=["e"], ban=["th"]) and "e" not in first
    session.configure(stop=(), ban=())
    assert session.settings.stop == () and session.settings.ban == ()
    with pytest.raises(TextRNNError, match="--stop must not be empty"):
        session.configure(stop=[""])
