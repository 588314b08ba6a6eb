"""Does fine-tuning the shipped language model pay on a small corpus it never saw?

    python benchmarks/fine_tune.py [--seconds 60] [--corpus yelp python]

For each small corpus (train text / held-out test text, neither in the shipped model's data):

- ``yelp``: the 1,000 UCI Yelp review sentences (``../shared/data/uci-yelp``; 62 KB), the first
  900 to train on, the last 100 to test on: short restaurant reviews, a kind of text the shipped
  model (Shakespeare, Wikipedia, movie-review sentences) has not seen;
- ``python``: Python source, far from any of its training text: this interpreter's
  ``argparse.py`` (about 100 KB) to train on, ``getopt.py`` and ``shlex.py`` to test on.

three models are scored on the test text with ``textrnn evaluate`` (nats per character):

- ``shipped``: english-char as it is (no training);
- ``scratch``: ``textrnn train train.txt --max-time S`` (the defaults: the fit chooses);
- ``fine-tuned``: ``textrnn train train.txt --init-from english-char --max-time S``.

Each training run is a whole process with the same budget, one after the other (never two at once).
Bar (issue 11): fine-tuned at least 0.15 nats/char below scratch.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def corpora(work: Path) -> dict[str, tuple[Path, Path]]:
    with open(DATA / "uci-yelp" / "yelp.csv", encoding="utf-8", newline="") as f:
        reviews = [row["text"] for row in csv.DictReader(f)]
    lib = Path(sysconfig.get_paths()["stdlib"])
    texts = {"yelp": ("\n".join(reviews[:900]) + "\n", "\n".join(reviews[900:]) + "\n"),
             "python": ((lib / "argparse.py").read_text(encoding="utf-8"),
                        "".join((lib / f).read_text(encoding="utf-8") for f in ("getopt.py", "shlex.py")))}
    out = {}
    for name, (train, test) in texts.items():
        out[name] = (work / f"{name}.train.txt", work / f"{name}.test.txt")
        out[name][0].write_text(train, encoding="utf-8")
        out[name][1].write_text(test, encoding="utf-8")
    return out


def textrnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textrnn", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, env={**os.environ, "COLUMNS": "120"})


def score(run: str, test: Path) -> float:
    res = textrnn("evaluate", "-c", run, str(test), "--format", "json")
    if res.returncode:
        raise SystemExit(f"evaluate {run}: {res.stderr.strip()}")
    return json.loads(res.stdout)["files"][0]["bits_per_char"] * math.log(2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--corpus", nargs="*", default=["yelp", "python"])
    args = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python "
          f"{platform.python_version()}; {args.seconds} s a run")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (train, test) in corpora(work).items():
            if name not in args.corpus:
                continue
            print(f"\n{name}: train {train.stat().st_size:,} bytes, test {test.stat().st_size:,} bytes")
            print(f"  {'model':<11} {'test nats/char':>14} {'steps':>6} {'seconds':>8}")
            print(f"  {'shipped':<11} {score('english-char', test):>14.4f}")
            results = {}
            for label, extra in (("scratch", []), ("fine-tuned", ["--init-from", "english-char"])):
                run = str(work / f"{name}-{label}")
                start = time.perf_counter()
                res = textrnn("train", str(train), "--out", run, "--max-time", f"{args.seconds}s", *extra)
                took = time.perf_counter() - start
                if res.returncode:
                    raise SystemExit(f"train {label}: {res.stderr.strip() or res.stdout[-2000:]}")
                steps = json.loads(Path(run, "metrics.jsonl").read_text().splitlines()[-1])["step"]
                results[label] = score(run, test)
                print(f"  {label:<11} {results[label]:>14.4f} {steps:>6} {took:>8.1f}")
            gain = results["scratch"] - results["fine-tuned"]
            print(f"  fine-tuned is {gain:.4f} nats/char below scratch (bar: >= 0.15): "
                  f"{'met' if gain >= 0.15 else 'NOT met'}")


if __name__ == "__main__":
    main()
