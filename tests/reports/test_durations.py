"""A parallel build starts its longest runs first, from the wall times of earlier runs; results keep the
listed order, and a missing, corrupt or disabled log only costs the ordering."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from cannabis_market.reports import durations
from cannabis_market.reports.executors import LocalExecutor


@dataclass
class Spec:
    notebook: str
    slug: str
    report: str = "r"

    @property
    def label(self) -> str:
        return f"{self.notebook}/{self.slug}"


@pytest.fixture(autouse=True)
def _own_log(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CM_REPORT_ORDER", raising=False)


def test_runs_are_ordered_longest_first_with_never_seen_notebooks_ahead(tmp_path):
    a, b, c, new = (Spec(str(tmp_path / f"{n}.ipynb"), "default") for n in "abcn")
    assert durations.longest_first([a, b, c]) == [0, 1, 2]  # no history: as listed
    for spec, s in ((a, 3.0), (b, 12.0), (c, 8.0)):
        durations.record(spec, s)
    assert durations.expected([a, b, c, new]) == [3.0, 12.0, 8.0, None]
    assert durations.longest_first([a, b, new, c]) == [2, 1, 3, 0]
    durations.record(b, 1.0)  # the last time counts
    assert durations.longest_first([a, b, c]) == [2, 0, 1]


def test_a_new_grid_cell_is_expected_to_take_its_notebooks_mean(tmp_path):
    nb = str(tmp_path / "grid.ipynb")
    durations.record(Spec(nb, "region-East"), 4.0)
    durations.record(Spec(nb, "region-West"), 6.0)
    assert durations.expected([Spec(nb, "region-North")]) == [5.0]


def test_a_corrupt_log_or_the_listed_switch_keeps_the_listed_order(tmp_path, monkeypatch):
    specs = [Spec(str(tmp_path / f"{n}.ipynb"), "default") for n in "ab"]
    durations.record(specs[1], 9.0)
    monkeypatch.setenv("CM_REPORT_ORDER", "listed")
    assert durations.longest_first(specs) == [0, 1]
    monkeypatch.delenv("CM_REPORT_ORDER")
    durations.log_path().write_text("{not json", encoding="utf-8")
    assert durations.longest_first(specs) == [0, 1]
    durations.record(specs[0], 2.0)  # a corrupt log is replaced, not fatal
    assert durations.expected(specs) == [2.0, None]


def test_the_local_executor_starts_the_longest_runs_first_and_returns_results_as_listed(tmp_path):
    specs = [Spec(str(tmp_path / f"{n}.ipynb"), "default") for n in "abcd"]
    for spec, s in zip(specs, (2.0, 9.0, 1.0, 5.0), strict=True):
        durations.record(spec, s)
    started, lock, both = [], threading.Lock(), threading.Barrier(2)

    def run_one(spec):
        with lock:
            started.append(spec.notebook[-7])
            first = len(started) <= 2
        if first:  # the first two runs are in progress together: nothing else has started yet
            both.wait(timeout=30)
        return spec.label

    events = []
    out = LocalExecutor(2, run_one=run_one).run(specs, lambda kind, spec, res: events.append(kind))
    assert out == [s.label for s in specs]
    assert set(started[:2]) == {"b", "d"} and sorted(started) == ["a", "b", "c", "d"]
    assert events.count("start") == events.count("end") == 4
