"""In-process memos of heavy frames: keyed by dataset content (fingerprint + subset calls), bounded, and
never vouching for a dataset whose tables or files changed."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cannabis_market.data import memo
from cannabis_market.data.loader import load_dataset
from cannabis_market.data.panels import _PANELS, dataset_panel, store_period_panel

from conftest import TABLES, write_dataset


@pytest.fixture(autouse=True)
def _fresh_memos():
    memo.clear_all()
    yield
    memo.clear_all()


def test_frame_memo_keeps_the_last_entries_within_its_byte_budget():
    m = memo.FrameMemo("test", entries=2, max_bytes=10_000)
    calls = []

    def frame(n: int) -> pl.DataFrame:
        calls.append(n)
        return pl.DataFrame({"x": list(range(n))})

    a = m.get("a", lambda: frame(10))
    assert m.get("a", lambda: frame(10)) is a and calls == [10]
    m.get("b", lambda: frame(10))
    m.get("c", lambda: frame(10))  # evicts "a", the least recently used
    assert len(m) == 2 and m.get("a", lambda: frame(10)) is not a and calls == [10, 10, 10, 10]
    big = m.get("big", lambda: frame(5_000))  # 40 kB: returned, not kept
    assert big.height == 5_000 and "big" not in m._items and m.nbytes() <= 10_000
    assert m.get(None, lambda: frame(3)) is not m.get(None, lambda: frame(3))  # no key: never kept


def test_content_key_follows_content_and_subsets_not_paths(tiny, tmp_path):
    ds = load_dataset(tiny)
    copy = load_dataset(write_dataset(tmp_path / "elsewhere"))
    assert ds.content_key() == copy.content_key() is not None  # same bytes, another folder
    sub = ds.subset("Toronto", "2022-01-02", None)
    assert sub.content_key() == (ds.content_fingerprint, (("Toronto", dt.date(2022, 1, 2), None),))
    assert ds.subset("all").content_key() != ds.content_key()
    other = load_dataset(
        write_dataset(tmp_path / "other", sales=[*TABLES["sales"], "2022-01-05,S1,vapes,1,1"])
    )
    assert other.content_key() != ds.content_key()


def test_content_key_is_none_once_a_table_is_replaced_or_a_file_changes(tiny):
    ds = load_dataset(tiny)
    assert ds.content_key() is not None
    ds.sales = ds.sales.filter(pl.col("store_id") != "S3")
    assert ds.content_key() is None and ds.subset("all").content_key() is None
    fresh = load_dataset(tiny)
    (tiny / "sales.csv").write_text((tiny / "sales.csv").read_text().replace("100.5", "100.7"))
    assert fresh.content_key() is None  # its rows may no longer be what was validated and fingerprinted


def test_dataset_panel_is_worked_out_once_per_content_selection_and_arguments(tiny, tmp_path):
    ds = load_dataset(tiny)
    first = dataset_panel(ds)
    assert first.equals(store_period_panel(ds.sales, ds.stores))
    assert dataset_panel(ds) is first
    assert dataset_panel(load_dataset(tiny)) is first  # a fresh load of the same content
    assert _PANELS.hits == 2 and _PANELS.misses == 1
    # other arguments, another selection, other content: other frames (and other results)
    assert dataset_panel(ds, category="dried_flower") is not first
    assert dataset_panel(ds, category="dried_flower").height < first.height
    assert dataset_panel(ds, region="East").height == 1
    east = ds.subset("East")
    assert dataset_panel(east) is not first and dataset_panel(east)["store_id"].to_list() == ["S3"]
    other = load_dataset(
        write_dataset(tmp_path / "other", sales=[*TABLES["sales"], "2022-01-05,S1,vapes,1,1"])
    )
    assert not dataset_panel(other).equals(first)
    # a dataset whose sales were replaced is recomputed from what it holds now
    ds.sales = ds.sales.filter(pl.col("store_id") != "S3")
    assert dataset_panel(ds)["store_id"].to_list() == ["S1", "S2"]
    fresh = load_dataset(tiny)
    assert first.equals(store_period_panel(fresh.sales, fresh.stores))  # the handed-out frame is intact
