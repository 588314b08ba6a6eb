"""textrnn.inference.scoring: every token scored with the state carried, the same numbers as
validation, the word-level perplexity by hand, per-line scores, --test-file."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import FIXTURES, TINY, tiny_lm
from textrnn import checkpoint
from textrnn.errors import TextRNNError
from textrnn.inference.scoring import score_file, score_lines, score_tokens, stream_spans
from textrnn.tokenizer import train_tokenizer
from textrnn.training.lm import train_language_model

TRAIN = {k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")}


@pytest.fixture(scope="module")
def val_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("val") / "val.txt"
    path.write_text((FIXTURES / "tiny.txt").read_text(encoding="utf-8")[:1234], encoding="utf-8")  # no final \n
    return path


def _train(out, val, tokenizer, **kw):
    return train_language_model([FIXTURES / "tiny.txt"], out=out, tokenizer=tokenizer, val_file=val, max_steps=6,
                                eval_every=3, save_every=3, **TRAIN, **kw)


@pytest.mark.parametrize("tokenizer,kw", [("char", {}), ("word", {}), ("word", {"adaptive_softmax": True})],
                         ids=["char", "word", "word-adaptive-softmax"])
def test_evaluate_on_the_validation_text_equals_the_reported_val_loss(tmp_path, val_text, tokenizer, kw):
    import textrnn

    result = _train(tmp_path / "run", val_text, tokenizer, **kw)
    last = checkpoint.read_metrics(result.path)[-1]
    lm = textrnn.load(result.path, which="last")  # (the last evaluation is of the last weights)
    found = lm.evaluate(val_text)[0]
    assert abs(found["loss"] - last["val_loss"]) < 1e-4
    assert abs(found["perplexity"] - last["val_ppl"]) < 1e-2
    assert abs(found["bits_per_char"] - last["val_bpc"]) < 1e-4
    assert found["tokens"] == json.loads((result.path / "config.json").read_text())["data"]["val_tokens"]
    assert found["scored"] == found["tokens"] - 1  # every token but the first
    assert textrnn.evaluate(val_text, result.path)[0]["loss"] == found["loss"]


def test_every_prediction_is_scored_once_in_streams_of_near_equal_length():
    for n, streams in [(2, 1), (17, 4), (1000, 16), (1001, 16), (1015, 16)]:
        spans = stream_spans(n, streams)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] - 1 == b[0] for a, b in zip(spans, spans[1:]))  # one token of overlap
        assert max(e - s for s, e in spans) - min(e - s for s, e in spans) <= 1


def test_scoring_in_streams_equals_scoring_each_stream_in_one_pass():
    model = tiny_lm()
    ids = np.random.default_rng(0).integers(0, 11, size=301)
    total, count = score_tokens(model, ids, seq_len=7, device=torch.device("cpu"), max_streams=4)
    expect = 0.0
    for s, e in stream_spans(len(ids), 4):  # the same streams, one long forward each, fresh state
        x = torch.as_tensor(ids[s:e])
        with torch.no_grad():
            logits, _ = model(x[None, :-1])
        expect += float(torch.nn.functional.cross_entropy(logits[0], x[1:], reduction="sum"))
    assert count == 300 and abs(total - expect) < 1e-6 * abs(expect)


def test_ranks_together_score_what_one_process_does():
    model, ids, cpu = tiny_lm(), np.arange(500) % 11, torch.device("cpu")
    whole = score_tokens(model, ids, 9, cpu)
    parts = [score_tokens(model, ids, 9, cpu, rank=r, world=3) for r in range(3)]
    assert sum(p[1] for p in parts) == whole[1] == 499
    assert abs(sum(p[0] for p in parts) - whole[0]) < 1e-6 * whole[0]


def _lm(vocab_size):
    from textrnn.config import ModelConfig
    from textrnn.model import LanguageModel

    torch.manual_seed(0)
    return LanguageModel(ModelConfig(vocab_size=vocab_size, hidden=8, embed=6, layers=2, dropout=0.0)).eval()


def _uniform_lm(vocab_size):
    model = _lm(vocab_size)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()  # every logit 0: every token has probability 1 / V
    return model


def test_word_level_perplexity_by_hand(tmp_path):
    text = "ab c\nd\n"  # 3 words, 2 lines; 7 characters, 7 char tokens, 6 predicted
    path = tmp_path / "t.txt"
    path.write_text(text)
    tok = train_tokenizer("char", [text])
    vocab = tok.vocab_size  # a b c d ' ' '\n' <unk>
    assert vocab == 7
    found = score_file(_uniform_lm(vocab), tok, path, seq_len=4)
    assert found["tokens"] == 7 and found["scored"] == 6 and found["words"] == 3 and found["lines"] == 2
    assert found["loss"] == pytest.approx(math.log(7))
    assert found["perplexity"] == pytest.approx(7.0)
    assert found["word_perplexity"] == pytest.approx(7 ** (6 / 5))  # exp(6 ln 7 / (3 words + 2 lines))
    assert found["bits_per_char"] == pytest.approx(math.log2(7))
    assert found["unknown_share"] == 0.0


def test_unknown_share_counts_unk_tokens(tmp_path):
    tok = train_tokenizer("char", ["abab\n"])
    path = tmp_path / "t.txt"
    path.write_text("abxy\n")  # x and y are unknown
    found = score_file(_uniform_lm(tok.vocab_size), tok, path, seq_len=8)
    assert found["unknown_share"] == pytest.approx(2 / 5)


def test_per_line_scores_each_line_from_a_fresh_state(tmp_path):
    tok = train_tokenizer("char", ["hello world\nab\n"])
    model = _lm(tok.vocab_size)
    path = tmp_path / "t.txt"
    path.write_text("hello\n\nab\nworld hello")
    rows = score_lines(model, tok, path, seq_len=3)
    assert [r["line"] for r in rows] == [1, 3, 4] and [r["text"] for r in rows] == ["hello", "ab", "world hello"]
    for r in rows:
        x = torch.as_tensor(tok.encode(r["text"] + "\n"))
        with torch.no_grad():
            logits, _ = model(x[None, :-1])
        nats = float(torch.nn.functional.cross_entropy(logits[0], x[1:], reduction="sum"))
        assert r["tokens"] == len(x) and r["nats"] == pytest.approx(nats, rel=1e-5)
        assert r["bits_per_char"] == pytest.approx(nats / math.log(2) / (len(r["text"]) + 1), rel=1e-5)
        assert r["perplexity"] == pytest.approx(math.exp(nats / (len(x) - 1)), rel=1e-5)


def test_bad_files_are_one_line_errors(tmp_path):
    tok = train_tokenizer("char", ["ab\n"])
    model = _lm(tok.vocab_size)
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01\x02ab")
    (tmp_path / "bad.txt").write_bytes(b"ab\xff\xfe\n")
    (tmp_path / "one.txt").write_text("")
    for name, match in [("missing.txt", "no such file"), ("bin.dat", "binary"), ("bad.txt", "--encoding"),
                        ("one.txt", "too short"), (".", "is a directory")]:
        with pytest.raises(TextRNNError, match=match):
            score_file(model, tok, tmp_path / name, seq_len=4)


def test_test_file_is_scored_with_the_best_weights(tmp_path, val_text):
    result = _train(tmp_path / "run", val_text, "char", test_file=val_text)
    metrics = checkpoint.read_metrics(result.path)
    test = metrics[-1]
    assert test["event"] == "test" and set(result.test) == set(test)
    best = min((m for m in metrics if "val_loss" in m), key=lambda m: m["val_loss"])
    assert test["step"] == best["step"] and abs(test["test_loss"] - best["val_loss"]) < 1e-4
    assert {"test_ppl", "test_bpc", "test_word_ppl"} <= set(test)


def test_a_missing_test_file_fails_before_training(tmp_path, val_text):
    with pytest.raises(TextRNNError, match="nope.txt: no such file"):
        _train(tmp_path / "run", val_text, "char", test_file=tmp_path / "nope.txt")
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_scores_the_test_file_again_once(tmp_path, val_text):
    _train(tmp_path / "run", val_text, "char", test_file=val_text)
    train_language_model([FIXTURES / "tiny.txt"], out=tmp_path / "run", val_file=val_text, test_file=val_text,
                         resume=True, max_steps=9)
    metrics = checkpoint.read_metrics(tmp_path / "run")
    assert [m.get("event") for m in metrics].count("test") == 1 and metrics[-1]["event"] == "test"
    assert metrics[-2]["step"] == 9
