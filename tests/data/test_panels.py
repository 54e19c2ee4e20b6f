"""The one store x period panel and store density, pinned on a hand-built example (data/README.md,
"Store panel"): every expected competitor count below is worked out by hand from the open/close dates."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from hypothesis import given, settings
from test_aggregate import D0, _brute_open, store_tables

from cannabis_market.data.loader import load_dataset
from cannabis_market.data.panels import population_by_year, store_density, store_period_panel, with_density
from cannabis_market.errors import InputError

D = dt.date


@pytest.fixture
def stores() -> pl.DataFrame:
    # M1: A (open all along), B opens Jan 17, C trades Feb 10..20 only, E opens Mar 1. M2: D alone.
    return pl.DataFrame(
        {
            "store_id": ["A", "B", "C", "D", "E"],
            "municipality": ["M1", "M1", "M1", "M2", "M1"],
            "region": ["R", "R", "R", "R", "R"],
            "opened_on": [D(2022, 1, 1), D(2022, 1, 17), D(2022, 2, 10), D(2021, 6, 1), D(2022, 3, 1)],
            "closed_on": [None, None, D(2022, 2, 20), None, None],
        }
    )


@pytest.fixture
def sales() -> pl.DataFrame:
    rows = [
        ("A", D(2022, 1, 5)),
        ("A", D(2022, 2, 5)),
        ("B", D(2022, 1, 20)),
        ("B", D(2022, 2, 5)),
        ("C", D(2022, 2, 12)),
        ("D", D(2022, 1, 5)),
        ("D", D(2022, 2, 5)),
        ("E", D(2022, 2, 25)),  # a sale before its recorded opening: no open day in February
    ]
    return pl.DataFrame(
        {
            "store_id": [r[0] for r in rows],
            "date": [r[1] for r in rows],
            "revenue": [100.0] * len(rows),
            "grams": [10.0] * len(rows),
        }
    )


def _row(panel: pl.DataFrame, store: str, month: int) -> dict:
    r = panel.filter((pl.col("store_id") == store) & (pl.col("period") == D(2022, month, 1)))
    assert r.height == 1
    return r.row(0, named=True)


def test_competitors_are_averaged_over_the_days_each_store_was_open(sales, stores):
    p = store_period_panel(sales, stores)
    ln2, ln3 = math.log(2), math.log(3)
    # January (31 days): B is open on Jan 17..31 = 15 days
    a = _row(p, "A", 1)
    assert a["competitors"] == pytest.approx(15 / 31)
    assert a["log1p_competitors"] == pytest.approx(15 / 31 * ln2)
    assert (a["open_days"], a["period_days"], a["partial"]) == (31, 31, True)  # A's opening month
    b = _row(p, "B", 1)
    assert (b["competitors"], b["open_days"], b["partial"]) == (pytest.approx(1.0), 15, True)
    # February (28 days): the other of A/B all month, C on Feb 10..20 = 11 days
    for s in ("A", "B"):
        r = _row(p, s, 2)
        assert r["competitors"] == pytest.approx((28 + 11) / 28)
        assert r["log1p_competitors"] == pytest.approx((17 * ln2 + 11 * ln3) / 28)
        assert not r["partial"]
    c = _row(p, "C", 2)
    assert (c["competitors"], c["open_days"], c["partial"]) == (pytest.approx(2.0), 11, True)
    # D is alone in M2 and open before the data starts: never partial
    assert [_row(p, "D", m)["competitors"] for m in (1, 2)] == [0.0, 0.0]
    assert not _row(p, "D", 1)["partial"]
    # E sold before its opening date: M1's average over all of February, flagged partial
    e = _row(p, "E", 2)
    assert e["competitors"] == pytest.approx((28 + 28 + 11) / 28) and e["open_days"] == 0 and e["partial"]
    assert _row(p, "A", 1)["price_per_g"] == pytest.approx(10.0)


def test_monthly_opening_dates_count_half_in_the_opening_month(stores):
    st = stores.filter(pl.col("store_id").is_in(["A", "B"])).with_columns(
        opened_on=pl.Series([D(2022, 1, 1), D(2022, 2, 1)])
    )
    sales = pl.DataFrame(
        {"store_id": ["A"] * 3, "date": [D(2022, m, 1) for m in (1, 2, 3)], "revenue": [1.0] * 3}
    )
    auto = store_period_panel(sales, st)
    assert auto["competitors"].to_list() == pytest.approx([0.0, 0.5, 1.0])
    exact = store_period_panel(sales, st, opening_dates="exact")
    assert exact["competitors"].to_list() == pytest.approx([0.0, 1.0, 1.0])
    with pytest.raises(InputError, match="opening_dates"):
        store_period_panel(sales, st, opening_dates="weekly")


def test_panel_by_category_and_frequency_names(sales, stores):
    two = pl.concat([sales.with_columns(category=pl.lit(c)) for c in ("flower", "vapes")])
    p = store_period_panel(two, stores, "month", by=["category"])
    assert p.height == 2 * sales.height
    assert p.filter(pl.col("store_id") == "A")["competitors"].to_list() == pytest.approx(
        [15 / 31, 15 / 31, 39 / 28, 39 / 28]
    )
    with pytest.raises(InputError, match="freq"):
        store_period_panel(sales, stores, "fortnightly")


def test_density_uses_the_period_year_else_the_nearest(sales, stores):
    pop = pl.DataFrame({"municipality": ["M1", "M2"], "year": [2022, 2021], "population": [20_000, 10_000]})
    p = with_density(store_period_panel(sales, stores), pop)
    assert _row(p, "A", 2)["density"] == pytest.approx((39 / 28 + 1) / 20_000 * 1e4)
    assert _row(p, "D", 2)["population"] == 10_000  # 2021 stands in for 2022
    d = store_density(stores, pop, "annual", D(2022, 1, 1), D(2022, 12, 31))
    m1 = d.filter(pl.col("municipality") == "M1").row(0, named=True)
    assert m1["stores_open"] == pytest.approx((365 + 349 + 11 + 306) / 365)
    assert m1["stores_per_10k"] == pytest.approx(m1["stores_open"] / 2)
    with pytest.raises(InputError, match="M2"):
        with_density(store_period_panel(sales, stores), pop.filter(pl.col("municipality") == "M1"))


@settings(max_examples=25, deadline=None)
@given(stores=store_tables())
def test_daily_panel_counts_other_open_stores_of_the_municipality(stores):
    """On daily data the averaged count is exactly the brute-force count of the day."""
    d = D0 + dt.timedelta(days=20)
    is_open = (pl.col("opened_on") <= d) & (pl.col("closed_on").is_null() | (pl.col("closed_on") >= d))
    open_ids = stores.filter(is_open)["store_id"].to_list()
    if not open_ids:
        return
    sales = pl.DataFrame(
        {"store_id": open_ids, "date": [d] * len(open_ids), "revenue": [1.0] * len(open_ids)}
    )
    p = store_period_panel(sales, stores, "daily", opening_dates="exact")
    for r in p.iter_rows(named=True):
        muni = stores.filter(pl.col("store_id") == r["store_id"])["municipality"].item()
        assert r["competitors"] == _brute_open(stores, d, muni) - 1
        assert r["open_days"] == 1 and r["partial"] == (r["opened_on"] == d)


def test_panel_from_a_loaded_dataset(tiny):
    ds = load_dataset(tiny)
    panel = store_period_panel(ds.sales, ds.stores)
    assert panel.height == 3 and panel["partial"].all()
    s1 = panel.filter(pl.col("store_id") == "S1")
    assert s1["revenue"].item() == pytest.approx(160.5)
    assert s1["price_per_g"].item() == pytest.approx(160.5 / 13)


def test_population_year_rule_prefers_the_same_then_the_nearest_then_the_earlier():
    pop = pl.DataFrame({"municipality": ["M"] * 3, "year": [2016, 2021, 2025], "population": [1, 2, 3]})
    keys = pl.DataFrame({"municipality": ["M"] * 5, "year": [2015, 2021, 2022, 2023, 2024]})
    got = population_by_year(pop, keys).sort("year")["population"].to_list()
    assert got == [1, 2, 2, 2, 3]  # 2023 is 2 from 2021 and 2025: the earlier wins
