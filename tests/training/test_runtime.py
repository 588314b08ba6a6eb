"""Device, precision and the bf16 check."""

import pytest
import torch

from conftest import TINY, needs_cpu_bf16, run_cli
from textrnn.errors import TextRNNError
from textrnn.training import runtime


@pytest.fixture
def cpu_without_bf16_lstm(monkeypatch):
    """Make this CPU behave like one without bf16 kernels (e.g. AMD EPYC without AVX-512 BF16):
    oneDNN cannot create the bf16 LSTM primitive."""
    forward = torch.nn.LSTM.forward

    def failing(self, input, hx=None):
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive")
        return forward(self, input, hx)

    monkeypatch.setattr(torch.nn.LSTM, "forward", failing)
    runtime.cpu_trains_bf16.cache_clear()
    yield
    runtime.cpu_trains_bf16.cache_clear()


def test_bf16_on_a_cpu_that_cannot_is_one_line_and_writes_nothing(cpu_without_bf16_lstm, tmp_path, tiny_corpus):
    out = tmp_path / "run"
    args = ["train", str(tiny_corpus), "--out", str(out), "--precision", "bf16", "--device", "cpu",
            "--max-steps", "2", *(f"--{k.replace('_', '-')}={v}" for k, v in TINY.items())]
    res = run_cli(args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--precision bf16: this CPU cannot train LSTM layers in bf16" in lines[0]
    assert "--precision fp32" in lines[0]
    assert not out.exists()  # nothing of the run was written


def test_check_precision_on_a_cpu_that_can(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_trains_bf16", lambda cell="lstm": True)
    assert runtime.check_precision("bf16", torch.device("cpu")) == torch.bfloat16
    assert runtime.check_precision("auto", torch.device("cpu")) is None
    assert runtime.check_precision("fp32", torch.device("cpu")) is None
    with pytest.raises(TextRNNError, match="fp16 needs a CUDA GPU"):
        runtime.check_precision("fp16", torch.device("cpu"))


def test_the_bf16_probe_leaves_the_global_rng_alone():
    runtime.cpu_trains_bf16.cache_clear()
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    runtime.cpu_trains_bf16("gru")
    assert torch.equal(torch.rand(2), expected)


@needs_cpu_bf16
def test_precision_options(tmp_path, tiny_corpus):
    from textrnn.training.lm import train_language_model

    opts = dict(hidden=16, embed=8, batch_size=2, seq_len=8, max_steps=2, eval_every=2)
    with pytest.raises(TextRNNError, match="fp16 needs a CUDA GPU"):
        train_language_model([tiny_corpus], out=tmp_path / "a", precision="fp16", device="cpu", **opts)
    with pytest.raises(TextRNNError, match="--precision must be one of"):
        train_language_model([tiny_corpus], out=tmp_path / "b", precision="fp8", **opts)
    run = train_language_model([tiny_corpus], out=tmp_path / "c", precision="bf16", device="cpu", **opts)
    assert run.best["val_loss"] < 10  # bf16 autocast on the CPU runs (slowly on most CPUs)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_the_minimal_cells_train_in_bf16_on_any_cpu(cpu_without_bf16_lstm, cell):
    """Their layers are matrix products and a float32 scan (no oneDNN recurrent primitive), which CPU bf16
    autocast runs everywhere: the probe tries them, and --precision bf16 is accepted."""
    assert runtime.check_precision("bf16", torch.device("cpu"), cell) == torch.bfloat16
    assert not runtime.cpu_trains_bf16("lstm")  # (the fixture's CPU)
