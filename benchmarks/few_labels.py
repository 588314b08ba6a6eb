"""How far a few labelled rows of the user's own domain go: the learning curve on Yelp sentences.

    python benchmarks/few_labels.py                         # k = 25 50 100 200 400, 5 seeds, every contender
    python benchmarks/few_labels.py --k 200 --seeds 3 --contenders b
    python benchmarks/few_labels.py --data my.csv --k 50 100   # another labelled table (text,label)

For each k and seed, k rows of ../shared/data/uci-yelp/yelp.csv (1,000 restaurant-review sentences,
500 / 500; a development set, never shipped) are drawn at random (both labels present), and every
contender is scored on the other 1000 - k rows:

    a  the shipped classifier (sst2) as it is
    b  fine-tuned from the shipped classifier on the k rows (textrnn train --task classify --init-from sst2:
       its defaults for a few hundred rows)
    c  from the shipped language model (english-char; ULMFiT: its encoder, a new head), on the k rows
    d  from scratch on the k rows (the classifier's own defaults, with the few-rows schedule of b)
    e  TF-IDF (words, 1-2 grams) + logistic regression trained on SST-2 train plus the k rows (the
       baseline a practitioner would write; needs scikit-learn: pip install -e .[bench])

c and d get b's schedule (batch, learning rate, epochs, early stopping on a fifth of the k rows) so that
only the starting point differs. Prints one row per k and contender: mean accuracy, its spread (sample
standard deviation over the seeds), macro-F1, and training seconds (mean) on this machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import textrnn  # noqa: E402
from textrnn.config import default  # noqa: E402
from textrnn.data.labels import label_key  # noqa: E402
from textrnn.inference.classify import evaluate  # noqa: E402

YELP = ROOT.parent / "shared" / "data" / "uci-yelp" / "yelp.csv"
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
CONTENDERS = {"a": "shipped sst2 as is", "b": "fine-tuned from sst2", "c": "from english-char (ULMFiT)",
              "d": "from scratch", "e": "TF-IDF + LR (SST-2 + k rows)"}
SCHEDULE = ("batch_size", "lr", "warmup_steps", "epochs", "eval_every", "patience", "val_fraction")
"""b's defaults that c and d are given too (the few-rows schedule), read from the declarations."""


def read_rows(path: Path) -> list[tuple[str, int]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], int(r["label"])) for r in csv.DictReader(f)]


def draw(rows: list, k: int, seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(rows))
        picked = [rows[i] for i in order[:k]]
        if len({label for _, label in picked}) > 1:
            return picked, [rows[i] for i in order[k:]]


def write_csv(path: Path, rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)


def score(clf: textrnn.Trained, rest: list) -> dict:
    probs = clf.predict_proba([t for t, _ in rest])  # (N, C)
    names = [label_key(n) for n in clf.labels]
    aliases = getattr(clf.run, "label_aliases", None) or {}
    key = {label_key(a): label_key(n) for a, n in aliases.items()}
    gold = [names.index(key.get(label, label)) for _, label in rest]
    m = evaluate(gold, probs.argmax(axis=1), names)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def train_on(rows: list, tmp: Path, init_from, options: dict) -> tuple[textrnn.Trained, float]:
    write_csv(tmp / "k.csv", rows)
    t = time.perf_counter()
    result = textrnn.train_classifier(tmp / "k.csv", out=tmp / "run", force=True, init_from=init_from,
                                      report_every=10_000, **options)
    return textrnn.load(result.path, task="classify"), time.perf_counter() - t


class TfidfBaseline:
    """TF-IDF (1-2 grams) + logistic regression on SST-2 train plus the k rows."""

    def __init__(self) -> None:
        with open(SST2, encoding="utf-8") as f:
            lines = f.read().splitlines()[1:]
        self.base = [(line.split("\t", 1)[1], int(line.split("\t", 1)[0])) for line in lines]

    def run(self, rows: list, rest: list) -> tuple[dict, float]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        t = time.perf_counter()
        data = self.base + rows
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x = vec.fit_transform([t for t, _ in data])
        model = LogisticRegression(C=4.0, max_iter=2000).fit(x, [label for _, label in data])
        seconds = time.perf_counter() - t
        predicted = model.predict(vec.transform([t for t, _ in rest]))
        m = evaluate([label for _, label in rest], predicted, [0, 1])
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=YELP)
    ap.add_argument("--k", type=int, nargs="+", default=[25, 50, 100, 200, 400])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--contenders", default="abcde")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a training option for b, c and d (JSON value), e.g. lr=0.002")
    ap.add_argument("--json", type=Path, help="also write every run's scores here")
    args = ap.parse_args()
    import torch

    rows = read_rows(args.data)
    extra = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    schedule = {name: default(name, "adapt") for name in SCHEDULE}
    shipped = textrnn.load("sst2", task="classify")
    tfidf = TfidfBaseline() if "e" in args.contenders else None
    print(f"# {args.data.name}: {len(rows)} rows; machine: {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; options {extra or 'defaults'}", flush=True)
    results: dict = {}
    for k in args.k:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            picked, rest = draw(rows, k, seed)
            for c in args.contenders:
                with tempfile.TemporaryDirectory() as tmp:
                    if c == "a":
                        m, s = score(shipped, rest), 0.0
                    elif c == "b":
                        clf, s = train_on(picked, Path(tmp), "sst2", extra)
                        m = score(clf, rest)
                    elif c == "c":
                        clf, s = train_on(picked, Path(tmp), "english-char", {**schedule, **extra})
                        m = score(clf, rest)
                    elif c == "d":
                        clf, s = train_on(picked, Path(tmp), None, {**schedule, **extra})
                        m = score(clf, rest)
                    else:
                        m, s = tfidf.run(picked, rest)
                results.setdefault((k, c), []).append({**m, "seconds": round(s, 1), "seed": seed})
                print(f"k={k} seed={seed} {c}: accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} "
                      f"({s:.1f}s)", flush=True)
    print("\n| k | contender | accuracy (mean +- sd) | macro-F1 | training s (mean) |")
    print("|---|---|---|---|---|")
    for (k, c), runs in results.items():
        acc = [r["accuracy"] for r in runs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        f1, seconds = statistics.mean(r["macro_f1"] for r in runs), statistics.mean(r["seconds"] for r in runs)
        print(f"| {k} | {c}: {CONTENDERS[c]} | {statistics.mean(acc):.2%} +- {sd:.2%} | {f1:.4f} | {seconds:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({f"{k} {c}": v for (k, c), v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
