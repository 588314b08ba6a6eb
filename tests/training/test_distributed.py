"""Data-parallel training under torchrun (gloo on CPU), and the CUDA paths (skipped
without a GPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HELPER = Path(__file__).parents[1] / "helpers" / "ddp_train.py"


def _env(**extra):
    """This environment, outside any torchrun job, with one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _run(args, timeout=240):
    res = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def _error_lines(args):
    """The ``error:`` lines of a command that must fail."""
    res = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=240)
    assert res.returncode != 0, res.stdout[-2000:]
    return [line for line in res.stderr.splitlines() if line.startswith("error: ")], res.stderr[-2000:]


def _torchrun(nproc, *args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_two_ranks_match_one_process_with_twice_the_batch(tmp_path, tiny_corpus):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_corpus.read_text() * 3)
    (tmp_path / "ddp").mkdir()
    (tmp_path / "one").mkdir()
    _run(_torchrun(2, str(HELPER), str(corpus), str(tmp_path / "run_ddp"), str(tmp_path / "ddp"), "2"))
    _run([sys.executable, str(HELPER), str(corpus), str(tmp_path / "run_one"), str(tmp_path / "one"), "4"])

    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    one = json.loads((tmp_path / "one" / "rank0.json").read_text())
    # each rank read its own streams; together they are exactly the single run's streams
    for step in range(8):
        a, b = ranks[0]["windows"][step], ranks[1]["windows"][step]
        assert a != b
        assert a + b == one["windows"][step]
    # only rank 0 wrote: the run files once, and a checkpoint at each of the 2 evaluations
    assert ranks[1]["writes"] == []
    assert ranks[0]["writes"].count("write_run_files") == 1
    assert ranks[0]["writes"].count("save_last") == 2
    assert sorted(ranks[0]["writes"]) == sorted(one["writes"])
    # the same losses (gradients averaged over ranks == the gradient of the whole batch)
    ddp, single = _metrics(tmp_path / "run_ddp"), _metrics(tmp_path / "run_one")
    assert [m["step"] for m in ddp] == [m["step"] for m in single] == [4, 8]
    for m, s in zip(ddp, single):
        assert m["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5, abs=1e-5)
        assert m["val_loss"] == pytest.approx(s["val_loss"], rel=1e-5, abs=1e-5)
    cfg = json.loads((tmp_path / "run_ddp" / "config.json").read_text())
    assert cfg["distributed"]["world_size"] == 2 and cfg["train"]["batch_size"] == 2

    # resume under torchrun goes on exactly: 8 -> 12 steps equals the single run resumed the same way
    _run(_torchrun(2, str(HELPER), str(corpus), str(tmp_path / "run_ddp"), str(tmp_path / "ddp"), "2",
                   json.dumps({"max_steps": 12, "resume": True})))
    _run([sys.executable, str(HELPER), str(corpus), str(tmp_path / "run_one"), str(tmp_path / "one"), "4",
          json.dumps({"max_steps": 12, "resume": True})])
    ddp, single = _metrics(tmp_path / "run_ddp"), _metrics(tmp_path / "run_one")
    assert [m["step"] for m in ddp] == [4, 8, 12]
    assert ddp[-1]["val_loss"] == pytest.approx(single[-1]["val_loss"], rel=1e-5, abs=1e-5)
    assert ddp[-1]["train_loss"] == pytest.approx(single[-1]["train_loss"], rel=1e-5, abs=1e-5)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_two_ranks_of_a_minimal_cell_match_one_process(tmp_path, tiny_corpus):
    """A minGRU stack (its own module, its own scan and backward) under DDP: the averaged gradients are the
    whole batch's, so the losses are the single process's."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_corpus.read_text() * 3)
    (tmp_path / "ddp").mkdir()
    (tmp_path / "one").mkdir()
    extra = json.dumps({"cell": "mingru", "layers": 2})
    _run(_torchrun(2, str(HELPER), str(corpus), str(tmp_path / "run_ddp"), str(tmp_path / "ddp"), "2", extra))
    _run([sys.executable, str(HELPER), str(corpus), str(tmp_path / "run_one"), str(tmp_path / "one"), "4", extra])
    ddp, single = _metrics(tmp_path / "run_ddp"), _metrics(tmp_path / "run_one")
    assert [m["step"] for m in ddp] == [m["step"] for m in single] == [4, 8]
    for m, s in zip(ddp, single):
        assert m["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5, abs=1e-5)
        assert m["val_loss"] == pytest.approx(s["val_loss"], rel=1e-5, abs=1e-5)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_resume_with_dropout_is_exact(tmp_path, tiny_corpus):
    """8 steps + resume to 12 equals 12 steps straight, with dropout: each rank gets back
    its own RNG state and carried hidden state. (A constant learning rate, so that the
    schedule does not depend on --max-steps, which the resume raises from 8 to 12.)"""
    opts = {"dropout": 0.2, "max_steps": 12, "eval_every": 4, "warmup_steps": 0, "min_lr_ratio": 1.0}
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    _run(_torchrun(2, str(HELPER), str(tiny_corpus), str(tmp_path / "straight"), str(tmp_path / "a"), "2",
                   json.dumps(opts)))
    _run(_torchrun(2, str(HELPER), str(tiny_corpus), str(tmp_path / "split"), str(tmp_path / "b"), "2",
                   json.dumps({**opts, "max_steps": 8})))
    _run(_torchrun(2, str(HELPER), str(tiny_corpus), str(tmp_path / "split"), str(tmp_path / "b"), "2",
                   json.dumps({**opts, "resume": True})))
    straight, split = _metrics(tmp_path / "straight"), _metrics(tmp_path / "split")
    assert [m["step"] for m in split] == [4, 8, 12]
    for a, b in zip(straight, split):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)


def test_resume_with_another_process_count_is_refused(tmp_path, tiny_corpus):
    (tmp_path / "log").mkdir()
    _run([sys.executable, str(HELPER), str(tiny_corpus), str(tmp_path / "run"), str(tmp_path / "log"), "2",
          json.dumps({"max_steps": 2})])
    errors, stderr = _error_lines(_torchrun(2, "-m", "textrnn", "train", str(tiny_corpus), "--out",
                                            str(tmp_path / "run"), "--resume", "--max-steps", "4", "--device", "cpu"))
    assert len(errors) == 1 and "--nproc-per-node 1" in errors[0], stderr
    # an input error every rank meets is reported once, not once per rank
    errors, stderr = _error_lines(_torchrun(2, "-m", "textrnn", "train", str(tmp_path / "missing.txt"),
                                            "--device", "cpu"))
    assert len(errors) == 1 and "no such file" in errors[0], stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_machines_without_a_shared_cache(tmp_path, tiny_corpus):
    """Two torchrun "machines" (node ranks 0 and 1, one process each) on this host, with
    c10d rendezvous and a cache folder of their own: node 1 fills its own token cache with
    rank 0's tokenizer, and the run trains like one process with twice the batch."""
    port = _free_port()
    procs = []
    for node in (0, 1):
        (tmp_path / f"log{node}").mkdir()
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}",
               "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
               "--rdzv-id=textrnn-test", str(HELPER), str(tiny_corpus), str(tmp_path / "run"),
               str(tmp_path / f"log{node}"), "2", json.dumps({"max_steps": 4, "eval_every": 4})]
        env = _env(TEXTRNN_CACHE=str(tmp_path / f"cache{node}"))
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs[0][-2000:] + outputs[1][-2000:]
    logs = [json.loads((tmp_path / f"log{n}" / f"rank{n}.json").read_text()) for n in (0, 1)]
    assert logs[1]["writes"] == [] and logs[0]["writes"].count("save_last") == 1
    assert logs[0]["windows"][0] != logs[1]["windows"][0]
    caches = [list((tmp_path / f"cache{n}" / "tokens").iterdir()) for n in (0, 1)]
    assert len(caches[0]) == len(caches[1]) == 1 and caches[0][0].name == caches[1][0].name  # same key
    assert not (tmp_path / "cache1" / "tokenizers").exists()  # node 1 used rank 0's tokenizer
    (tmp_path / "one").mkdir()
    _run([sys.executable, str(HELPER), str(tiny_corpus), str(tmp_path / "run_one"), str(tmp_path / "one"), "4",
          json.dumps({"max_steps": 4, "eval_every": 4})])
    assert _metrics(tmp_path / "run")[-1]["val_loss"] == pytest.approx(
        _metrics(tmp_path / "run_one")[-1]["val_loss"], rel=1e-5, abs=1e-5)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("cell", ["lstm", "minlstm"])
