"""The fit: defaults chosen from the corpus, the budget and the device (textrnn.training.recipe)."""

import json

import pytest
import torch

from conftest import TINY, run_cli
from textrnn.config import FITTED, TRAIN_OPTIONS, default
from textrnn.training import recipe
from textrnn.training.recipe import fit_defaults, relative_cost

CPU = torch.device("cpu")


@pytest.fixture
def two_threads(monkeypatch):
    """A 2-thread CPU without bf16 kernels (whatever this machine is)."""
    monkeypatch.setattr(recipe.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(recipe, "cpu_trains_bf16", lambda cell: False)


def fit(kind="char", vocab_size=65, train_tokens=1_000_000, given=None, max_time=300.0, epochs=None,
        max_steps=None, device=CPU, world=1):
    return fit_defaults(kind=kind, vocab_size=vocab_size, train_tokens=train_tokens, train_bytes=train_tokens,
                        given=given or {}, max_time=max_time, epochs=epochs, max_steps=max_steps,
                        tokens_per_step=32 * 128, device=device, world=world)


def test_relative_cost_is_one_for_the_reference_model_and_predicts_the_measured_word_speeds():
    assert relative_cost(1, 512, 64, 65, False) == pytest.approx(1.0)
    # measured on 2 CPU cores (docs/measurements.md): 1x512 char 24k tokens/s; word (12,901 words, embedding 64)
    # 3,351 tokens/s with the full softmax, 13,897 with the adaptive softmax
    assert 24_000 / relative_cost(1, 512, 64, 12901, False) == pytest.approx(3_351, rel=0.15)
    assert 24_000 / relative_cost(1, 512, 64, 12901, True) == pytest.approx(13_897, rel=0.15)
    assert relative_cost(2, 1024, 64, 65, False) > relative_cost(1, 1024, 64, 65, False) > 3


def test_five_minutes_on_a_megabyte_of_characters_gets_the_measured_row(two_threads):
    f = fit()
    assert set(f.options) == FITTED
    assert (f.options["layers"], f.options["hidden"], f.options["embed"]) == (1, 512, 64)
    assert f.options["adaptive_softmax"] is False and f.options["precision"] == "auto"
    # 2 threads x 11.5k tokens/s x 270 s x 0.82 (the smaller batch's speed) over 1M tokens: 5.1 passes
    assert f.basis["expected_epochs"] == pytest.approx(5.09, abs=0.01)
    assert f.options["input_dropout"] == f.options["output_dropout"] == f.options["weight_drop"] == 0.0
    assert (f.options["batch_size"], f.options["seq_len"]) == recipe.CPU_BATCH == (16, 64)
    assert "1x512 LSTM" in f.message and "no dropout" in f.message and "5 minutes on 2 CPU threads" in f.message
    assert "1.0 MB" in f.message and "5.1 epochs" in f.message and "batch 16 x 64" in f.message


def test_the_smaller_batch_is_for_character_models_with_a_time_budget_on_a_cpu(two_threads):
    declared = (default("batch_size"), default("seq_len"))
    shape = lambda f: (f.options["batch_size"], f.options["seq_len"])  # noqa: E731
    assert shape(fit()) == recipe.CPU_BATCH != declared
    assert shape(fit(kind="word", vocab_size=20000)) == declared  # (the output layer dominates: not measured)
    assert shape(fit(device=torch.device("cuda"))) == declared  # (a GPU's speed grows with the batch)
    assert shape(fit(max_time=None, epochs=10)) == shape(fit(max_time=None, max_steps=100)) == declared
    given = fit(given={"batch_size": 64})
    assert "batch_size" not in given.options and given.options["seq_len"] == recipe.CPU_BATCH[1]
    assert "batch 64 x 64" in given.message
    # the budget counts the chosen shape's speed: the declared shape trains on more tokens a second
    declared_speed = fit(given=dict(zip(("batch_size", "seq_len"), declared))).basis["reference_tokens_per_s"]
    assert fit().basis["reference_tokens_per_s"] == pytest.approx(declared_speed * recipe.CPU_BATCH_SPEED)
    # the speed factor was measured on a CPU: the same shape given on a GPU keeps the GPU's figure
    cuda = torch.device("cuda")
    assert fit(device=cuda, given={"batch_size": 16, "seq_len": 64}).basis["reference_tokens_per_s"] == \
        fit(device=cuda).basis["reference_tokens_per_s"] == recipe.TRAIN_SPEED["cuda"]


def test_word_regularization_grows_with_the_passes_over_the_corpus(two_threads):
    big = fit(kind="word", vocab_size=20000, train_tokens=50_000_000)
    middle = fit(kind="word", vocab_size=20000, train_tokens=500_000)
    small = fit(kind="word", vocab_size=20000, train_tokens=100_000)
    assert big.basis["expected_epochs"] < 2 and big.options["weight_drop"] == big.options["output_dropout"] == 0.0
    assert 2 <= middle.basis["expected_epochs"] < 8 and small.basis["expected_epochs"] >= 8
    assert 0 < middle.options["output_dropout"] < small.options["output_dropout"]
    assert 0 < middle.options["weight_drop"] < small.options["weight_drop"]
    assert fit(kind="bpe", vocab_size=4096, train_tokens=100_000).options["weight_drop"] > 0  # (BPE: as words)
    chars = [fit(train_tokens=n).options for n in (1_000_000, 400_000, 50_000)]  # 5, 13 and 102 passes
    assert chars[0]["weight_drop"] == 0.0 < chars[1]["weight_drop"] < chars[2]["weight_drop"]


def test_words_get_a_wider_embedding_the_adaptive_softmax_and_dropout(two_threads):
    chars, words = fit(train_tokens=200_000), fit(kind="word", vocab_size=20000, train_tokens=200_000)
    assert words.options["embed"] == recipe.WORD_EMBED and words.options["adaptive_softmax"] is True
    assert words.options["output_dropout"] > chars.options["output_dropout"]
    tied = fit(kind="word", vocab_size=20000, given={"tie_weights": True})
    assert tied.options["adaptive_softmax"] is False  # a tied output layer cannot be adaptive
    assert fit(kind="word", vocab_size=300).options["adaptive_softmax"] is False  # a small output layer


def test_bigger_budgets_get_bigger_models(two_threads, monkeypatch):
    sizes = [(fit(max_time=t).options["layers"], fit(max_time=t).options["hidden"]) for t in (300, 3600, 36000)]
    assert sizes[0] == (1, 512) and sizes[1][1] > 512 and sizes[2] > sizes[1]
    gpu = fit(device=torch.device("cuda"), max_time=3600)
    assert gpu.options["hidden"] >= 1024 and "a CUDA GPU" in gpu.message
    assert fit(world=4).basis["reference_tokens_per_s"] == 4 * fit().basis["reference_tokens_per_s"]


def test_epoch_and_step_budgets(two_threads):
    assert fit(max_time=None, epochs=10).basis["expected_epochs"] == 10
    assert "10 epochs" in fit(max_time=None, epochs=10).message
    steps = fit(max_time=None, max_steps=1000)  # 1000 x 4096 tokens over 1M tokens
    assert steps.basis["expected_epochs"] == pytest.approx(4.1, abs=0.01)
    assert fit(max_time=36000, epochs=2).basis["expected_epochs"] == 2  # the epochs end it first
    assert fit(max_time=None, epochs=100).options["hidden"] == 512  # only a time budget sizes the model
    assert fit(max_time=None, epochs=10).options["weight_drop"] == 0.0  # the default 10 epochs: no dropout


def test_options_the_user_set_are_kept_and_used(two_threads):
    f = fit(given={"hidden": 1024, "weight_drop": 0.0, "cell": "gru"})
    assert "hidden" not in f.options and "weight_drop" not in f.options
    assert f.basis["expected_epochs"] < fit().basis["expected_epochs"]  # the bigger model trains on fewer tokens
    assert "1x1024 GRU" in f.message


def test_bf16_on_cpus_with_native_bf16_lstm_kernels_only(two_threads, monkeypatch):
    assert fit().options["precision"] == "auto" and "bf16" not in fit().message
    fp32_epochs = fit(given={"hidden": 512}).basis["expected_epochs"]
    monkeypatch.setattr(recipe, "cpu_trains_bf16", lambda cell: True)
    assert fit().options["precision"] == "bf16" and ", bf16," in fit().message.split(":")[0]
    assert fit(given={"hidden": 512}).basis["expected_epochs"] == pytest.approx(
        fp32_epochs * recipe.CPU_BF16_SPEEDUP, abs=0.01)  # bf16 trains on more tokens in the same time
    assert fit().options["hidden"] == 768  # measured: with bf16's speed, 5 minutes fit a 1x768 LSTM best
    assert fit(given={"cell": "gru"}).options["precision"] == "auto"  # (bf16 measured for LSTM layers only)
    assert fit(device=torch.device("cuda")).options["precision"] == "auto"  # (auto is bf16 there already)
    given = fit(given={"precision": "fp32"})
    assert "precision" not in given.options and "bf16" not in given.message


# -- through the pipeline and the command line --------------------------------------------

def test_a_new_run_records_the_fit_and_the_cli_prints_it(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    r = run_cli(["train", str(tiny_corpus), "--out", str(out), "--max-steps", "4", "--hidden", "32", "--embed",
                 "16", "--batch-size", "4", "--seq-len", "16", "--sample-length", "0"])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    fitted = config["fit"]
    assert "chosen for" in r.output
    assert "hidden" not in fitted["chose"] and config["model"]["hidden"] == 32  # given: kept
    for name, value in fitted["chose"].items():
        assert config["train" if name in TRAIN_OPTIONS else "model"][name] == value
    assert fitted["basis"]["train_tokens"] == config["data"]["train_tokens"]


def test_no_fit_keeps_the_declared_defaults(tmp_path, tiny_corpus):
    from textrnn.api import train

    notes = []
    result = train(tiny_corpus, out=tmp_path / "run", max_steps=2, fit=False, sample_length=0, on_note=notes.append,
                   **TINY)
    config = json.loads((result.path / "config.json").read_text())
    assert config["fit"] is None and notes == []
    for name in FITTED - set(TINY):
        assert config["train" if name in TRAIN_OPTIONS else "model"][name] == default(name)


def test_resume_keeps_the_fitted_model(tmp_path, tiny_corpus):
    from textrnn.api import train

    notes = []
    first = train(tiny_corpus, out=tmp_path / "run", max_steps=2, sample_length=0, on_note=notes.append, **TINY)
    assert len(notes) == 1 and "chosen for" in notes[0]
    before = json.loads((first.path / "config.json").read_text())
    train(tiny_corpus, out=tmp_path / "run", resume=True, max_steps=400, on_note=notes.append)
    after = json.loads((first.path / "config.json").read_text())
    assert len(notes) == 1  # not fitted again
    assert after["model"] == before["model"] and after["fit"] == before["fit"]


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_the_fit_gives_a_minimal_cell_no_weight_drop(two_threads, cell):
    """A minGRU / minLSTM has no hidden-to-hidden weights (weight drop with one is refused): where the passes
    call for weight drop the fit leaves it at 0, and keeps the dropouts."""
    f = fit(max_time=None, epochs=50, given={"cell": cell})
    assert f.options["weight_drop"] == 0.0 and f.options["output_dropout"] > 0
    assert fit(max_time=None, epochs=50).options["weight_drop"] > 0  # (an LSTM's, for the same passes)
