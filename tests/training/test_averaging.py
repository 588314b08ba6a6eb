"""Weight averaging (--average ema|swa): the math, the best checkpoint, exact resume, the options."""

import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, TINY_CLF, needs_cpu_bf16, one_line_error, run_cli
from textrnn import checkpoint
from textrnn.config import TrainConfig
from textrnn.errors import TextRNNError
from textrnn.tokenizer import Tokenizer
from textrnn.training.averaging import Averager, averaged_tensors, swapped
from textrnn.training.classifier import train_classifier
from textrnn.training.lm import train_language_model
from textrnn.training.rundir import execute


class Toy(torch.nn.Module):
    """A weight, a weight tied to it, a float buffer (averaged) and an integer one (left alone)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.tied = self.w
        self.register_buffer("stat", torch.zeros(2))
        self.register_buffer("seen", torch.zeros(1, dtype=torch.long))


VALUES = [[1.0, 2.0, 3.0], [-4.0, 0.5, 8.0], [2.0, 2.0, -1.0], [0.25, -3.0, 5.0]]
FRACTIONS = [0.25, 0.5, 0.75, 1.0]  # start 0.5: the first value is before the start


def fold(averager, toy):
    for step, (v, f) in enumerate(zip(VALUES, FRACTIONS), start=1):
        with torch.no_grad():
            toy.w.copy_(torch.tensor(v))
            toy.stat.copy_(torch.tensor(v[:2]) * 10)
            toy.seen.fill_(step)
        averager.update(toy, f, step)


def test_ema_and_swa_equal_a_hand_computation():
    v = [torch.tensor(x) for x in VALUES]
    ema, swa = Averager("ema", 0.5, decay=0.9), Averager("swa", 0.5)
    for averager in (ema, swa):
        fold(averager, Toy())
        assert averager.count == 3 and averager.start_step == 2
        assert set(averager.tensors) == {"w", "stat"}  # the tied weight once; the integer buffer not averaged
    # EMA starts as a copy of the weights at its start (no bias towards zero), then d * avg + (1 - d) * w
    hand_ema = 0.9 * (0.9 * v[1] + 0.1 * v[2]) + 0.1 * v[3]
    torch.testing.assert_close(ema.tensors["w"], hand_ema)
    torch.testing.assert_close(ema.tensors["stat"], hand_ema[:2] * 10)
    torch.testing.assert_close(swa.tensors["w"], (v[1] + v[2] + v[3]) / 3)  # the equal-weight mean
    assert swa.tensors["w"].dtype == torch.float32


def test_swapped_puts_the_average_in_and_the_weights_back_bit_for_bit():
    toy = Toy()
    averager = Averager("swa", 0.0)
    fold(averager, toy)
    before = {n: t.clone() for n, t in averaged_tensors(toy).items()}
    with averager.swapped(toy):
        assert torch.equal(toy.w, averager.tensors["w"]) and toy.tied is toy.w
        assert torch.equal(toy.stat, averager.tensors["stat"]) and int(toy.seen) == 4
    for n, t in averaged_tensors(toy).items():
        assert torch.equal(t, before[n]), n
    with pytest.raises(RuntimeError, match="do not match"):
        with swapped(toy, {"w": before["w"]}):
            pass


def test_the_models_have_no_buffer_that_would_need_averaging(lm_run, int_clf):
    for run in (lm_run, int_clf):
        model = checkpoint.load(run).model
        assert not [n for n, b in model.named_buffers() if b.is_floating_point()]


class Bouncing:
    """A task whose weight w (SGD at rate 1 on the loss |w|^2) flips sign every step: the raw weights
    always score |w0|^2, the mean of the last steps' weights about 0, so the average must score better."""

    def __init__(self, w0=(0.25, -0.5)):
        self.w0 = w0

    def steps_per_epoch(self):
        return 1000

    def start_epoch(self, epoch):
        pass

    def batches(self, epoch, start):
        for _ in range(start, 1000):
            yield None

    def loss(self, model, batch):
        return model.w.pow(2).sum(), 1

    def evaluate(self, model):
        return {"val_loss": float(model.w.pow(2).sum())}

    def is_better(self, metrics, best):
        return best is None or metrics["val_loss"] < best["val_loss"]

    def carry_state(self):
        return {}

    def load_carry_state(self, tensors):
        pass


class Weight(torch.nn.Module):
    def __init__(self, w0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w0))


