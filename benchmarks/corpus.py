"""Preparing a corpus larger than comfortable: speed and peak memory.

Builds a synthetic multilingual corpus (English ASCII, accented Latin, Chinese, emoji; 1 GB
by default) in a temporary folder, then, each in a fresh process so peak RSS is that
stage's own:

1. prepares it for the char tokenizer (hash, vocabulary pass, encoding to a uint16 token
   file) and prints MB/s and peak RSS;
2. prepares it again (the cache is keyed by content: this should take about no time);
3. trains a language model on the prepared token file for a few steps (the default
   1x512 LSTM), so peak RSS covers preparing *and* training;
4. prepares it for BPE (streamed tokenizer training + encoding) and prints MB/s and RSS.

Bars (issue 5): char preparation >= 50 MB/s; peak RSS < 2 GB in every stage.

    python benchmarks/corpus.py                 # 1 GB, all stages (~5 minutes on 2 cores)
    python benchmarks/corpus.py --size-mb 100 --skip-bpe
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

ENGLISH = ("the quick brown fox jumps over lazy dog and then some more words appear in this sentence "
           "while language models learn to predict what comes next from the text they read").split()
ACCENTED = ("café déjà vu naïve façade crème brûlée über Straße Müller señor mañana corazón "
            "élève où à garçon jalapeño smörgåsbord Ærø").split()
CHINESE = [chr(c) for c in range(0x4E00, 0x4E00 + 2500)]
EMOJI = [chr(c) for c in list(range(0x1F600, 0x1F650)) + list(range(0x1F680, 0x1F6C0))]


def make_lines(rng: np.random.Generator, n: int) -> list[str]:
    lines = []
    for kind in rng.integers(0, 10, n):
        if kind < 5:  # half the lines plain English
            words = rng.choice(ENGLISH, rng.integers(5, 15))
        elif kind < 7:
            words = rng.choice(ENGLISH + ACCENTED, rng.integers(5, 15))
        elif kind < 9:
            words = ["".join(rng.choice(CHINESE, rng.integers(2, 6))) for _ in range(rng.integers(3, 8))]
        else:
            words = list(rng.choice(ENGLISH, rng.integers(3, 8))) + list(rng.choice(EMOJI, 2))
        lines.append(" ".join(words) + "\n")
    return lines


def build_corpus(path: Path, size: int, seed: int = 0) -> None:
    """About ``size`` bytes of whole lines, drawn from a pool of random lines in shuffled orders."""
    rng = np.random.default_rng(seed)
    pool = make_lines(rng, 100_000)  # about 6 MB of distinct lines
    written = 0
    with open(path, "wb") as f:
        while written < size:
            block = "".join(pool[i] for i in rng.permutation(len(pool))).encode("utf-8")
            if written + len(block) > size:
                block = block[: block.rfind(b"\n", 0, size - written) + 1]
                if not block:
                    break
            f.write(block)
            written += len(block)


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from textrnn.data.cache import prepare
args = json.loads(sys.argv[1])
t = time.perf_counter()
data = prepare([args["corpus"]], cache_dir=Path(args["cache"]), kind=args["kind"], vocab_size=args.get("vocab"))
prep_s = time.perf_counter() - t
out = {"prepare_s": prep_s, "meta": {k: v for k, v in data.meta.items() if k != "files"}}
if args.get("train_steps"):
    from textrnn.training.lm import train_language_model
    t = time.perf_counter()
    run = train_language_model([args["corpus"]], out=args["run"], cache_dir=args["cache"],
                               max_steps=args["train_steps"], eval_every=10**9, force=True)
    out["train_s"] = time.perf_counter() - t
    out["train_steps"] = run.steps
    out["val_loss"] = run.best["val_loss"]
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def child(**args) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                         cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"stage failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--skip-bpe", action="store_true")
    ap.add_argument("--dir", help="work folder [a new temporary one, deleted at the end]")
    args = ap.parse_args()

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="textrnn-corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus = work / "corpus.txt"
        t = time.perf_counter()
        build_corpus(corpus, args.size_mb << 20)
        mb = corpus.stat().st_size / 1e6
        print(f"corpus: {mb:,.0f} MB synthetic multilingual text (ASCII, accented, Chinese, emoji), "
              f"built in {time.perf_counter() - t:.0f}s", flush=True)
        rss = []

        first = child(corpus=str(corpus), cache=str(work / "cache"), kind="char")
        m = first["meta"]
        rss.append(first["peak_rss_mb"])
        rate = mb / first["prepare_s"]
        print(f"char prepare (hash + vocabulary + encode to {m['dtype']}): {first['prepare_s']:.1f}s = "
              f"{rate:,.0f} MB/s; {m['train_tokens'] + m['val_tokens']:,} tokens; "
              f"peak RSS {first['peak_rss_mb']:,.0f} MB   [bar >= 50 MB/s: {'PASS' if rate >= 50 else 'FAIL'}]",
              flush=True)
        again = child(corpus=str(corpus), cache=str(work / "cache"), kind="char")
        print(f"char prepare again (cache hit: {again['meta']['reused']}): {again['prepare_s']:.2f}s; "
              f"peak RSS {again['peak_rss_mb']:,.0f} MB", flush=True)
        if args.train_steps:
            tr = child(corpus=str(corpus), cache=str(work / "cache"), kind="char", run=str(work / "run"),
                       train_steps=args.train_steps)
            rss.append(tr["peak_rss_mb"])
            print(f"prepare (cached) + train {tr['train_steps']} steps (1x512 LSTM, batch 32 x 128) + final eval "
                  f"on the 2 MB validation part: {tr['train_s']:.0f}s, val loss {tr['val_loss']:.3f}; "
                  f"peak RSS {tr['peak_rss_mb']:,.0f} MB", flush=True)
        if not args.skip_bpe:
            bpe = child(corpus=str(corpus), cache=str(work / "cache"), kind="bpe", vocab=4096)
            m = bpe["meta"]
            rss.append(bpe["peak_rss_mb"])
            print(f"bpe prepare (hash cached; streamed BPE training, 4096 merges + encode): {bpe['prepare_s']:.0f}s = "
                  f"{mb / bpe['prepare_s']:,.1f} MB/s; {m['train_tokens'] + m['val_tokens']:,} tokens; "
                  f"peak RSS {bpe['peak_rss_mb']:,.0f} MB", flush=True)
        worst = max(rss)
        print(f"peak RSS, worst stage: {worst:,.0f} MB   [bar < 2048 MB: {'PASS' if worst < 2048 else 'FAIL'}]")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
