"""Does a language model conditioned on a label write text of that label?

    python benchmarks/conditional.py [--minutes 10] [--samples 200] [--run DIR]

Trains one character model on SST-2's training rows conditioned on their sentiment
(``textrnn train corpora/sst2/train.tsv --condition-column label --max-time 10m``, from scratch or
``--init-from english-char``; skipped with ``--run`` of an existing run), samples ``--samples``
texts per label (``generate --condition``, temperature 0.8, each cut at its first line end: one
row), labels every sample with the shipped sentiment classifier (checkpoints/sst2) and prints, per
label, the share of samples it puts in the label they were conditioned on (chance: 50%).
Bar (issue 11): at least 80% over both labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"0": "negative", "1": "positive"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--length", type=int, default=300, help="tokens sampled (then cut at the first line end)")
    p.add_argument("--temperature", type=float, nargs="+", default=[0.8], help="one result per temperature")
    p.add_argument("--out", type=Path, help="keep the trained run here (default: a temporary directory)")
    p.add_argument("--run", type=Path, help="an existing conditioned run (no training)")
    p.add_argument("--init-from", help="start from this language model (e.g. english-char)")
    p.add_argument("--tokenizer", default="word", help="word (default) or char")
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or args.out or Path(tmp) / "sst2-conditioned"
        if args.run is None:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "textrnn", "train", "corpora/sst2/train.tsv", "--condition-column",
                            "label", "--max-time", f"{args.minutes}m", "--out", str(run), "--tokenizer", args.tokenizer,
                            *(["--init-from", args.init_from] if args.init_from else [])], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            print(f"trained {run} in {time.perf_counter() - start:.0f} s: "
                  f"best val loss {json.loads((run / 'metrics.jsonl').read_text().splitlines()[-1])['val_loss']:.4f}")
        import textrnn
        from textrnn.data.labels import match_labels

        lm, clf = textrnn.load(run), textrnn.load("sst2")
        for temperature in args.temperature:
            total_right = 0
            for label in lm.conditions:
                want = clf.labels[match_labels([label], clf.labels, clf.label_aliases)[0]]
                records = lm.generate_many("", args.length, num_samples=args.samples, condition=label, seed=1,
                                           temperature=temperature)
                texts = [r["text"].strip().split("\n")[0].strip() or r["text"].strip() for r in records]
                right = sum(p == want for p, _ in clf.classify(texts))  # (sst2's names; its aliases are 0 / 1)
                total_right += right
                name = NAMES.get(label, label)
                print(f"temperature {temperature}, condition {label} ({name}): {right}/{len(texts)} = "
                      f"{right / len(texts):.1%} classified {name}; e.g. {texts[0][:80]!r} | {texts[1][:80]!r}")
            share = total_right / (args.samples * len(lm.conditions))
            print(f"temperature {temperature}: {share:.1%} of the samples get the label they were conditioned on "
                  f"(bar: >= 80%): {'met' if share >= 0.8 else 'NOT met'}")


if __name__ == "__main__":
    main()
