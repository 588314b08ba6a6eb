"""Language-model quality on corpora of several kinds: textrnn against its previous defaults and the plain recipe.

    python benchmarks/quality.py                       # every corpus, 5 minutes a run, 1 round
    python benchmarks/quality.py --corpus shakespeare --rounds 2 --previous 11f2262
    python benchmarks/quality.py --corpus sst2-small --contender textrnn   # one contender again
    python benchmarks/quality.py --corpus shakespeare --contender textrnn --variant "mingru=--cell mingru"

Corpora: shakespeare (first 90% / last 10%), wikitext2-char and wikitext2-word (valid.txt / test.txt),
sst2-table (SST-2 train as a table, its text column / the test sentences) and sst2-small (its first
5,600 rows, about 300 KB).

For each corpus (held-out test text never trained on), each contender trains for the same ``--max-time``
as a whole process on this machine, one after the other (never two at once), and is scored on the
test text: nats per character (bits per character) and the word-level perplexity (per whitespace word
plus one end-of-line per line), so that char, word and BPE models compare. Contenders:

- ``textrnn``: this tree's ``textrnn train`` with its defaults (``--tokenizer`` as the corpus asks);
- ``previous``: ``textrnn train`` of the commit ``--previous`` (a temporary git worktree), same options;
- ``plain``: benchmarks/plain_lm.py (pytorch/examples' recipe, char or word level);
- each ``--variant NAME=OPTIONS``: this tree's ``textrnn train`` with its defaults and those options
  (``--variant "swa=--average swa"``), compared with ``textrnn``.

textrnn runs are scored with this tree's ``textrnn evaluate --format json`` (checkpoints of the previous
commit load too). Prints one row per run and, per corpus, the ratios of the test losses (per character).
Reads ../shared/data (benchmarks may; tests never do).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SMALL_TABLE_ROWS = 5_600


def corpora(work: Path) -> dict[str, dict]:
    """name -> train file, test file, level (char | word), textrnn options."""
    shakespeare = (DATA / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    cut = shakespeare.rfind("\n", 0, int(len(shakespeare) * 0.9)) + 1  # the standard 90/10 split, at a line end
    (work / "shakespeare.train.txt").write_text(shakespeare[:cut], encoding="utf-8")
    (work / "shakespeare.test.txt").write_text(shakespeare[cut:], encoding="utf-8")
    tables = {}
    for split in ("train", "test"):  # the sentence column, for the plain recipe and as held-out text
        tables[split] = (DATA / "sst2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        sentences = [row.split("\t", 1)[1] for row in tables[split][1:]]  # (label<TAB>sentence)
        (work / f"sst2.{split}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    small = tables["train"][:SMALL_TABLE_ROWS + 1]  # a small table: SST-2 train's first rows (about 300 KB)
    (work / "sst2-small.train.tsv").write_text("\n".join(small) + "\n", encoding="utf-8")
    (work / "sst2-small.train.txt").write_text("\n".join(row.split("\t", 1)[1] for row in small[1:]) + "\n",
                                               encoding="utf-8")
    wiki = DATA / "wikitext-2"
    return {
        "shakespeare": dict(train=work / "shakespeare.train.txt", test=work / "shakespeare.test.txt", level="char"),
        "wikitext2-char": dict(train=wiki / "valid.txt", test=wiki / "test.txt", level="char"),
        "wikitext2-word": dict(train=wiki / "valid.txt", test=wiki / "test.txt", level="word"),
        "sst2-table": dict(train=DATA / "sst2" / "train.tsv", test=work / "sst2.test.txt", level="char",
                           plain_train=work / "sst2.train.txt"),
        "sst2-small": dict(train=work / "sst2-small.train.tsv", test=work / "sst2.test.txt", level="char",
                           plain_train=work / "sst2-small.train.txt"),
    }


def run(cmd: list[str], env_path: Path | None = None) -> tuple[str, float]:
    env = dict(os.environ)
    if env_path is not None:  # (and run there: `python -m` imports from the working directory first)
        env["PYTHONPATH"] = str(env_path)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=env_path)
    return out.stdout, time.perf_counter() - t


def textrnn_run(tree: Path, corpus: dict, max_time: str, out: Path, extra: Sequence[str] = ()) -> dict:
    opts = ["--tokenizer", "word"] if corpus["level"] == "word" else []
    opts += list(extra)
    if str(corpus["train"]).endswith(".tsv"):
        opts += ["--task", "lm"]
    _, wall = run([sys.executable, "-m", "textrnn", "train", str(corpus["train"]), "--out", str(out), "--force",
                   "--max-time", max_time, *opts], env_path=tree)
    stdout, _ = run([sys.executable, "-m", "textrnn", "evaluate", "--checkpoint", str(out), str(corpus["test"]),
                     "--format", "json"], env_path=ROOT)
    scores = json.loads(stdout)
    score = scores["files"][0]
    return {"nats_per_char": score["bits_per_char"] * math.log(2), "word_ppl": score["word_perplexity"],
            "wall_s": wall}


def plain_run(corpus: dict, max_time: str) -> dict:
    seconds = str(max_time).rstrip("s")
    seconds = float(seconds[:-1]) * 60 if seconds.endswith("m") else float(seconds)
    train = corpus.get("plain_train", corpus["train"])  # (a table: its text column)
    stdout, wall = run([sys.executable, str(ROOT / "benchmarks" / "plain_lm.py"), "--train", str(train),
                        "--test", str(corpus["test"]), "--level", corpus["level"], "--max-time", str(seconds)])
    r = json.loads(stdout.strip().splitlines()[-1])
    test_text = Path(corpus["test"]).read_text(encoding="utf-8")
    words = sum(len(line.split()) for line in test_text.splitlines()) + len(test_text.splitlines())
    nats_per_char = math.log(r["test_word_ppl"]) * words / len(test_text)
    return {"nats_per_char": nats_per_char, "word_ppl": r["test_word_ppl"], "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-time", default="5m")
    ap.add_argument("--rounds", type=int, default=1, help="run every comparison this many times")
    ap.add_argument("--corpus", action="append", help="only these corpora (repeatable)")
    ap.add_argument("--previous", default=None, help="git revision of the previous defaults (omit to skip)")
    ap.add_argument("--contender", action="append", choices=("textrnn", "previous", "plain"),
                    help="only these contenders (repeatable; default: all)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OPTIONS",
                    help="a further contender: textrnn train with these options (repeatable)")
    args = ap.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant)
    work = Path(tempfile.mkdtemp(prefix="textrnn-quality-"))
    all_corpora = corpora(work)
    names = args.corpus or list(all_corpora)
    previous = None
    if args.previous:
        previous = work / "previous"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(previous), args.previous],
                       check=True, capture_output=True)
    print(f"{'corpus':16} {'contender':10} {'round':>5} {'nats/char':>10} {'bpc':>7} {'word ppl':>10} {'wall s':>7}")
    try:
        for name in names:
            corpus, results = all_corpora[name], {}
            for r in range(args.rounds):
                contenders = {"textrnn": lambda: textrnn_run(ROOT, corpus, args.max_time, work / f"{name}-new")}
                if previous is not None:
                    contenders["previous"] = lambda: textrnn_run(previous, corpus, args.max_time, work / f"{name}-old")
                contenders["plain"] = lambda: plain_run(corpus, args.max_time)
                for label, options in variants.items():
                    contenders[label] = (lambda label=label, options=options: textrnn_run(
                        ROOT, corpus, args.max_time, work / f"{name}-{label}", shlex.split(options)))
                for who, fn in contenders.items():
                    if args.contender and who not in args.contender and who not in variants:
                        continue
                    res = fn()
                    results.setdefault(who, []).append(res["nats_per_char"])
                    print(f"{name:16} {who:10} {r + 1:>5} {res['nats_per_char']:>10.4f} "
                          f"{res['nats_per_char'] / math.log(2):>7.4f} {res['word_ppl']:>10.2f} {res['wall_s']:>7.0f}",
                          flush=True)
            new = sum(results["textrnn"]) / len(results["textrnn"])
            for who in results:
                other = sum(results[who]) / len(results[who])
                if who in variants:
                    print(f"{name:16} {who} test loss is {100 * (1 - other / new):.1f}% lower than textrnn")
                elif who != "textrnn":
                    print(f"{name:16} textrnn test loss is {100 * (1 - new / other):.1f}% lower than {who}")
    finally:
        if previous is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(previous)],
                           capture_output=True)


if __name__ == "__main__":
    main()
