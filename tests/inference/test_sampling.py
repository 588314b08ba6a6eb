"""textrnn.inference.sampling: stop strings, banned words and the draw of a batch of streams."""

import pytest
import torch

from textrnn.inference.options import SamplingOptions
from textrnn.inference.sampling import BannedWords, StopText, draws_for, pick
from textrnn.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def chars():
    return train_tokenizer("char", ["the cat sat on the mat\n"])


def _feed(stop, pieces):
    return "".join(stop.feed(p) for p in pieces) + stop.flush()


def test_a_stop_string_is_cut_even_across_pieces():
    assert _feed(StopText(["\n\n"]), ["ab\n", "\ncd"]) == "ab"
    assert _feed(StopText(["xyz"]), ["ax", "y", "b"]) == "axyb"  # a start that came to nothing is written
    assert _feed(StopText(["b", "ab"]), ["aab"]) == "a"  # the first occurrence of any wins
    assert _feed(StopText([]), ["a", "b"]) == "ab"
    s = StopText(["c"])
    assert s.feed("abcd") == "ab" and s.stopped and s.feed("more") == "" and s.flush() == ""


def test_banned_words_block_the_token_that_would_complete_them(chars):
    banned = BannedWords(chars, ["at", "o"])
    a, t, o = (int(chars.encode(c)[0]) for c in "ato")
    assert set(banned.blocked([a])) == {o, t}
    assert set(banned.blocked([t])) == {o}  # "o" is banned everywhere, "t" only after "a"
    assert banned.context == 1 and BannedWords(chars, []).blocked([a]) == [] and not BannedWords(None, ["x"])


def test_pick_scales_filters_bans_and_draws_each_row_on_its_own(chars):
    v = chars.vocab_size
    greedy = draws_for(SamplingOptions(greedy=True, length=5), chars, 0, 1, [0], "cpu")
    banned = draws_for(SamplingOptions(greedy=True, length=5, ban=("t",)), chars, 0, 1, [0], "cpu")
    sampled = draws_for(SamplingOptions(top_k=1, length=5), chars, 7, 2, [0], "cpu")
    logits = torch.randn(4, v)
    t = int(chars.encode("t")[0])
    logits[:, t] = 100.0
    tokens = pick(logits.clone(), [*greedy, *banned, *sampled])
    assert tokens.tolist()[0] == t and tokens.tolist()[1] != t  # the banned row never takes it
    assert tokens.tolist()[2:] == [t, t]  # top-k 1: the noise cannot move it
    again = draws_for(SamplingOptions(greedy=True, length=5, ban=("t",)), chars, 0, 1, [0], "cpu")
    alone = pick(logits[1:2].clone(), again)
    assert alone.tolist() == tokens.tolist()[1:2]


def test_a_draw_counts_its_length_and_stops(chars):
    (draw,) = draws_for(SamplingOptions(length=3, stop=("a",)), chars, 0, 1, [0], "cpu")
    c, a = (int(chars.encode(x)[0]) for x in "ca")
    assert draw.accept(c) == "c" and not draw.done
    assert draw.accept(a) == "" and draw.done  # the stop string: not written, the stream is over
    with pytest.raises(Exception, match="need the tokenizer"):
        draws_for(SamplingOptions(stop=("a",)), None, 0, 1, [0], "cpu", vocab_size=5)