@pytest.mark.parametrize("average", ["ema", "swa"])
def test_the_best_checkpoint_holds_the_averaged_weights_when_they_score_better(tmp_path, lm_run, average):
    task = Bouncing()
    model = Weight(task.w0)
    optimizer = torch.optim.SGD([{"params": [model.w], "lr_scale": 1.0}], lr=1.0)
    cfg = TrainConfig(max_steps=10, eval_every=5, save_every=5, lr=1.0, min_lr_ratio=1.0, warmup_steps=0,
                      clip=100.0, average=average, average_start=0.3, average_decay=0.5)
    run, tok = checkpoint.read_run(lm_run), Tokenizer.load(lm_run / checkpoint.TOKENIZER, "char")
    (tmp_path / "run").mkdir()  # (open_run makes it)
    result = execute(tmp_path / "run", run, tok, model, task, cfg, False, None, 5, optimizer=optimizer)

    rows = checkpoint.read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [5, 10]
    w0 = torch.tensor(task.w0)
    for r in rows:  # the raw weights never moved off +-w0: the average did not feed back
        assert r["val_loss"] == pytest.approx(float(w0.pow(2).sum()))
        assert r["avg_better"] is True and r["avg_val_loss"] < r["val_loss"]
        assert r["avg_steps"] == r["step"] - 3 + 1  # from step 3 (0.3 of 10) on, every step
    assert rows[1]["avg_val_loss"] < rows[0]["avg_val_loss"]  # (the longer average is nearer 0)
    # the best is the run's best score of either weights, it says which, and its weights are the average's
    assert result.best["weights"] == "average" and result.best["step"] == 10
    assert result.best["val_loss"] == result.best["avg_val_loss"] == rows[1]["avg_val_loss"]
    state = checkpoint.load_trainer_state(tmp_path / "run")["average"]
    assert state["kind"] == average and state["count"] == 8 and state["start_step"] == 3
    assert torch.equal(load_file(str(tmp_path / "run" / checkpoint.WEIGHTS))["w"], state["tensors"]["w"])
    assert torch.equal(model.w.detach(), w0)  # after 10 flips, the raw weights: last/ holds them
    assert torch.equal(load_file(str(tmp_path / "run" / "last" / checkpoint.WEIGHTS))["w"], w0)


def _interrupt_at(step):
    def on_progress(p):
        if p.step == step and p.event == "step":
            os.kill(os.getpid(), signal.SIGINT)
    return on_progress


