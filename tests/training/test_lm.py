"""The language-model pipeline: what a resumed run reads."""

import pytest

from conftest import TINY
from textrnn.errors import TextRNNError
from textrnn.export.run import export as export_run
from textrnn.training.lm import train_language_model


def test_an_explicit_encoding_on_resume_is_not_replaced_by_the_saved_one(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, encoding="latin-1", max_steps=2, **TINY)
    # the run's own encoding when none is given again
    assert train_language_model([tiny_corpus], out=out, max_steps=3, resume=True, **TINY).steps == 3
    # an explicit utf-8 reads the files differently from the run's latin-1: that is refused, not ignored
    with pytest.raises(TextRNNError, match="different text"):
        train_language_model([tiny_corpus], out=out, encoding="utf-8", max_steps=4, resume=True, **TINY)


def test_adaptive_softmax_trains_a_word_model_and_its_exports_load_back(tmp_path, tiny_corpus):
    import torch

    from textrnn import checkpoint

    out = tmp_path / "run"
    opts = dict(TINY, lr=0.02, eval_every=15, save_every=60, sample_length=0, fit=False)  # (no fitted dropout)
    train_language_model([tiny_corpus], out=out, tokenizer="word", adaptive_softmax=True, max_steps=60, **opts)
    losses = [m["train_loss"] for m in checkpoint.read_metrics(out) if "train_loss" in m]
    assert len(losses) == 4 and losses == sorted(losses, reverse=True) and losses[-1] < 0.9 * losses[0], losses
    ck = checkpoint.load(out)
    assert ck.model.asm is not None and ck.model.head is None
    assert ck.run.model.adaptive_softmax is True and ck.run.model.adaptive_cutoffs is None
    ids = torch.tensor([ck.tokenizer.encode("First Citizen: we are").tolist()])
    for kw in (dict(half=True), dict(half=True, int8_embedding=True)):
        small = checkpoint.load(export_run(out, tmp_path / str(len(kw)), **kw))
        with torch.no_grad():
            torch.testing.assert_close(small.model(ids)[0], ck.model(ids)[0], atol=3e-2, rtol=0)


def test_adaptive_softmax_options_errors_are_one_line(tmp_path, tiny_corpus):
    from conftest import run_cli

    for args, words in [(["--adaptive-softmax", "--adaptive-cutoffs", "5,99999"], "below the vocabulary size"),
                        (["--adaptive-cutoffs", "x"], "increasing positive whole numbers"),
                        (["--adaptive-softmax", "--tie-weights"], "drop --tie-weights"),
                        (["--task", "classify", "--adaptive-softmax"], "is for language models")]:
        res = run_cli(["train", str(tiny_corpus), "--tokenizer", "word", "--max-steps", "1", "--out",
                       str(tmp_path / "r"), "--force", *args])
        assert res.exit_code == 2 and words in res.output and len(res.output.strip().splitlines()) == 1, res.output
