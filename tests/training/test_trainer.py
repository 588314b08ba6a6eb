import json
import math
import os
import shutil
import signal

import pytest
import torch

from conftest import TINY, needs_cpu_bf16
from textrnn import checkpoint
from textrnn.config import TrainConfig
from textrnn.errors import TextRNNError
from textrnn.training.lm import train_language_model


def test_loss_falls_and_checkpoint_is_complete(tmp_path, tiny_corpus):
    seen = []
    result = train_language_model([tiny_corpus], out=tmp_path / "run", max_steps=60, lr=1e-2,
                                  on_progress=seen.append, **TINY)
    losses = [p.train_loss for p in seen if p.event == "step"]
    assert losses[-1] < losses[0] - 0.5
    assert result.steps == 60 and result.stopped_by == "max_steps"
    run = tmp_path / "run"
    for name in ["config.json", "tokenizer.json", "model.safetensors", "metrics.jsonl",
                 "last/model.safetensors", "last/trainer.pt"]:
        assert (run / name).exists(), name
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [20, 40, 60]
    for key in ["step", "elapsed_s", "train_loss", "val_loss", "val_ppl", "val_bpc", "tokens_per_s"]:
        assert key in metrics[-1]
    assert metrics[-1]["val_bpc"] == pytest.approx(metrics[-1]["val_loss"] / math.log(2), rel=1e-3)
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "lm" and config["tokenizer"]["kind"] == "char"
    assert config["model"]["hidden"] == TINY["hidden"] and "textrnn_version" in config
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no temporaries left


def test_save_load_identical_logits(tmp_path, tiny_corpus):
    train_language_model([tiny_corpus], out=tmp_path / "run", max_steps=5, **TINY)
    ck = checkpoint.load(tmp_path / "run", which="last")
    again = checkpoint.load(tmp_path / "run", which="last")
    ids = torch.tensor([ck.tokenizer.encode("First Citizen:").tolist()])
    with torch.no_grad():
        torch.testing.assert_close(ck.model(ids)[0], again.model(ids)[0], rtol=0, atol=0)


def test_existing_run_needs_resume_or_force(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=3, **TINY)
    with pytest.raises(TextRNNError, match="--resume"):
        train_language_model([tiny_corpus], out=out, max_steps=3, **TINY)
    result = train_language_model([tiny_corpus], out=out, max_steps=4, force=True, **TINY)
    assert result.steps == 4


AWD = dict(layers=2, input_dropout=0.2, hidden_dropout=0.2, output_dropout=0.2, weight_drop=0.3, ar=1.0, tar=1.0,
           tie_weights=True)  # embed 16, hidden 32: through a projection


MIN_AWD = dict(AWD, weight_drop=0.0)  # (a minimal cell has no hidden-to-hidden weights to drop)


@pytest.mark.parametrize("regularization", [{}, AWD, dict(tokenizer="word", adaptive_softmax=True),
                                            dict(MIN_AWD, cell="mingru"), dict(cell="minlstm")],
                         ids=["dropout", "awd", "adaptive-softmax", "mingru-awd", "minlstm"])