def _assert_same_run(full, part, *metric_keys):
    full_m, part_m = checkpoint.read_metrics(full), checkpoint.read_metrics(part)
    assert [m["step"] for m in part_m] == [m["step"] for m in full_m]
    for a, b in zip(full_m, part_m):
        for k in metric_keys:
            assert a.get(k) == b.get(k), (a["step"], k)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
    for name in (checkpoint.WEIGHTS, f"{checkpoint.LAST}/{checkpoint.WEIGHTS}"):
        a, b = load_file(str(full / name)), load_file(str(part / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a, b = (checkpoint.load_trainer_state(d)["average"] for d in (full, part))
    assert a["count"] == b["count"] > 0 and all(torch.equal(a["tensors"][k], b["tensors"][k]) for k in a["tensors"])
    return full_m


@pytest.mark.parametrize("average,start", [("ema", 0.2), ("swa", 0.2), ("swa", 0.5)],
                         ids=["ema-resumed-while-averaging", "swa-resumed-while-averaging", "swa-resumed-before"])
def test_interrupt_then_resume_gives_identical_weights_and_metrics(tmp_path, tiny_corpus, average, start):
    """Ctrl-C at step 10 (averaging from step 6, or from step 15), then --resume: the same metrics (both
    weights' scores), the same best and last weights, the same average, as the uninterrupted run."""
    opts = dict(TINY, eval_every=7, save_every=7, dropout=0.1, max_steps=30, sample_length=0, average=average,
                average_start=start, average_decay=0.9)
    train_language_model([tiny_corpus], out=tmp_path / "full", **opts)
    first = train_language_model([tiny_corpus], out=tmp_path / "part", on_progress=_interrupt_at(10),
                                 report_every=1, **opts)
    assert first.stopped_by == "interrupt" and first.steps == 10
    train_language_model([tiny_corpus], out=tmp_path / "part", resume=True, **opts)
    rows = _assert_same_run(tmp_path / "full", tmp_path / "part", "val_loss", "avg_val_loss", "avg_better")
    assert [m["step"] for m in rows if "avg_val_loss" in m] == ([7, 14, 21, 28, 30] if start == 0.2 else
                                                                [21, 28, 30])


def test_resume_cannot_change_the_averaging(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=3, average="swa", **TINY)
    with pytest.raises(TextRNNError, match="average: checkpoint has 'swa', given 'ema'"):
        train_language_model([tiny_corpus], out=out, max_steps=6, resume=True, average="ema", **TINY)


def test_the_classifier_averages_too_and_resumes_exactly(tmp_path, labelled):
    opts = dict(TINY_CLF, dropout=0.2, eval_every=5, save_every=5, max_steps=20, average="swa", average_start=0.0)
    full = train_classifier(labelled, out=tmp_path / "full", val_file=labelled, **opts)
    first = train_classifier(labelled, out=tmp_path / "part", val_file=labelled, on_progress=_interrupt_at(8),
                             report_every=1, **opts)
    assert first.stopped_by == "interrupt" and first.steps == 8
    train_classifier(labelled, out=tmp_path / "part", val_file=labelled, resume=True, **opts)
    rows = _assert_same_run(tmp_path / "full", tmp_path / "part", "val_loss", "val_acc", "avg_val_loss",
                            "avg_val_acc", "avg_better")
    assert [m["avg_steps"] for m in rows] == [5, 10, 15, 20]
    row = next(r for r in rows if r["step"] == full.best["step"])  # the best: the better weights of its step
    assert full.best.get("weights") == ("average" if row["avg_better"] else None)
    assert full.best["val_acc"] == row["avg_val_acc" if row["avg_better"] else "val_acc"]
    checkpoint.load(tmp_path / "full")  # (a classifier's averaged weights load like its own)


@pytest.mark.parametrize("args,fragment", [
    (["--average", "mean"], "--average must be one of off, ema, swa"),
    (["--average-start", "1"], "--average-start must be in [0, 1)"),
    (["--average-start", "-0.1"], "--average-start must be in [0, 1)"),
    (["--average-decay", "1"], "--average-decay must be in (0, 1)"),
    (["--average-decay", "0"], "--average-decay must be in (0, 1)"),
])
def test_bad_averaging_options_are_one_line_errors(tmp_path, tiny_corpus, args, fragment):
    res = run_cli(["train", str(tiny_corpus), "--out", str(tmp_path / "run"), "--max-steps", "2", *args])
    one_line_error(res, fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_ranks_average_as_one_process_with_twice_the_batch(tmp_path, tiny_corpus):
    """Under torchrun (DDP, gloo) every rank averages the unwrapped module's weights; the averaged
    scores equal those of one process that trains on both ranks' streams."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    helper = Path(__file__).parents[1] / "helpers" / "ddp_train.py"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_corpus.read_text() * 3)
    opts = json.dumps({"average": "ema", "average_start": 0.25, "average_decay": 0.5, "sample_length": 0})
    env = {**{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")},
           "OMP_NUM_THREADS": "1"}
    for name, command in (("ddp", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   "--nproc-per-node=2", str(helper)]), ("one", [sys.executable, str(helper)])):
        (tmp_path / name).mkdir()
        batch = "2" if name == "ddp" else "4"
        res = subprocess.run([*command, str(corpus), str(tmp_path / f"run_{name}"), str(tmp_path / name), batch,
                              opts], capture_output=True, text=True, env=env, timeout=240)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ddp, one = checkpoint.read_metrics(tmp_path / "run_ddp"), checkpoint.read_metrics(tmp_path / "run_one")
    assert [m["step"] for m in ddp] == [m["step"] for m in one] == [4, 8]
    for a, b in zip(ddp, one):
        assert a["avg_steps"] == b["avg_steps"] == a["step"] - 1  # from step 2 (a quarter of 8) on
        assert a["avg_val_loss"] == pytest.approx(b["avg_val_loss"], rel=1e-5, abs=1e-5)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("device,precision", [
    ("cpu", "fp32"), pytest.param("cpu", "bf16", marks=needs_cpu_bf16), pytest.param("cuda", "bf16", marks=cuda),
    pytest.param("cuda", "fp16", marks=cuda)])
def test_autocast_training_keeps_a_float32_average(tmp_path, tiny_corpus, device, precision):
    """Under autocast (and on CUDA, where an LSTM's weights are views into one cuDNN buffer) the average
    stays float32, its scores are finite, the best weights load on the CPU and the run resumes."""
    if device == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    opts = dict(TINY, layers=2, weight_drop=0.2, eval_every=5, save_every=5, sample_length=0, device=device,
                precision=precision, average="ema", average_start=0.0, average_decay=0.9)
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=10, **opts)
    assert all(0 < r["avg_val_loss"] < 10 for r in checkpoint.read_metrics(out))
    average = checkpoint.load_trainer_state(out)["average"]
    assert average["count"] == 10 and all(t.dtype == torch.float32 for t in average["tensors"].values())
    checkpoint.load(out, device="cpu")
    assert train_language_model([tiny_corpus], out=out, max_steps=15, resume=True, **opts).steps == 15
    assert checkpoint.load_trainer_state(out)["average"]["count"] == 15
