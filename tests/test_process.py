"""Process-wide settings are opt-in: importing textrnn changes none; configure_process() applies them."""

import subprocess
import sys

import pytest

LIMIT = "import csv, sys; before = csv.field_size_limit(); {body}; print(before, csv.field_size_limit())"


def _limits(body: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", LIMIT.format(body=body)], capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    return before, after


def test_configure_process_raises_the_csv_field_limit():
    from textrnn.process import CSV_FIELD_SIZE_LIMIT

    before, after = _limits("import textrnn; textrnn.configure_process()")
    assert before < after == CSV_FIELD_SIZE_LIMIT == min(sys.maxsize, 2**31 - 1)


@pytest.mark.parametrize("module", [
    "textrnn", "textrnn.cli", "textrnn.config", "textrnn.process",
    "textrnn.data.tables",
])
def test_importing_changes_no_csv_limit(module):
    before, after = _limits(f"import {module}")
    assert after == before
