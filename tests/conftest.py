from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# A tiny, fast model for every test that trains.
TINY = dict(hidden=32, embed=16, batch_size=4, seq_len=16, eval_every=20, save_every=20, warmup_steps=2)


def _cpu_trains_bf16() -> bool:
    from textrnn.training.runtime import cpu_trains_bf16

    return cpu_trains_bf16("lstm")


needs_cpu_bf16 = pytest.mark.skipif(
    not _cpu_trains_bf16(),
    reason="this CPU has no bf16 LSTM kernels (oneDNN needs AVX-512 BF16 or AMX); --precision bf16 is refused here")


@pytest.fixture
def tiny_corpus() -> Path:
    return FIXTURES / "tiny.txt"


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(1)  # tests are tiny: threads only add noise
    yield


def tiny_lm(cell="lstm", layers=2, **kw):
    """A tiny seeded language model (vocabulary 11) in eval mode."""
    import torch

    from textrnn.config import ModelConfig
    from textrnn.model import LanguageModel

    torch.manual_seed(0)
    kw = {"hidden": 8, "embed": 6, "dropout": 0.0, **kw}
    return LanguageModel(ModelConfig(vocab_size=11, cell=cell, layers=layers, **kw)).eval()


def run_in_chunks(model, ids, size: int = 4):
    """The model over ``ids`` (B, T) in windows of ``size`` tokens, the state carried and detached:
    the outputs concatenated (B, T, ...) and the final state."""
    import torch

    from textrnn.inference.state import detach as detach_state

    state, parts = None, []
    for chunk in ids.split(size, dim=1):
        out, state = model(chunk, state)
        state = detach_state(state)
        parts.append(out)
    return torch.cat(parts, dim=1), state


def one_line_error(res, *fragments):
    """``res`` (a :func:`run_cli` result) is a user error: exit status 2, one ``error: ...`` line on
    stderr with no traceback, holding each of ``fragments``."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0], lines[0]


def run_cli(args, **kw):
    """Invoke the ``textrnn`` command in-process (click's CliRunner); exceptions propagate."""
    from click.testing import CliRunner

    from textrnn.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


POS = ["a great fine film", "great acting and a fine story", "fine fun great", "what a great joy"]
NEG = ["a bad dull film", "awful acting and a bad story", "dull bad awful", "what a bad mess"]
TINY_CLF = dict(hidden=16, embed=16, batch_size=4, eval_every=10, save_every=10, warmup_steps=2, lr=0.02,
                dropout=0.0)


@pytest.fixture(scope="session")
def int_clf(tmp_path_factory):
    """A tiny classifier with integer labels 0 (negative) and 1 (positive)."""
    import json

    from textrnn.training.classifier import train_classifier

    root = tmp_path_factory.mktemp("int_clf")
    path = root / "ints.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                            for _ in range(3) for lab, ts in ((1, POS), (0, NEG)) for t in ts))
    train_classifier(path, out=root / "clf", val_file=path, max_steps=40, **TINY_CLF)
    return root / "clf"


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory):
    """A tiny language model trained for 4 steps on tests/fixtures/tiny.txt."""
    from textrnn.training.lm import train_language_model

    out = tmp_path_factory.mktemp("lm_run") / "run"
    train_language_model([FIXTURES / "tiny.txt"], out=out, max_steps=4, eval_every=2, save_every=2,
                         **{k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")})
    return out


@pytest.fixture(scope="session")
def conditioned_run(tmp_path_factory):
    """A tiny character model conditioned on the labels up and down (2 steps: nearly untrained, so it
    would write a marker often if it were let)."""
    from textrnn.training.lm import train_language_model

    root = tmp_path_factory.mktemp("conditioned")
    rows = "label,text\n" + "up,aaaa aaa aaaaa\ndown,bbb bbbb bb bbb\n" * 40
    (root / "rows.csv").write_text(rows, encoding="utf-8")
    run = train_language_model([root / "rows.csv"], out=root / "run", condition_column="label", max_steps=2,
                               hidden=16, embed=8, batch_size=4, seq_len=16, warmup_steps=1, sample_length=0,
                               fit=False, eval_every=2, save_every=2)
    return run.path


REVIEW_POS = POS + ["fine and great", "a joy , great fun"]
REVIEW_NEG = NEG + ["awful and dull", "a mess , bad plot"]


def write_csv(path, rows, header=("review", "sentiment")):
    """Write ``rows`` under ``header`` as a CSV file; returns its path."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def labelled(tmp_path):
    """reviews.csv: 36 rows of positive / negative reviews (columns review, sentiment)."""
    rows = [(t, "positive") for t in REVIEW_POS] + [(t, "negative") for t in REVIEW_NEG]
    rows = rows * 3
    return write_csv(tmp_path / "reviews.csv", rows)
