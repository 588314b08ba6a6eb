from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# A tiny, fast model for every test that trains.
TINY = dict(hidden=32, embed=16, batch_size=4, seq_len=16, eval_every=20, save_every=20, warmup_steps=2)


@pytest.fixture
def tiny_corpus() -> Path:
    return FIXTURES / "tiny.txt"


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(1)  # tests are tiny: threads only add noise
    yield
