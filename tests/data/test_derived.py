"""Frames derived from a whole dataset: computed once per content, kept beside the typed cache entry, read
back by another process, never used for a subset, and giving the overview the same tables as its rows."""

from __future__ import annotations

import datetime as dt
import functools
import subprocess
import sys

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cannabis_market.analysis import overview as OV
from cannabis_market.data import derived, memo
from cannabis_market.data import typed_cache as TC
from cannabis_market.data.generate import generate_dataset
from cannabis_market.data.loader import load_dataset


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory):
    return generate_dataset(
        tmp_path_factory.mktemp("derived") / "ds", stores=40, start="2021-11-01", end="2022-06-30", seed=3
    )


@pytest.fixture(autouse=True)
def _fresh_memos():
    memo.clear_all()
    yield
    memo.clear_all()


def _counting(frame_of):
    calls = []

    def compute() -> pl.DataFrame:
        calls.append(1)
        return frame_of()

    return compute, calls


def test_a_derived_frame_is_computed_once_and_read_back_from_the_cache_by_a_new_process(folder):
    ds = load_dataset(folder)
    assert ds.cache_key is not None
    name = "test-frame-v1"
    compute, calls = _counting(lambda: pl.DataFrame({"x": [1.5, 2.5]}))
    first = derived.derived_frame(ds, name, compute)
    assert derived.derived_frame(ds, name, compute) is first and len(calls) == 1  # in-process memo
    assert TC.read_derived(ds.cache_key, name).equals(first)
    memo.clear_all()  # as a new kernel would: the copy on disk is used, nothing recomputed
    assert derived.derived_frame(load_dataset(folder), name, compute).equals(first) and len(calls) == 1
    code = (
        "from cannabis_market.data import derived; from cannabis_market.data.loader import load_dataset;"
        f"import sys; f = derived.derived_frame(load_dataset({str(folder)!r}), {name!r}, lambda: sys.exit(3));"
        "print(f['x'].sum())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "4.0"


def test_subsets_uncached_loads_and_a_disabled_cache_always_compute(folder, monkeypatch):
    ds = load_dataset(folder)
    compute, calls = _counting(lambda: pl.DataFrame({"x": [1]}))
    derived.derived_frame(ds.subset("all", "2022-01-01"), "test-subset-v1", compute)
    derived.derived_frame(ds.subset("all", "2022-01-01"), "test-subset-v1", compute)
    assert len(calls) == 2 and TC.read_derived(ds.cache_key, "test-subset-v1") is None
    raw = load_dataset(folder, typed_cache=False)
    assert raw.cache_key is None
    derived.derived_frame(raw, "test-raw-v1", compute)
    assert TC.read_derived(ds.cache_key, "test-raw-v1") is None
    monkeypatch.setenv("CM_TYPED_CACHE", "0")
    memo.clear_all()
    derived.derived_frame(ds, "test-off-v1", compute)
    monkeypatch.delenv("CM_TYPED_CACHE")
    assert TC.read_derived(ds.cache_key, "test-off-v1") is None and len(calls) == 4


def _tables(ov: OV.MarketOverview) -> list[pl.DataFrame]:
    return [t for t in (ov.monthly, ov.by_region, ov.categories) if t is not None]


@pytest.mark.parametrize(
    ("region", "start", "end"),
    [("all", None, None), ("all", "2022-01-01", "2022-04-30"), ("first", "2021-12-01", None)],
)
def test_the_overview_from_the_shared_store_months_equals_the_one_from_the_rows(
    folder, monkeypatch, region, start, end
):
    ds = load_dataset(folder)
    if region == "first":
        region = ds.stores.select("region").unique().sort("region").collect()["region"][0]
    shared = OV.market_overview(ds, region=region, start=start, end=end, min_stores=1)
    assert TC.read_derived(ds.cache_key, derived.STORE_MONTHS) is not None  # the shared path was taken
    monkeypatch.setattr(OV, "_store_months", functools.partial(OV._store_months, shared=False))
    monkeypatch.setattr(derived, "store_month_totals", lambda d: pytest.fail("rows path expected"))
    rows = OV.market_overview(ds, region=region, start=start, end=end, min_stores=1)
    for a, b in zip(_tables(shared), _tables(rows), strict=True):
        assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9)
    assert shared.figures() == pytest.approx(rows.figures(), rel=1e-9, nan_ok=True)


def test_a_window_not_of_whole_months_is_summed_from_the_rows(folder, monkeypatch):
    ds = load_dataset(folder)
    monkeypatch.setattr(derived, "store_month_totals", lambda d: pytest.fail("rows path expected"))
    ov = OV.market_overview(ds, start="2022-01-15", end="2022-03-31", min_stores=1)
    first = ov.monthly.sort("period").row(0, named=True)
    day = ds.sales.filter(pl.col("date").is_between(dt.date(2022, 1, 15), dt.date(2022, 1, 31)))
    assert first["revenue"] == pytest.approx(day.select(pl.col("revenue").sum()).collect().item(), rel=1e-9)
