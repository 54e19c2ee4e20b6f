"""Aggregation helpers against brute-force definitions on small data."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannabis_market.data import aggregate as A
from cannabis_market.data.loader import load_dataset
from cannabis_market.errors import InputError

D0 = dt.date(2022, 1, 1)


@st.composite
def store_tables(draw):
    n = draw(st.integers(1, 12))
    rows = []
    for i in range(n):
        o = draw(st.integers(0, 40))
        c = draw(st.one_of(st.none(), st.integers(o, 60)))
        rows.append(
            {
                "store_id": f"S{i}",
                "municipality": draw(st.sampled_from(["A", "B", "C"])),
                "region": "R",
                "opened_on": D0 + dt.timedelta(days=o),
                "closed_on": None if c is None else D0 + dt.timedelta(days=c),
                "chain": None,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "store_id": pl.String,
            "municipality": pl.String,
            "region": pl.String,
            "opened_on": pl.Date,
            "closed_on": pl.Date,
            "chain": pl.String,
        },
    )


def _brute_open(stores: pl.DataFrame, d: dt.date, muni: str | None = None) -> int:
    return sum(
        1
        for r in stores.iter_rows(named=True)
        if r["opened_on"] <= d
        and (r["closed_on"] is None or d <= r["closed_on"])
        and muni in (None, r["municipality"])
    )


@settings(max_examples=40, deadline=None)
@given(stores=store_tables(), offsets=st.lists(st.integers(-3, 70), min_size=1, max_size=8, unique=True))
def test_stores_open_on_matches_definition(stores, offsets):
    dates = [D0 + dt.timedelta(days=o) for o in offsets]
    got = A.stores_open_on(stores.lazy(), dates)
    for r in got.iter_rows(named=True):
        assert r["stores_open"] == _brute_open(stores, r["date"])
    by = A.stores_open_on(stores.lazy(), dates, by=["municipality"])
    for r in by.iter_rows(named=True):
        assert r["stores_open"] == _brute_open(stores, r["date"], r["municipality"])


def test_openings_closures_balance(tiny):
    oc = A.openings_closures(load_dataset(tiny).stores, "day")
    assert oc["openings"].sum() == 3 and oc["closures"].sum() == 1
    # closed_on is the last day open: S2 still counts on 2022-01-04
    assert oc.filter(pl.col("period") == dt.date(2022, 1, 4))["stores_open"].item() == 3


def test_market_totals_and_price_per_gram(tiny):
    ds = load_dataset(tiny)
    tot = A.market_totals(ds.sales, "month", by=["region"], stores=ds.stores).collect()
    assert tot.filter(pl.col("region") == "Toronto")["revenue"].item() == pytest.approx(310.5)
    assert tot["n_stores"].sum() == 3
    ppg = A.price_per_gram(ds.sales, "month", by=()).collect()
    assert ppg["price_per_g"].item() == pytest.approx(325.5 / 29.5)


def test_price_per_gram_needs_grams(tiny):
    sales = load_dataset(tiny).sales.drop("grams")
    with pytest.raises(InputError, match="grams"):
        A.price_per_gram(sales)


def test_bad_frequency():
    with pytest.raises(InputError, match="freq must be one of"):
        A.period_expr("fortnight")


def test_shared_store_period_base_gives_the_same_totals(tiny):
    ds = load_dataset(tiny)
    base = A.store_period_totals(ds.sales, "month", by=["category"]).collect().lazy()
    for raw, pre in [
        (
            A.market_totals(ds.sales, "month", ["region"], ds.stores),
            A.market_totals(base, "month", ["region"], ds.stores),
        ),
        (A.market_totals(ds.sales, "year"), A.market_totals(base, "year")),
        (A.market_totals(ds.sales, None, ["category"]), A.market_totals(base, None, ["category"])),
        (A.price_per_gram(ds.sales), A.price_per_gram(base)),
    ]:
        a, b = raw.collect(), pre.collect()
        assert a.columns == b.columns
        for c in a.columns:
            if a[c].dtype.is_float():
                assert (a[c] - b[c]).abs().max() < 1e-9
            else:
                assert a[c].to_list() == b[c].to_list()


@settings(max_examples=30, deadline=None)
@given(stores=store_tables())
def test_openings_closures_add_up(stores):
    """open(p) = open(p - 1) + openings(p) - closures(p): a closure counts when the store is first closed."""
    oc = A.openings_closures(stores.lazy(), "week")
    prev = oc["stores_open"].shift(1).fill_null(0)
    assert (oc["stores_open"] == prev + oc["openings"] - oc["closures"]).all()


@pytest.mark.parametrize("freq", ["day", "week", "month", "quarter", "year"])
def test_period_lookup_equals_truncation_even_beyond_its_table(freq):
    """period_key looks dates up in a LOOKUP_DAYS table from the first date; dates past it (here a
    century later, some of them period starts) are detected and grouped again by truncation."""
    near = [dt.date(2000, 1, 15), dt.date(2000, 2, 29), None, dt.date(2040, 12, 31)]
    far = [dt.date(2100, 1, 1), dt.date(2100, 3, 10), dt.date(2100, 3, 1)]
    for dates in (near, near + far, far[:1] + near):
        lf = pl.LazyFrame({"date": dates, "k": ["a", "b"] * (len(dates) // 2) + ["a"] * (len(dates) % 2)})
        lf = lf.with_columns(v=pl.int_range(pl.len()))
        want = lf.group_by(A.period_expr(freq), "k").agg(pl.col("v").sum()).collect().sort("period", "k")
        got = A.collect_by_period(lf, freq, ["k"], [pl.col("v").sum()]).sort("period", "k")
        assert got.equals(want)

    def lookup_exact(dates: list) -> bool:
        return A.periods_exact(pl.select(pl.Series("date", dates)).select(A.period_key(freq))["period"], freq)

    assert lookup_exact(near)
    assert lookup_exact(near + far) == (freq == "day")  # 2100-03-10 is kept as is: not a period start
