"""Classifier bars: SST-2 test accuracy and ``textrnn classify`` throughput.

    python benchmarks/classify.py                          # the shipped checkpoints/sst2
    python benchmarks/classify.py --checkpoint DIR [--data FILE.tsv]
    python benchmarks/classify.py --previous REV [--pairs 5]   # side by side with commit REV

Scores the classifier, then times (in a fresh process) what ``textrnn classify`` does after start-up (read the
table, encode, batched inference, label every row; with the process settings the command
applies first, :func:`textrnn.process.configure_process`: its malloc tuning speeds up the
large temporary buffers of inference too) over the whole SST-2 test set (1,821
sentences), best of 3. Also times the whole ``textrnn classify`` process once, for scale, and
scores the model out of its domain on ../shared/data/uci-yelp (1,000 restaurant-review
sentences; never training data) where that is present.

With ``--previous REV`` it then times REV's code and REV's shipped checkpoints/sst2 (checked out
in a temporary git worktree) against this tree's, each in a fresh process, in turn A B A B for
``--pairs`` pairs, and prints each pair's sentences/s and their ratio: the side-by-side the
throughput bar asks for, taken in one run so that the machine's drift cancels pair by pair.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "sst2" / "test.tsv"
TEST = SHARED if SHARED.exists() else ROOT / "corpora" / "sst2" / "test.tsv"
YELP = ROOT.parent / "shared" / "data" / "uci-yelp" / "yelp.csv"

# Times a tree's classify path in a fresh process: only API calls that every version has.
TIMING = """
import sys, time
import textrnn
from textrnn.data.labels import detect_text_column
from textrnn.data.tables import read_table
from textrnn.process import configure_process
configure_process()  # as the textrnn command does before any command runs
checkpoint, data, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
clf = textrnn.load(checkpoint, task="classify")
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter()
    table = read_table(data)
    texts = table.values(detect_text_column(table))
    labels = clf.predict_proba(texts).argmax(axis=1)
    best = min(best, time.perf_counter() - t)
print(len(texts) / best)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "sst2")
    ap.add_argument("--data", type=Path, default=TEST)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--previous", help="a git revision to compare with, side by side (its code, its checkpoints/sst2)")
    ap.add_argument("--pairs", type=int, default=5, help="with --previous: A B pairs to time")
    args = ap.parse_args()

    import textrnn
    from textrnn.data.labels import detect_text_column
    from textrnn.data.tables import read_table

    clf = textrnn.load(args.checkpoint, task="classify")
    table = read_table(args.data)
    texts = table.values(detect_text_column(table))
    labels = clf.classify(texts)
    acc, right = accuracy(table, labels, clf)
    n = len(texts)
    print(f"checkpoint: {args.checkpoint}")
    print(f"data: {args.data} ({n:,} sentences)")
    print(f"accuracy: {acc:.2%} ({right}/{n})")
    if YELP.exists():
        yelp = read_table(YELP)
        yelp_acc, yelp_right = accuracy(yelp, clf.classify(yelp.values(detect_text_column(yelp))), clf)
        print(f"out of domain, {YELP.parent.name} ({len(yelp.rows):,} sentences): {yelp_acc:.2%} ({yelp_right})")
    per_s = rate(ROOT, args.checkpoint, args.data, args.repeats)
    print(f"classify throughput (read + encode + infer, start-up excluded, best of {args.repeats}): "
          f"{per_s:,.0f} sentences/s ({n / per_s * 1000:.0f} ms)")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "textrnn", "classify", str(args.data), "-c", str(args.checkpoint)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"whole `textrnn classify` process, start-up included: {time.perf_counter() - t:.2f} s")
    print("bar 1 (accuracy >= 85.5%):", "PASS" if acc >= 0.855 else "FAIL")
    print("bar 2 (>= 2,000 sentences/s):", "PASS" if per_s >= 2000 else "FAIL")
    if args.previous:
        side_by_side(args)


def rate(root: Path, checkpoint: Path, data: Path, repeats: int) -> float:
    """Sentences/s of the tree at ``root`` classifying ``data`` with ``checkpoint`` (:data:`TIMING`, fresh process)."""
    out = subprocess.run([sys.executable, "-c", TIMING, str(checkpoint), str(data), str(repeats)],
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def side_by_side(args) -> None:
    """Time ``args.previous`` (A) and this tree (B) in turn, ``args.pairs`` times, and print the ratios."""
    with tempfile.TemporaryDirectory(prefix="textrnn-previous-") as work:
        previous = Path(work) / "previous"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(previous), args.previous],
                       check=True, capture_output=True)
        try:
            ratios = []
            print(f"side by side: {args.previous} (A), this tree (B): sentences/s, best of {args.repeats} each")
            for pair in range(args.pairs):
                a = rate(previous, previous / "checkpoints" / "sst2", args.data, args.repeats)
                b = rate(ROOT, args.checkpoint, args.data, args.repeats)
                ratios.append(b / a)
                print(f"  pair {pair + 1}: A {a:,.0f}  B {b:,.0f}  B/A {b / a:.2f}", flush=True)
            print(f"B/A median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(previous)],
                           capture_output=True)


def accuracy(table, predicted, clf) -> tuple[float, int]:
    """Share (and count) of ``predicted`` labels (or ``(label, p)`` pairs) equal to the table's gold ones (matched
    with ``clf``'s labels by name or alias: the shipped sst2's 0 / 1 are negative / positive)."""
    from textrnn.data.labels import detect_label_column, match_labels

    gold = match_labels(table.values(detect_label_column(table)), clf.labels, clf.label_aliases)
    picked = match_labels([p[0] if isinstance(p, tuple) else p for p in predicted], clf.labels)
    right = sum(p == g is not None for p, g in zip(picked, gold))
    return right / len(gold), right


if __name__ == "__main__":
    main()
