"""The speed benchmarks still run against the current API, at their smallest sizes.

The numbers in docs/performance.md come from these scripts; a refactor that breaks one
(as passing cached features as a tuple once did) would otherwise go unnoticed until the
next measurement. Only the tables' shape is checked, never a time.
"""

import re
import subprocess
import sys

import pytest
from conftest import REPO

NUMBER = r"\d+(\.\d+)?"


def run_benchmark(name: str, *args: object) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *map(str, args)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def table_row(output: str, label: str) -> list[str]:
    rows = [line for line in output.splitlines() if line.startswith(f"| {label}")]
    assert len(rows) == 1, f"no single row {label!r} in:\n{output}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


@pytest.mark.slow
def test_train_benchmark_times_full_and_cached_steps():
    output = run_benchmark("train.py", "--backbone", "resnet18", "--batch", 2, "--steps", 1, "--threads", 2)
    for label in ("full backbone", "cached features"):
        cells = table_row(output, label)
        assert all(re.fullmatch(NUMBER, cell) for cell in cells[1:]), cells
    assert re.search(r"cache fill: \d+ ms per study", output)


@pytest.mark.slow
def test_generate_benchmark_times_encoding_and_both_searches():
    output = run_benchmark("generate.py", "--backbone", "resnet18", "--batch", 1, "--repeats", 1,
                           "--threads", 2)
    for label in ("image encoding", "decoding, beam 3 ", "decoding, greedy"):
        cells = table_row(output, label)
        assert re.fullmatch(NUMBER, cells[1]), cells
    assert re.search(r"beam 3: \d+\.\d+ s per batch of 1", output)


@pytest.mark.slow
def test_model_metrics_benchmark_times_each_metric():
    output = run_benchmark("model_metrics.py", "--reports", 2, "--size", "tiny")
    for label in ("BERTScore", "RadGraph F1", "RaTEScore"):
        cells = table_row(output, label)
        assert all(re.fullmatch(NUMBER, cell) for cell in cells[1:]), cells
