"""Language-model bars: quality per CPU-minute, training speed and sampling speed.

    python benchmarks/lm.py                 # train 5 minutes with the defaults, then sample
    python benchmarks/lm.py --checkpoint checkpoints/tinyshakespeare   # sample only

Trains ``textrnn train`` with its defaults and ``--max-time`` on tiny-shakespeare (the
standard split: last 10% is validation), then runs ``textrnn generate`` for 20,000
characters in one stream and times the characters as they arrive on the pipe (from the
first one, so start-up is excluded). Prints one line per number.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
CORPUS = SHARED if SHARED.exists() else ROOT / "corpora" / "tinyshakespeare.txt"


def train(out: Path, max_time: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "textrnn", "train", str(CORPUS), "--out", str(out), "--force",
           "--max-time", max_time, *extra]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"wall_s": wall, "final": metrics[-1], "best": min(metrics, key=lambda m: m["val_loss"]),
            "evals": metrics}


def sample_speed(checkpoint: Path, chars: int) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "textrnn", "generate", "--checkpoint", str(checkpoint),
           "--length", str(chars), "--temp", "0.8", "--seed", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    first = None
    received = b""
    while True:
        block = proc.stdout.read1(65536)
        if not block:
            break
        if first is None:
            first = time.perf_counter()
            first_len = len(block.decode("utf-8", "ignore"))
        received += block
    end = time.perf_counter()
    proc.wait()
    n = len(received.decode("utf-8").rstrip("\n"))
    # characters after the first block arrived, over the time after it arrived
    return (n - first_len) / (end - first), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-time", default="5m")
    ap.add_argument("--checkpoint", type=Path, help="skip training; sample from this run")
    ap.add_argument("--chars", type=int, default=20_000)
    ap.add_argument("extra", nargs="*", help="extra `textrnn train` options (after --)")
    args = ap.parse_args()

    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = Path(tempfile.mkdtemp(prefix="textrnn-bench-")) / "run"
        r = train(ckpt, args.max_time, args.extra)
        f, b = r["final"], r["best"]
        print(f"corpus: {CORPUS}")
        print(f"train wall time (whole process): {r['wall_s']:.1f} s (--max-time {args.max_time})")
        print(f"train steps: {f['step']}, epochs: {f['epoch']}")
        print(f"train tokens/s (last window): {f['tokens_per_s']:,.0f}")
        print(f"val loss, best: {b['val_loss']:.4f} nats/char (bpc {b['val_bpc']:.4f}) at step {b['step']}")
        print(f"val loss, final: {f['val_loss']:.4f} nats/char")
        print("bar 1 (val loss <= 1.50):", "PASS" if b["val_loss"] <= 1.50 else "FAIL")
    speed, n = sample_speed(ckpt, args.chars)
    print(f"sampling: {speed:,.0f} chars/s in one stream over {n:,} chars (start-up excluded)")
    print("bar 2 (>= 5,000 chars/s):", "PASS" if speed >= 5000 else "FAIL")


if __name__ == "__main__":
    main()
