"""Smoke test of the benchmark harness: `benchmarks/run.py --quick` end to end, in well under a minute."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "RESULTS.md"
    env = {**os.environ, "CM_BENCH_DATA": str(tmp / "data")}
    proc = subprocess.run(
        # the report build is benchmarked by make bench; the report tests already run the notebooks
        [sys.executable, str(BENCH / "run.py"), "--quick", "--out", str(out), "--skip", "reports"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out.read_text(encoding="utf-8"), proc.stdout


def test_quick_run_writes_results(quick_results):
    text, stdout = quick_results
    # one progress line per benchmark, every bench_*.py picked up
    names = sorted(
        p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py") if p.stem != "bench_reports"
    )
    for name in names:
        assert re.search(rf"^\[\d+/{len(names)}\] {name}\b", stdout, re.M), stdout
    assert "| Benchmark | Comparison | Ours | Baseline | Ratio | Target | Result |" in text
    assert re.search(
        r"^- Command: `.*benchmarks/run\.py --quick --out .*RESULTS\.md --skip reports`", text, re.M
    )
    machine = re.search(r"^- Machine: (.*)$", text, re.M)
    assert machine and "cores" in machine.group(1) and "RAM" in machine.group(1)
    assert "Python 3." in machine.group(1) and "polars " in machine.group(1) and "pandas " in machine.group(1)
    assert re.search(r"^- Date: \d{4}-\d\d-\d\d", text, re.M)
    # the ratios table carries each comparison: dataprep's speed-up and memory, event study budgets
    assert "speed-up vs pandas" in text and "peak memory vs pandas" in text
    assert re.search(r"\| event_study \| wall time.* \| \*\*(PASS|MISS)\*\* \|", text)
    assert "**ERROR**" not in text
    # placeholders for the report benchmarks the lead adds later
    # reports was skipped here: its sections stay placeholders
    assert "<!-- placeholder: reports: Report build -->" in text
    assert "<!-- placeholder: reports: HTML report sizes -->" in text


def test_dataprep_equality_check_ran(quick_results):
    text, _ = quick_results
    m = re.search(r"Equality check: all four result tables .* \(([\d,]+) cells compared\)", text)
    assert m and int(m.group(1).replace(",", "")) > 1000


def test_equality_check_catches_a_difference(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_dataprep
    from _common import BenchError

    a = pl.DataFrame({"period": ["2022-01-01", "2022-02-01"], "revenue": [100.0, 200.0], "n": [1, 2]})
    a = a.with_columns(pl.col("period").str.to_date())
    same = a.with_columns(pl.col("revenue") * (1 + 1e-9))
    assert bench_dataprep.compare_tables(a, same, ["period"])["cells"] == 4
    with pytest.raises(BenchError, match="revenue"):
        bench_dataprep.compare_tables(a, a.with_columns(pl.col("revenue") * (1 + 1e-5)), ["period"])
    with pytest.raises(BenchError, match="row counts"):
        bench_dataprep.compare_tables(a, a.head(1), ["period"])
    with pytest.raises(BenchError, match="key sets"):
        bench_dataprep.compare_tables(a, a.with_columns(pl.col("period").dt.offset_by("1d")), ["period"])
