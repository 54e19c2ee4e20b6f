"""Fast paths of heavy steps agree with straightforward reference computations; imports stay light."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.event_study import _within, event_study

EVENT = dt.date(2022, 8, 5)


def _panel(seed: int = 4, stores: int = 24, days: int = 21) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Unbalanced daily store panel (stores open late / close early) with a drop for treated stores."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(stores):
        first, last = int(rng.integers(0, 4)), days - 1 - int(rng.integers(0, 4))
        level, treated = rng.normal(1000, 200), s % 3 == 0
        for d in range(first, last + 1):
            rel = d - 10
            y = level + 30 * np.sin(d) + rng.normal(0, 25) - (300 if treated and 0 <= rel < 5 else 0)
            rows.append((EVENT + dt.timedelta(days=rel), f"S{s:02d}", float(y)))
    sales = pl.DataFrame(rows, schema=["date", "store_id", "revenue"], orient="row")
    tr = pl.DataFrame(
        {"store_id": [f"S{s:02d}" for s in range(stores)], "treated": [s % 3 == 0 for s in range(stores)]}
    )
    return sales, tr


def _dummies(codes: np.ndarray, drop_first: bool) -> np.ndarray:
    out = (codes[:, None] == np.unique(codes)[None, :]).astype(float)
    return out[:, 1:] if drop_first else out


def test_within_transform_equals_dummy_variable_residuals():
    sales, _ = _panel()
    M = np.random.default_rng(1).normal(size=(sales.height, 4))
    store = sales["store_id"].cast(pl.Categorical).to_physical().to_numpy()
    date = (sales["date"] - sales["date"].min()).dt.total_days().to_numpy()
    Z = np.column_stack([_dummies(store, False), _dummies(date, True)])
    ref = M - Z @ np.linalg.lstsq(Z, M, rcond=None)[0]
    got = _within(M, sales)
    assert np.abs(got - ref).max() <= 1e-9 * np.abs(ref).max()


def test_event_study_effects_equal_a_dummy_variable_regression():
    """Daily effects against the pooled pre-event reference, from OLS with store and date dummies."""
    sales, tr = _panel()
    res = event_study(sales, EVENT, window=(-10, 10), treated=tr, fill_missing=False)
    p = sales.join(tr, on="store_id").with_columns(rel=(pl.col("date") - pl.lit(EVENT)).dt.total_days())
    rel, treat = p["rel"].to_numpy(), p["treated"].to_numpy().astype(float)
    days = np.array(sorted(set(rel[treat > 0])))
    omitted = days[days < 0].max()
    ks = [k for k in days if k != omitted]
    X = np.column_stack([treat * (rel == k) for k in ks])
    store = p["store_id"].cast(pl.Categorical).to_physical().to_numpy()
    Z = np.column_stack([X, _dummies(store, False), _dummies(rel, True)])
    beta = np.linalg.lstsq(Z, p["revenue"].to_numpy(), rcond=None)[0][: len(ks)]
    b = dict(zip(ks, beta, strict=True)) | {omitted: 0.0}
    ref_pre = np.mean([b[k] for k in days if k < 0])
    want = np.array([b[k] - ref_pre for k in days])
    got = res.effects.sort("rel_day")["estimate"].to_numpy()
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    assert res.lost_sales == pytest.approx(
        -sum(want[(days >= 0)] * [(treat * (rel == k)).sum() for k in days[days >= 0]]), rel=1e-9
    )


def test_importing_estimators_does_not_import_altair_but_charts_use_the_theme():
    code = textwrap.dedent(
        """
        import sys
        import cannabis_market.analysis, cannabis_market.analysis.overview, cannabis_market.analysis.event_study
        before = "altair" in sys.modules
        from cannabis_market import theme
        alt = theme.altair()
        print(before, alt.theme.active)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "cannabis_market"]


def test_market_overview_equals_plain_sums(outage_dataset):
    from cannabis_market.analysis.overview import market_overview

    ds = outage_dataset
    ov = market_overview(ds, min_stores=1, dominance=1.0)
    sales = ds.sales.collect()
    want = (
        sales.group_by(pl.col("date").dt.month_start().alias("period"))
        .agg(pl.col("revenue").sum(), pl.col("store_id").n_unique().alias("n_stores"))
        .sort("period")
    )
    got = ov.monthly.sort("period")
    assert got["period"].to_list() == want["period"].to_list()
    assert np.allclose(got["revenue"].to_numpy(), want["revenue"].to_numpy(), rtol=1e-9)
    assert got["n_stores"].to_list() == want["n_stores"].to_list()
    assert ov.total_sales == pytest.approx(float(sales["revenue"].sum()), rel=1e-9)
