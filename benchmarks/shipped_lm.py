"""The recipe of the shipped language model, ``checkpoints/english-char``.

    python benchmarks/shipped_lm.py build DIR          # the corpus: DIR/train.txt, DIR/val.txt
    python benchmarks/shipped_lm.py train DIR RUN      # train on it (a GPU: 3 minutes)
    textrnn export RUN checkpoints/english-char --half

The corpus is all the English text the repository can ship or read, and none of the
benchmarks' test text (corpora/README.md has its provenance):

- tiny-shakespeare (``corpora/tinyshakespeare.txt``), as it is;
- WikiText-2's validation split (``../shared/data/wikitext-2/valid.txt``; its test split is
  kept out), detokenized (``the man , who`` -> ``the man, who``; ``@-@`` -> ``-``), headings
  and sentences holding more than one ``<unk>`` dropped (a single one is removed);
- the SST-2 training sentences (``corpora/sst2/train.tsv``; dev and test are kept out): the
  67,349 rows are phrases of about 6,900 sentences, so only rows that are not part of a
  longer row are kept, detokenized.

The last 5% of each source (by lines) is the validation text, so the best weights are the
best on all three kinds of text. The model is a character model (it fine-tunes on any
text: ``textrnn train my.txt --init-from english-char``), 2x512 LSTM, small enough to ship
as float16 (about 7 MB).
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT / "corpora" / "tinyshakespeare.txt"
SST2_TRAIN = ROOT / "corpora" / "sst2" / "train.tsv"
WIKITEXT_VALID = ROOT.parent / "shared" / "data" / "wikitext-2" / "valid.txt"
VAL_SHARE = 0.05

RECIPE = ["--layers", "2", "--hidden", "512", "--embed", "64", "--input-dropout", "0.1", "--output-dropout", "0.25",
          "--weight-drop", "0.2", "--batch-size", "128", "--seq-len", "256", "--lr", "4e-3", "--warmup-steps", "200",
          "--eval-every", "250", "--save-every", "250", "--max-time", "3m"]

_DETOKENIZE = [
    (re.compile(r" @(.)@ "), r"\1"),                       # WikiText's split numbers and hyphens: 1 @,@ 000
    (re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m)\b"), r"\1"),  # do n't -> don't
    (re.compile(r" ([,.;:!?%)\]])"), r"\1"),
    (re.compile(r"([(\[$]) "), r"\1"),
    (re.compile(r"` (.*?) '"), r"'\1'"),                    # SST's ` quoted '
    (re.compile(r'" (.*?) "'), r'"\1"'),
    (re.compile(r"-lrb- ?"), "("), (re.compile(r" ?-rrb-"), ")"),
    (re.compile(r"  +"), " "),
]


def detokenize(line: str) -> str:
    for pattern, repl in _DETOKENIZE:
        line = pattern.sub(repl, line)
    return line.strip()


def wikitext_lines(path: Path) -> list[str]:
    """Paragraphs, detokenized, without headings and the sentences that hold more than one <unk>."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("="):
            continue
        sentences = [re.sub(r" ?<unk>", "", s) for s in re.split(r"(?<= \.) ", raw) if s.count("<unk>") <= 1]
        if sentences:
            out.append(detokenize(" ".join(sentences)))
    return out


def sst2_sentences(path: Path) -> list[str]:
    """The SST-2 training rows that are not a word span of a longer row (the whole sentences)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r[1] for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][1:]
    inside = set()
    for row in rows:
        words = row.split()
        n = len(words)
        for i in range(n):
            for j in range(i + 1, n + 1):
                if j - i < n:
                    inside.add(" ".join(words[i:j]))
    seen, out = set(), []
    for row in rows:
        if row not in inside and row not in seen:
            seen.add(row)
            out.append(detokenize(row))
    return out


def build(dest: Path) -> None:
    sources = {
        "tiny-shakespeare": SHAKESPEARE.read_text(encoding="utf-8").splitlines(),
        "WikiText-2 valid": wikitext_lines(WIKITEXT_VALID),
        "SST-2 train sentences": sst2_sentences(SST2_TRAIN),
    }
    dest.mkdir(parents=True, exist_ok=True)
    train, val = [], []
    for name, lines in sources.items():
        cut = int(len(lines) * (1 - VAL_SHARE))
        train.append("\n".join(lines[:cut]) + "\n")
        val.append("\n".join(lines[cut:]) + "\n")
        print(f"{name}: {len(lines):,} lines, {sum(map(len, lines)) + len(lines):,} chars")
    (dest / "train.txt").write_text("\n".join(train), encoding="utf-8")
    (dest / "val.txt").write_text("\n".join(val), encoding="utf-8")
    for f in ("train.txt", "val.txt"):
        text = (dest / f).read_text(encoding="utf-8")
        print(f"{dest / f}: {len(text):,} chars, {len(set(text))} distinct")


def train(data: Path, run: Path, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "textrnn", "train", str(data / "train.txt"), "--val-file", str(data / "val.txt"),
           "--out", str(run), "--force", *RECIPE, *extra]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("build", help="write the corpus")
    b.add_argument("dir", type=Path)
    t = sub.add_parser("train", help="train on a built corpus (extra textrnn train options after --)")
    t.add_argument("dir", type=Path)
    t.add_argument("run", type=Path)
    t.add_argument("extra", nargs="*")
    args = p.parse_args()
    if args.what == "build":
        build(args.dir)
    else:
        train(args.dir, args.run, args.extra)


if __name__ == "__main__":
    main()
