"""Calibrate the shipped sentiment classifier: fit its temperature on SST-2 dev, report the calibration error.

    python benchmarks/calibrate.py                  # fit on corpora/sst2/dev.tsv, write into checkpoints/sst2
    python benchmarks/calibrate.py --dry-run        # report only, config.json untouched
    python benchmarks/calibrate.py --checkpoint DIR --fit-on FILE

Reads the classifier's logits (at temperature 1, whatever config.json holds) on SST-2 dev (the
rows the shipped run validated on, never trained on), SST-2 test (../shared/data/sst2, else
corpora/sst2) and, where present, ../shared/data/uci-yelp/yelp.csv (1,000 restaurant-review
sentences: out of the model's domain); fits one temperature on the ``--fit-on`` rows
(:func:`textrnn.inference.calibration.fit_temperature`) and prints, for each set, accuracy,
NLL and expected calibration error (15 equal-width bins of top-label confidence) before and
after. Then writes the temperature into the checkpoint's config.json (``"calibration"``). Bar:
ECE on SST-2 test at most 3%.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textrnn.api import load  # noqa: E402
from textrnn.data.labels import detect_label_column, detect_text_column, match_labels  # noqa: E402
from textrnn.data.tables import read_table  # noqa: E402
from textrnn.inference.calibration import (calibration_of, expected_calibration_error, nll,  # noqa: E402
                                           record_calibration, softmax)
from textrnn.inference.classify import encode_texts, predict_logits  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TEST = SHARED / "sst2" / "test.tsv" if (SHARED / "sst2" / "test.tsv").exists() else ROOT / "corpora/sst2/test.tsv"
YELP = SHARED / "uci-yelp" / "yelp.csv"


def labelled_logits(clf, path: Path):
    """The classifier's logits (N, C) at temperature 1 on the table ``path``, and its gold label indices (N,)."""
    table = read_table(path)
    gold = match_labels(table.values(detect_label_column(table)), clf.labels, clf.label_aliases)
    keep = [i for i, g in enumerate(gold) if g is not None]
    texts = [str(table.rows[i][detect_text_column(table)] or "") for i in keep]
    logits = predict_logits(clf.model, encode_texts(clf.tokenizer, texts, clf.run.train.max_len))
    return logits, [gold[i] for i in keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "sst2")
    ap.add_argument("--fit-on", type=Path, default=ROOT / "corpora" / "sst2" / "dev.tsv")
    ap.add_argument("--dry-run", action="store_true", help="report only; leave config.json as it is")
    args = ap.parse_args()

    clf = load(args.checkpoint, task="classify")
    sets = {"SST-2 dev (fitted on)" if args.fit_on.name == "dev.tsv" else f"{args.fit_on} (fitted on)": args.fit_on,
            "SST-2 test": TEST}
    if YELP.exists():
        sets["Yelp (out of domain)"] = YELP
    read = {name: labelled_logits(clf, path) for name, path in sets.items()}
    fit_logits, fit_gold = read[next(iter(sets))]
    rel = args.fit_on.resolve().relative_to(ROOT) if args.fit_on.resolve().is_relative_to(ROOT) else args.fit_on
    calibration = calibration_of(fit_logits, fit_gold, str(rel))
    t = calibration.temperature
    print(f"checkpoint: {args.checkpoint}; temperature fitted on {rel} ({len(fit_gold)} rows): T = {t:.4f}")
    print(f"{'set':<24}{'rows':>6}{'accuracy':>10}{'NLL T=1':>9}{'NLL T':>8}{'ECE T=1':>9}{'ECE T':>8}")
    for name, (logits, gold) in read.items():
        acc = float((logits.argmax(1) == gold).mean())
        ece = [expected_calibration_error(softmax(logits, x), gold) for x in (1.0, t)]
        print(f"{name:<24}{len(gold):>6}{acc:>10.2%}{nll(logits, gold):>9.4f}{nll(logits, gold, t):>8.4f}"
              f"{ece[0]:>9.2%}{ece[1]:>8.2%}")
    test_logits, test_gold = read["SST-2 test"]
    test_ece = expected_calibration_error(softmax(test_logits, t), test_gold)
    print(f"bar (ECE on SST-2 test <= 3%): {'PASS' if test_ece <= 0.03 else 'FAIL'} ({test_ece:.2%})")
    if not args.dry_run:
        record_calibration(args.checkpoint, calibration)
        print(f"wrote {args.checkpoint / 'config.json'}: \"calibration\": {calibration}")


if __name__ == "__main__":
    main()