def test_interrupt_then_resume_gives_identical_losses(tmp_path, tiny_corpus, regularization):
    """Ctrl-C at step 10 (between evaluations) saves last/; resuming reproduces the uninterrupted run exactly
    (the same dropout, locked dropout and weight-drop masks)."""
    opts = dict(TINY, eval_every=7, save_every=7, dropout=0.1, max_steps=30, **regularization)
    full = []
    train_language_model([tiny_corpus], out=tmp_path / "full", on_progress=full.append, **opts)

    def interrupt_at_10(p):
        if p.step == 10 and p.event == "step":
            os.kill(os.getpid(), signal.SIGINT)

    first = train_language_model([tiny_corpus], out=tmp_path / "part", on_progress=interrupt_at_10,
                                 report_every=1, **opts)
    assert first.stopped_by == "interrupt" and first.steps == 10
    part = []
    train_language_model([tiny_corpus], out=tmp_path / "part", resume=True, on_progress=part.append, **opts)
    full_m = checkpoint.read_metrics(tmp_path / "full")
    part_m = checkpoint.read_metrics(tmp_path / "part")
    assert [m["step"] for m in part_m] == [m["step"] for m in full_m] == [7, 14, 21, 28, 30]
    for a, b in zip(full_m, part_m):
        assert a["val_loss"] == b["val_loss"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        grads = [k for k in a if k.startswith("grad_")]
        assert "grad_norm" in grads and "grad_clipped" in grads and grads == [k for k in b if k.startswith("grad_")]
        for k in grads:  # (the norms since the last evaluation are carried through the interruption)
            assert a[k] == pytest.approx(b[k], rel=1e-6), k
    samples = checkpoint.read_metrics(tmp_path / "part", checkpoint.SAMPLES)
    assert samples == checkpoint.read_metrics(tmp_path / "full", checkpoint.SAMPLES)  # (sampling is on by default)
    assert [s["step"] for s in samples] == [7, 14, 21, 28, 30]


def test_resume_refuses_contradicting_options(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=3, **TINY)
    with pytest.raises(TextRNNError, match="hidden: checkpoint has 32, given 64"):
        train_language_model([tiny_corpus], out=out, max_steps=6, resume=True, **dict(TINY, hidden=64))
    other = tmp_path / "other.txt"
    other.write_text(tiny_corpus.read_text()[::-1])
    with pytest.raises(TextRNNError, match="different text"):
        train_language_model([other], out=out, max_steps=6, resume=True, **TINY)


class _FakeTask:
    """A minimal Task for the generic loop: the loss turns NaN from step ``nan_from`` on."""

    def __init__(self, nan_from=math.inf):
        self.nan_from, self.calls, self.evaluations = nan_from, 0, 0

    def steps_per_epoch(self):
        return 100

    def start_epoch(self, epoch):
        pass

    def batches(self, epoch, start):
        for _ in range(start, 100):
            yield torch.ones(2, 3)

    def loss(self, model, batch):
        self.calls += 1
        loss = model(batch).pow(2).mean()
        return (loss * float("nan") if self.calls >= self.nan_from else loss), 2

    def evaluate(self, model):
        self.evaluations += 1
        return {"val_loss": 1.0}

    def is_better(self, metrics, best):
        return best is None

    def carry_state(self):
        return {}

    def load_carry_state(self, tensors):
        pass


def test_diverging_loss_stops_with_clear_error_and_saves_nothing_after(tmp_path):
    from textrnn.training.trainer import train_loop

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    saved_steps = []
    cfg = TrainConfig(max_steps=50, save_every=2, eval_every=100, warmup_steps=0)
    with pytest.raises(TextRNNError, match="diverged.*by step 6") as e:
        train_loop(model, _FakeTask(nan_from=5), cfg, report_every=3,
                   on_checkpoint=lambda st, best: saved_steps.append(st.step))
    assert "last good checkpoint is kept" in str(e.value)
    assert saved_steps == [2, 4]  # the NaN at step 5 is caught before the save at step 6


def tiny_trainer(task=None, report_every=10, on_progress=None, on_checkpoint=None, **cfg):
    """A Trainer of a 4-parameter model on a :class:`_FakeTask` (100 steps an epoch)."""
    from textrnn.training.trainer import Trainer

    torch.manual_seed(0)
    return Trainer(torch.nn.Linear(3, 1), task or _FakeTask(), TrainConfig(**{"warmup_steps": 0, **cfg}),
                   report_every=report_every, on_progress=on_progress, on_checkpoint=on_checkpoint)


def test_fraction_is_of_the_steps_or_of_the_time_less_the_last_evaluation():
    assert tiny_trainer().fraction() == 0.0  # no limit: no fraction
    by_steps = tiny_trainer(max_steps=40)
    by_steps.state.step = 10
    assert by_steps.fraction() == 0.25
    by_epochs = tiny_trainer(epochs=0.5)  # 50 steps
    by_epochs.state.step = 10
    assert by_epochs.fraction() == 0.2
    by_time = tiny_trainer(max_steps=40, max_time=100)
    by_time.state.step = 10
    by_time.start_elapsed, by_time.last_eval_s = 45.0, 10.0  # 45 s of the 90 s left for training
    assert by_time.fraction() == pytest.approx(0.5, abs=1e-3)
    by_time.start_elapsed = 5.0  # time is behind the steps: the steps' fraction counts
    assert by_time.fraction() == 0.25
    by_time.start_elapsed = 500.0
    assert by_time.fraction() == 1.0


def test_stop_reason_steps_epochs_signal_and_time_less_the_last_evaluation():
    trainer = tiny_trainer(max_steps=5)
    trainer.state.step = 4
    assert trainer.stop_reason() is None
    trainer.state.step = 5
    assert trainer.stop_reason() == "max_steps"
    by_epochs = tiny_trainer(epochs=0.05, max_steps=50)  # 5 steps
    by_epochs.state.step = 5
    assert by_epochs.stop_reason() == "epochs"

    timed = tiny_trainer(max_time=10)
    timed.start_elapsed = 7.0
    assert timed.stop_reason() is None
    timed.last_eval_s = 3.5  # the last evaluation needs 3.5 s more: no time for another step
    assert timed.stop_reason() == "max_time"
    timed.stop.signal = "terminate"  # a signal wins over the time
    assert timed.stop_reason() == "terminate"


def test_mean_train_loss_is_the_ranks_mean_and_refuses_a_non_finite_loss():
    trainer = tiny_trainer()
    trainer.loss_sum += 3.0
    trainer.loss_count = 2
    trainer._mean_train_loss()
    assert trainer.train_loss == 1.5
    trainer.loss_sum += float("nan")
    trainer.state.step = 7
    with pytest.raises(TextRNNError, match="diverged: the loss became nan by step 7; the last good checkpoint"):
        trainer._mean_train_loss()


def test_signal_stop_saves_without_a_final_evaluation():
    saved = []

    def interrupt_at_3(p):
        if p.event == "step" and p.step == 3:
            trainer.stop.signal = "interrupt"

    task = _FakeTask()
    trainer = tiny_trainer(task, report_every=1, on_progress=interrupt_at_3, max_steps=50, eval_every=100,
                           on_checkpoint=lambda st, best: saved.append((st.step, best, st.optimizer is not None)))
    state = trainer.run()
    assert state.stopped_by == "interrupt" and state.step == 3 and task.calls == 3
    assert saved == [(3, False, True)] and task.evaluations == 0
    assert state.optimizer is None  # the optimizer's state is handed to on_checkpoint, not kept
    assert state.loss_count == 3 and state.loss_sum == pytest.approx(trainer.train_loss * 3)
    assert state.rng is not None and state.rank_rng is None and state.carry == {}


def test_run_evaluates_at_the_end_unless_it_just_did():
    for max_steps, evaluated_at in [(4, [2, 4]), (5, [2, 4, 5])]:
        saved, task = [], _FakeTask()
        state = tiny_trainer(task, max_steps=max_steps, eval_every=2, save_every=3,
                             on_checkpoint=lambda st, best: saved.append(st.step)).run()
        assert state.stopped_by == "max_steps" and task.evaluations == len(evaluated_at)
        assert saved == [2, 3, 4] + [5] * (max_steps == 5)  # step 3: save_every; the rest: evaluations
        assert state.best["step"] == 2  # _FakeTask: the first evaluation is the best


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile needs a C compiler")
def test_compile_trains_like_eager(tmp_path, tiny_corpus):
    opts = dict(hidden=16, embed=8, batch_size=2, seq_len=8, max_steps=4, eval_every=4, device="cpu")
    eager = train_language_model([tiny_corpus], out=tmp_path / "eager", **opts)
    compiled = train_language_model([tiny_corpus], out=tmp_path / "compiled", compile=True, **opts)
    assert compiled.best["train_loss"] == pytest.approx(eager.best["train_loss"], rel=1e-4)
    assert compiled.best["val_loss"] == pytest.approx(eager.best["val_loss"], rel=1e-4)


def test_late_option_error_with_force_keeps_the_old_run(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=2, **TINY)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(TextRNNError, match="fp16 needs a CUDA GPU"):
        train_language_model([tiny_corpus], out=out, force=True, precision="fp16", device="cpu", max_steps=2, **TINY)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@needs_cpu_bf16
def test_resume_at_another_precision(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=3, precision="bf16", device="cpu",
                         **{**TINY, "save_every": 3, "eval_every": 3})
    run = train_language_model([tiny_corpus], out=out, max_steps=5, precision="fp32", resume=True)
    assert run.steps == 5


def test_resuming_a_table_corpus_needs_no_options_again(tmp_path):
    table = tmp_path / "lm.csv"
    table.write_text("id,review\n" + "".join(f"{i},the film number {i} was fine\n" for i in range(200)))
    out = tmp_path / "run"
    train_language_model([table], out=out, text_column="review", max_steps=2, **TINY)
    run = train_language_model([table], out=out, max_steps=4, resume=True)
    assert run.steps == 4


def test_metrics_record_grad_norms_per_layer_that_combine_to_the_total(tmp_path, tiny_corpus):
    train_language_model([tiny_corpus], out=tmp_path / "run", max_steps=3, **dict(TINY, eval_every=1, layers=2))
    metrics = checkpoint.read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:  # one step per evaluation: the layers' norms combine to the total
        layers = {k: v for k, v in m.items() if k.startswith("grad_norm/")}
        assert {"grad_norm/encoder.embedding", "grad_norm/encoder.rnn.l0", "grad_norm/encoder.rnn.l1"} <= set(layers)
        assert math.sqrt(sum(v * v for v in layers.values())) == pytest.approx(m["grad_norm"], rel=1e-5)
        assert m["grad_norm_max"] == pytest.approx(m["grad_norm"]) and m["grad_clipped"] in (0.0, 1.0)
