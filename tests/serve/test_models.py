"""The runs a server loads (textrnn.serve.models): each under a name of its own."""

import shutil

import pytest

from textrnn.serve.limits import Limits
from textrnn.serve.models import load_models


def test_default_runs_with_the_same_name_get_names_of_their_own(lm_run, tmp_path, monkeypatch):
    """With no --checkpoint, a language model under ./checkpoints named like the shipped classifier
    (sst2) and that classifier (none under ./checkpoints) were both named sst2: one hid the other."""
    shutil.copytree(lm_run, tmp_path / "checkpoints" / "sst2")
    monkeypatch.chdir(tmp_path)
    models = load_models([], Limits())
    try:
        assert [(s.name, s.task) for s in models.served.values()] == [("sst2", "lm"), ("sst2-2", "classify")]
        assert models.pick("lm", None).name == "sst2" and models.pick("classify", None).name == "sst2-2"
    finally:
        models.close()


def test_names_that_collide_after_numbering_stay_unique(lm_run, tmp_path):
    """Not a defect: a run directory named like a numbered repeat (run-2) gets a name of its own."""
    for d in ("a/run", "b/run-2"):
        shutil.copytree(lm_run, tmp_path / d)
    models = load_models([lm_run, tmp_path / "a/run", tmp_path / "b/run-2"], Limits(max_streams=4))
    try:
        assert list(models.served) == ["run", "run-2", "run-2-2"]
        assert len({id(s.trained) for s in models.served.values()}) == 3
    finally:
        models.close()


@pytest.mark.parametrize("runs", [[], ["run"]])
def test_no_default_runs_is_a_one_line_error(tmp_path, monkeypatch, runs):
    from textrnn.errors import TextRNNError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("textrnn.checkpoint.SHIPPED", {})
    with pytest.raises(TextRNNError) as e:
        load_models(runs, Limits())
    assert "\n" not in str(e.value)