def test_cuda_training_and_cpu_loading(tmp_path, tiny_corpus, precision, cell):
    import textrnn

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    run = textrnn.train(tiny_corpus, out=tmp_path / "gpu", device="cuda", precision=precision, max_steps=20,
                        hidden=64, embed=16, batch_size=8, seq_len=32, eval_every=10, cell=cell)
    assert run.best["val_loss"] < 5.0
    lm = textrnn.load(run.path, device="cpu")  # trained on GPU, used on CPU
    assert len(lm.generate("Th", length=20, seed=1)) == 20  # the continuation only
    resumed = textrnn.train(tiny_corpus, out=tmp_path / "gpu", device="cpu", max_steps=30, resume=True)
    assert resumed.steps == 30  # and the other way round: resumed on the CPU


@cuda
def test_cuda_checkpoints_of_a_two_layer_lstm_with_weight_drop(tmp_path, tiny_corpus):
    """On CUDA an nn.LSTM's weights are views into one flat cuDNN buffer: saving and loading them
    (the best weights, last/, a resume on the GPU) must not trip over the shared storage."""
    import textrnn

    opts = dict(layers=2, hidden=32, embed=16, weight_drop=0.2, batch_size=8, seq_len=32, eval_every=5,
                save_every=5, tie_weights=True)
    run = textrnn.train(tiny_corpus, out=tmp_path / "gpu", device="cuda", max_steps=10, **opts)
    resumed = textrnn.train(tiny_corpus, out=tmp_path / "gpu", device="cuda", max_steps=15, resume=True)
    assert resumed.steps == 15 and run.best is not None
    gpu = textrnn.load(run.path, device="cuda").generate("Th", length=20, greedy=True)
    assert gpu == textrnn.load(run.path, device="cpu").generate("Th", length=20, greedy=True)


@cuda
def test_cuda_generation_matches_cpu(tmp_path, tiny_corpus):
    import textrnn

    run = textrnn.train(tiny_corpus, out=tmp_path / "r", device="cpu", max_steps=10, hidden=32, embed=16,
                        batch_size=4, seq_len=16)
    cpu = textrnn.load(run.path, device="cpu").generate("Th", length=30, greedy=True)
    gpu = textrnn.load(run.path, device="cuda").generate("Th", length=30, greedy=True)
    assert cpu == gpu
