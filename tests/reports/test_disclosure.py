"""The disclosure rules: primary suppression (count, dominance, two-largest) and secondary (complementary)
suppression for tables with a shown margin, series with a shown window total, and a total shown beside a
breakdown; plus the publish boundary's rounding and qualification."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import sys

import polars as pl
import pytest

from cannabis_market.data.disclosure import cell_stats, secondary_flags, suppress_cells
from cannabis_market.reports import publish as P
from cannabis_market.reports import safe as S


def store_rows(cells: dict[str, list[float]], key: str = "region") -> pl.DataFrame:
    """Store-level rows: one store per value, stores numbered across cells (disjoint cells)."""
    rows = []
    sid = itertools.count()
    for cell, values in cells.items():
        for v in values:
            rows.append({key: cell, "store_id": f"s{next(sid)}", "revenue": v})
    return pl.DataFrame(rows)


def recoverable(table: pl.DataFrame, total: float, value: str = "revenue") -> float | None:
    """What a reader gets by subtracting the shown cells from the shown total (None if nothing is hidden)."""
    hidden = table.filter(pl.col("suppressed"))
    if hidden.height == 0:
        return None
    return total - table.filter(~pl.col("suppressed"))[value].sum()


def test_one_dimensional_table_with_margin_hides_a_second_cell():
    rows = store_rows({"A": [10, 12, 9], "B": [50], "C": [7, 8, 6, 5], "D": [30, 30, 31]})
    total = float(rows["revenue"].sum())
    primary = S.aggregate_safely(rows, by="region")
    assert primary.filter(pl.col("suppressed"))["region"].to_list() == ["B"]
    # without secondary suppression the lone store is the total minus the shown regions
    assert recoverable(primary, total) == pytest.approx(50.0)
    safe = S.aggregate_safely(rows, by="region", margin=True)
    hidden = safe.filter(pl.col("suppressed"))["region"].to_list()
    assert "B" in hidden and len(hidden) >= 2
    assert "C" in hidden  # the next-smallest cell (26) goes with it
    remainder = recoverable(safe, total)
    assert remainder is not None and abs(remainder - 50.0) > 0.05 * 50
    # the remainder is itself a safe cell: >= 3 stores, no store above half of it
    assert 50.0 / remainder <= 0.5


def test_secondary_adds_cells_until_the_remainder_is_not_dominated():
    # B is one store of 100; C (3 stores, 12) is too small to hide it: 100/112 > 50%
    flags = secondary_flags(
        [100.0, 12.0, 40.0, 300.0], [1, 3, 4, 5], [1.0, 0.4, 0.3, 0.25], [True, False, False, False]
    )
    # 100 + 12 = 112 and 100 + 12 + 40 = 152 are still dominated by the one store -> the 300 cell too
    assert flags == [True, True, True, True]


def test_secondary_leaves_tables_without_suppression_alone_and_stops_when_safe():
    assert secondary_flags([1.0, 2.0], [3, 3], [0.4, 0.4], [False, False]) == [False, False]
    flags = secondary_flags(
        [5.0, 50.0, 60.0, 70.0], [2, 10, 10, 10], [0.6, 0.2, 0.2, 0.2], [True, False, False, False]
    )
    assert flags == [True, True, False, False]  # 55 from 12 stores, largest 12/55: safe


def test_two_largest_rule():
    rows = store_rows({"A": [40, 40, 5, 5, 5, 5], "B": [10, 10, 10, 10]})
    out = S.aggregate_safely(rows, by="region")  # A: top two = 80/100 > 75%
    assert out.filter(pl.col("suppressed"))["region"].to_list() == ["A"]
    relaxed = S.aggregate_safely(rows, by="region", min_stores=3, dominance=0.5)
    assert relaxed["suppressed"].to_list() == [True, False]
    stats = cell_stats(rows, ["region"])
    assert stats.filter(pl.col("region") == "A")["top2_share"][0] == pytest.approx(0.8)


def test_series_each_period_is_a_cell_and_the_window_total_protects_it():
    # a category sold by two stores in one month, by four in the others; the chart also shows the
    # window total, so the two-store month must not be the total minus the other months
    rows = []
    for month, sellers in ((1, 4), (2, 2), (3, 4), (4, 4)):
        for s in range(sellers):
            rows.append({"month": month, "store_id": f"s{s}", "revenue": 10.0 + s})
    frame = pl.DataFrame(rows)
    out = S.aggregate_safely(frame, by="month", margin=True)
    hidden = out.filter(pl.col("suppressed"))["month"].to_list()
    assert 2 in hidden and len(hidden) >= 2
    # months share stores (not disjoint): the remainder must rest on >= 3 stores in one month
    assert any(out.filter(pl.col("month") == m)["n_stores"][0] >= 3 for m in hidden)


def test_total_beside_breakdown_groups_per_period():
    # regions by year, each year's regions add up to that year's shown total
    rows = store_rows({"A": [5.0], "B": [10, 11, 12], "C": [20, 21, 22]})
    both = pl.concat([rows.with_columns(pl.lit(y).alias("year")) for y in (2021, 2022)], how="vertical")
    out = S.aggregate_safely(both, by=["year", "region"], margin=True, groups=["year"])
    for year in (2021, 2022):
        hidden = out.filter((pl.col("year") == year) & pl.col("suppressed"))["region"].to_list()
        assert hidden == ["A", "B"]


def test_suppress_cells_margin_on_precomputed_columns():
    df = pl.DataFrame(
        {
            "g": ["x", "y", "z", "w"],
            "v": [100.0, 8.0, 30.0, 40.0],
            "n_stores": [5, 1, 4, 6],
            "max_share": [0.2, 1.0, 0.3, 0.25],
        }
    )
    out = suppress_cells(df, "v", margin=True)
    assert out["suppressed"].to_list() == [False, True, True, False]
    assert out["v"].to_list() == [100.0, None, None, 40.0] and "max_share" not in out.columns


def test_rounding_of_published_numbers():
    assert P.round_sig(6_645_123.45) == 6_650_000.0
    assert P.round_sig(1753) == 1750 and P.round_sig(42) == 42 and P.round_sig(True) is True
    assert P.round_sig(-0.012345) == -0.0123
    assert P.round_sig({"a": [12345.0, None]}) == {"a": [12300.0, None]}
    text = "Stores sold CA$6,645,123 (CA$12.34M; 1,234,567 units) in 2022, from 2022-08-05, 12.5%."
    assert P.round_text(text) == (
        "Stores sold CA$6,650,000 (CA$12.3M; 1,230,000 units) in 2022, from 2022-08-05, 12.5%."
    )
    assert P.round_text("sup-F 116.8, p = 0.0123; c=16.8214 v1.0.0") == "sup-F 117, p = 0.0123; c=16.8 v1.0.0"
    spec = {
        "data": {"values": [{"d": "2022-01-01", "v": 123456.7}]},
        "layer": [{"datasets": {"x": [1.23456]}}],
    }
    out = P.round_spec(spec)
    assert out["data"]["values"][0] == {"d": "2022-01-01", "v": 123000.0}
    assert out["layer"][0]["datasets"]["x"] == [1.23]


def test_contributors_qualify_figures():
    S.set_policy(3, 0.5, 0.75)
    assert not P.contributors_of(store_rows({"A": [50.0, 10, 10]})).safe()  # 71% one store
    assert P.contributors_of(store_rows({"A": [30.0, 30, 30, 10]})).safe()
    assert not P.Contributors(2, 0.5, 1.0).safe()
    assert not P.Contributors(None, None).safe()


def test_leaks_store_finds_identifiers():
    ids = ["S0001", "S0002"]
    assert P.leaks_store("sales of S0001 were", ids)
    assert not P.leaks_store("sales of S00011 were", ids)
    assert P.leaks_store([{"store_id": "x", "v": 1}])
    assert P.leaks_store({"S0002": 12.0}, ids)
    assert not P.leaks_store({"Toronto": 12.0}, ids)
    assert P.publish_figures({"a": 12345.6, "per_store": {"S0001": 1.0}}, ids) == {"a": 12300.0}


# ------------------------------------------------------------------------------------------ nb boundary


class _Dataset:
    """The two tables the selection guard reads (duck-typed like data.loader.Dataset)."""

    def __init__(self, rows: pl.DataFrame) -> None:
        self.sales = rows.with_columns(pl.lit(dt.date(2022, 1, 1)).alias("date")).lazy()
        self.stores = rows.select("store_id", "region").unique().lazy()


def _results(folder) -> dict:
    import json

    return json.loads((folder / "results.json").read_text())


def test_guard_and_record_publish_only_qualified_rounded_figures(tmp_path, monkeypatch):
    from cannabis_market.reports import nb

    monkeypatch.setenv("CM_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # setup() guards stdout in report runs; restore it
    nb.setup(min_stores=3, dominance=0.5)
    ds = _Dataset(store_rows({"A": [30.0, 30, 30, 10], "B": [50.0]}))
    nb.guard_selection(ds, region="A")
    nb.record("total", 100.123456)
    nb.record("one_store_loss", 12.5, stores=1, top_share=1.0)  # a model output from one store
    nb.record("per_store", [1.0, 2.0, 3.0, 4.0])  # as many values as stores: refused
    nb.record("named", {"s0": 30.0})  # keyed by a store id: refused
    figures = _results(tmp_path)["figures"]
    assert figures == {"total": 100.0, "one_store_loss": None}


def test_guard_suppresses_a_one_store_selection(tmp_path, monkeypatch):
    from cannabis_market.reports import nb

    monkeypatch.setenv("CM_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # setup() guards stdout in report runs; restore it
    nb.setup()
    nb.guard_selection(_Dataset(store_rows({"A": [30.0, 30, 30], "B": [50.0]})), region="B")
    data = _results(tmp_path)
    assert data["status"] == P.SUPPRESSED and data["figures"] == {}
    with pytest.raises(S.DisclosureError, match="no contributors"):
        nb.record("after", 1.0)  # nothing is published after a suppressed guard
    assert P.run_status(data, None) == "suppressed" and P.run_status(data, "boom") == "failed"


def test_printed_store_ids_are_withheld(capsys):
    from cannabis_market.reports import nb

    nb._STATE["store_ids"] = frozenset({"S0001"})
    stream = nb._GuardedStream(io.StringIO())
    stream.write("weeks: 4\n")
    stream.write("S0001 sold 12.0\n")
    stream.write(str(store_rows({"A": [1.0]})))
    out = stream._inner.getvalue()
    assert out.startswith("weeks: 4\n") and "S0001" not in out and out.count("withheld") == 2


def test_selection_stats_read_the_selection_once_and_equal_a_direct_count(tiny):
    """Every breakdown of one selection is summed from one per-store pass (remembered per dataset
    content), and equals cell_stats on the raw rows; another selection or grain is read afresh."""
    from polars.testing import assert_frame_equal

    from cannabis_market.data import memo
    from cannabis_market.data.loader import load_dataset

    memo.clear_all()
    ds = load_dataset(tiny)
    rows = P.selection_rows(ds).join(ds.stores.select("store_id", "region", "municipality"), on="store_id")
    month = pl.col("date").dt.truncate("1mo").alias("period")
    cases = [
        (["region"], None, cell_stats(rows, ["region"])),
        (["region"], "month", cell_stats(rows.with_columns(month), ["period", "region"])),
        (
            ["municipality"],
            "year",
            cell_stats(rows.with_columns(month.dt.truncate("1y")), ["period", "municipality"]),
        ),
    ]
    for by, freq, want in cases:
        assert_frame_equal(P.selection_stats(ds, by, freq=freq), want, rel_tol=1e-12)
    assert (P._CELLS.misses, P._CELLS.hits) == (1, 2)
    by_cat = P.selection_stats(ds, ["category"], freq="day")
    assert_frame_equal(
        by_cat, cell_stats(rows, ["date", "category"]).rename({"date": "period"}), rel_tol=1e-12
    )
    east = P.selection_stats(ds, ["region"], region="East")
    assert east["region"].to_list() == ["East"] and east["n_stores"].to_list() == [1]
    assert P._CELLS.misses == 3
    memo.clear_all()
