"""The language-model pipeline: what a resumed run reads."""

import pytest

from conftest import TINY
from textrnn.errors import TextRNNError
from textrnn.training.lm import train_language_model


def test_an_explicit_encoding_on_resume_is_not_replaced_by_the_saved_one(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, encoding="latin-1", max_steps=2, **TINY)
    # the run's own encoding when none is given again
    assert train_language_model([tiny_corpus], out=out, max_steps=3, resume=True, **TINY).steps == 3
    # an explicit utf-8 reads the files differently from the run's latin-1: that is refused, not ignored
    with pytest.raises(TextRNNError, match="different text"):
        train_language_model([tiny_corpus], out=out, encoding="utf-8", max_steps=4, resume=True, **TINY)
