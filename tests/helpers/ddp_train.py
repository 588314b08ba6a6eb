"""Run under torchrun (or alone): train a tiny LM and record, per rank, which windows it
trained on and which checkpoint writes it made. Used by tests/test_distributed.py."""

import json
import os
import sys

import textrnn.checkpoint as checkpoint
import textrnn.training.lm as pipeline
from textrnn.training.tasks import LMTask

corpus, out, log_dir, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
rank = int(os.environ.get("RANK", "0"))
log = {"windows": [], "writes": []}

original_loss = LMTask.loss


def recording_loss(self, model, batch):
    log["windows"].append(batch[:, 0].tolist())  # first token of each stream in this window
    return original_loss(self, model, batch)


def recording(name, fn):
    def wrapper(*args, **kwargs):
        log["writes"].append(name)
        return fn(*args, **kwargs)
    return wrapper


LMTask.loss = recording_loss
checkpoint.save_last = recording("save_last", checkpoint.save_last)
checkpoint.save_weights = recording("save_weights", checkpoint.save_weights)
checkpoint.write_run_files = recording("write_run_files", checkpoint.write_run_files)
options = {"hidden": 32, "embed": 16, "seq_len": 16, "dropout": 0.0, "warmup_steps": 2, "device": "cpu",
           "max_steps": 8, "eval_every": 4, **extra}
result = pipeline.train_language_model([corpus], out=out, batch_size=batch_size, **options)
with open(os.path.join(log_dir, f"rank{rank}.json"), "w") as f:
    json.dump({**log, "steps": result.steps, "best": result.best}, f)
