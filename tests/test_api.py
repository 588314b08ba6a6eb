"""textrnn.api: the loaded-model facade the commands and Python users call."""

import pytest

import textrnn
from textrnn.api import Conditioning, load
from textrnn.condition import markers
from textrnn.errors import TextRNNError
from textrnn.inference.options import OptionError, SamplingOptions


def test_sampling_options_start_from_the_declared_defaults(lm_run):
    lm = load(lm_run)
    assert lm.sampling() == SamplingOptions()
    assert lm.sampling(40, top_k=3, stop=["x"]) == SamplingOptions(length=40, top_k=3, stop=("x",))
    with pytest.raises(OptionError, match="--top-k must be from 1 to the vocabulary size"):
        lm.sampling(top_k=10**6)


def test_conditioning_of_a_plain_and_a_conditioned_model(lm_run, conditioned_run):
    assert load(lm_run).conditioning(None) == Conditioning("", [], 0)
    with pytest.raises(TextRNNError, match="trained without labels"):
        load(lm_run).conditioning("up")
    lm = load(conditioned_run)
    up = lm.conditioning("up")
    assert up.start == markers(lm.conditions)["up"] + " " and up.label == lm.conditions.index("up") + 1
    assert sorted(up.banned) == sorted(int(lm.tokenizer.encode(m)[0]) for m in markers(lm.conditions).values())


def test_a_classifier_refuses_what_needs_a_language_model(int_clf, lm_run):
    clf = load(int_clf)
    for call in (lambda: clf.generate("a"), lambda: clf.session(), lambda: clf.evaluate([])):
        with pytest.raises(TextRNNError, match=r"is a classifier; .* needs a language model checkpoint"):
            call()
    with pytest.raises(TextRNNError, match="is a language model; classify needs a classifier"):
        load(lm_run).classify("a text")


def test_evaluate_is_the_loaded_models_evaluate(lm_run, tiny_corpus):
    def timeless(rows):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert timeless(textrnn.evaluate(tiny_corpus, lm_run)) == timeless(load(lm_run).evaluate([tiny_corpus]))


def test_load_without_a_path_falls_back_to_the_shipped_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./checkpoints here
    assert load().path.name == "english-char" and load(task="classify").path.name == "sst2"


def test_classify_takes_min_confidence(int_clf):
    clf = load(int_clf, task="classify")
    (label, p), = clf.classify(["film"])
    assert clf.classify("film", min_confidence=min(p + 1e-6, 0.999999)) == ("uncertain", p)
    assert clf.classify("film", min_confidence=p) == (label, p)
    with pytest.raises(TextRNNError, match=r"^min_confidence must be a probability between 0 and 1 .*got 1\.5$"):
        clf.classify("film", min_confidence=1.5)
