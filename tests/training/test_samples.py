"""Samples after each evaluation: samples.jsonl, the progress callback, and the RNGs left alone."""

import torch

from conftest import TINY
from textrnn import checkpoint
from textrnn.config import TrainConfig
from textrnn.inference.generate import generate
from textrnn.inference.options import SamplingOptions
from textrnn.training.lm import SAMPLE_TEMPERATURE, evaluation_sampler, train_language_model
from textrnn.training.runtime import resolve_device


def test_one_sample_per_evaluation_from_the_weights_of_that_step(tmp_path, tiny_corpus):
    seen = []
    train_language_model([tiny_corpus], out=tmp_path / "run", max_steps=10, on_progress=seen.append,
                         **dict(TINY, eval_every=4, sample_length=30))
    samples = checkpoint.read_metrics(tmp_path / "run", checkpoint.SAMPLES)
    assert [s["step"] for s in samples] == [m["step"] for m in checkpoint.read_metrics(tmp_path / "run")] == [4, 8, 10]
    assert [p.sample for p in seen if p.event == "eval"] == [s["text"] for s in samples]
    assert all(p.sample is None for p in seen if p.event != "eval")
    # the weights of the last evaluation, on the device that sampled them (a generator's draws are the device's)
    ck = checkpoint.load(tmp_path / "run", which="last", device=resolve_device("auto"))
    options = SamplingOptions(length=30, temperature=SAMPLE_TEMPERATURE, seed=1234)
    again = "".join(p[0] for p in generate(ck.model, ck.tokenizer, "", options))
    assert samples[-1]["text"] == again and again


def test_sample_length_zero_keeps_no_samples(tmp_path, tiny_corpus):
    seen = []
    train_language_model([tiny_corpus], out=tmp_path / "run", max_steps=4, on_progress=seen.append,
                         **dict(TINY, eval_every=2, sample_length=0))
    assert not (tmp_path / "run" / checkpoint.SAMPLES).exists()
    assert all(p.sample is None for p in seen)


def test_sampling_leaves_the_rng_and_the_training_mode_alone(lm_run):
    ck = checkpoint.load(lm_run)
    sample = evaluation_sampler(ck.tokenizer, TrainConfig(sample_length=20, seed=3))
    ck.model.train()
    before = torch.get_rng_state()
    first = sample(ck.model)
    assert torch.equal(torch.get_rng_state(), before) and ck.model.training
    assert sample(ck.model) == first  # same seed, same weights: same text
    assert evaluation_sampler(ck.tokenizer, TrainConfig(sample_length=0)) is None


def test_a_negative_sample_length_is_refused():
    import pytest

    from textrnn.errors import TextRNNError

    with pytest.raises(TextRNNError, match="--sample-length must be >= 0"):
        TrainConfig(sample_length=-1)
