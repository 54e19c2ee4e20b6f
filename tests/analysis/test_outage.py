"""Outage glue on generated datasets: series, impact model, event study and scenarios against the truth."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cannabis_market.analysis import outage as O
from cannabis_market.errors import InputError

START, END = dt.date(2022, 8, 5), dt.date(2022, 8, 17)


def _generate(tmp_path_factory, **kw):
    from cannabis_market.data.generate import generate_dataset
    from cannabis_market.data.loader import load_dataset

    return load_dataset(generate_dataset(tmp_path_factory.mktemp("gen") / "ds", **kw))


@pytest.fixture(scope="module")
def ds(outage_dataset):
    return outage_dataset


@pytest.fixture(scope="module")
def truth(ds) -> dict:
    return ds.manifest["truth"]["outage_2022"]


@pytest.fixture(scope="module")
def monthly(tmp_path_factory):
    return _generate(tmp_path_factory, stores=60, start="2020-06-01", end="2022-12-31", frequency="monthly")


def test_outage_dates_from_events(ds):
    assert O.outage_dates(ds) == (START, END)


def test_series_split_and_totals(ds, truth):
    s = O.outage_series(ds, partial_fill=truth["partial_fill"])
    assert s.columns[:4] == ["date", "treated_sales", "control_sales", "total_sales"]
    assert s["date"][0] == START - dt.timedelta(days=84) and s["date"][-1] == START + dt.timedelta(days=27)
    assert s.height == 84 + 28
    assert (s["total_sales"] - s["treated_sales"] - s["control_sales"]).abs().max() < 1e-6
    eve = s.filter(pl.col("date") == START - dt.timedelta(days=1))
    assert eve["treated_sales_adj"][0] == pytest.approx(eve["treated_sales"][0])
    assert eve["n_treated"][0] == truth["stores_affected"]  # treated = stores the outage model says run out
    # the treated stores' share of sales falls during the outage and recovers afterwards
    share = s.with_columns(r=pl.col("treated_sales") / pl.col("total_sales"))
    before = share.filter(pl.col("date") < START)["r"].mean()
    worst = share.filter(pl.col("date").is_between(START, END))["r"].min()
    after = share.filter(pl.col("date") > END + dt.timedelta(days=3))["r"].mean()
    assert worst < 0.8 * before and after == pytest.approx(before, rel=0.1)
    east = O.outage_series(ds, region="East")
    assert (east["total_sales"] <= s["total_sales"] + 1e-6).all()


def test_impact_model_recovers_true_loss(ds, truth):
    res = O.estimate_outage_impact(ds, partial_fill=truth["partial_fill"], n_sims=500)
    total = float(truth["lost_sales_total"])
    lost = res.lost
    assert lost.lo < total < lost.hi
    assert abs(lost.point / total - 1) < 0.25
    assert res.summary()["row"].to_list() == ["average", "cumulative"]


def test_event_study_recovers_true_loss(ds, truth):
    res = O.outage_event_study(ds, partial_fill=truth["partial_fill"], by="region")
    total = float(truth["lost_sales_total"])
    assert res.loss_window == (0, 12)
    assert res.lost_sales_lo < total < res.lost_sales_hi
    assert abs(res.lost_sales / total - 1) < 0.25
    assert res.n_treated == truth["stores_affected"]
    assert res.by_group["n_treated"].sum() == res.n_treated
    # the default threshold (fill 0.5) also treats stores that kept stock; they add no loss
    default = O.outage_event_study(ds)
    assert default.lost_sales_lo < total < default.lost_sales_hi


def test_scenarios_from_dataset(ds, truth):
    res = O.outage_scenarios(ds, stop_days_list=[3, 5, 7, 14], partial_fill=truth["partial_fill"], n_sims=200)
    s = res.summary()
    assert (s["lost_sales"].diff().drop_nulls() > 0).all()
    five = s.filter(pl.col("stop_days") == 5)
    total = float(truth["lost_sales_total"])
    assert five["lo"][0] < total < five["hi"][0]
    assert s["goodwill_cost"][0] == pytest.approx(500 * res.settings["n_stores"])


def test_bad_windows_and_regions(ds):
    with pytest.raises(InputError, match="outside the sales data"):
        O.outage_series(ds, outage_start="2022-05-10")
    with pytest.raises(InputError, match="outside the sales data"):
        O.outage_event_study(ds, outage_start="2022-10-20")
    with pytest.raises(InputError, match="region 'Atlantis' not found"):
        O.outage_series(ds, region="Atlantis")
    with pytest.raises(InputError, match="before"):
        O.estimate_outage_impact(ds, post_end="2022-08-10")
    with pytest.raises(InputError, match="outage_start"):
        O.outage_series(ds, outage_start="next tuesday")


def test_monthly_dataset(monthly):
    s = O.outage_series(monthly, pre_days=400)
    assert s.columns == ["date", "region", "total_sales"]
    assert (s["date"].dt.day() == 1).all()
    with pytest.raises(InputError, match="daily"):
        O.outage_event_study(monthly)
    res = O.estimate_outage_impact(monthly, n_sims=300)
    total = float(monthly.manifest["truth"]["outage_2022"]["lost_sales_total"])
    assert res.lost.lo < total < res.lost.hi  # honest: a few per cent of a month is within the noise


def test_monthly_store_impact_honours_start(monthly):
    """`start` (pre_days) bounds the pre-period on monthly store data too; without it, all months are used."""
    full = O.outage_impact(monthly, controls=["none"], n_sims=200)
    assert full.pre_period[0] == dt.date(2020, 6, 1)
    late = O.outage_impact(monthly, controls=["none"], start="2021-03-01", n_sims=200)
    assert late.pre_period == (dt.date(2021, 3, 1), dt.date(2022, 7, 1))
    assert late.post_period[0] == dt.date(2022, 8, 1)
    direct = O.estimate_outage_impact(
        monthly, n_sims=200, pre_days=(dt.date(2022, 8, 5) - dt.date(2021, 9, 1)).days
    )
    assert direct.pre_period[0] == dt.date(2021, 9, 1)


@pytest.mark.parametrize("model", ["regression", "state_space"])
def test_outage_impact_passes_the_model_on(ds, model):
    res = O.outage_impact(ds, model=model, n_sims=200)
    assert res.model == model and res.model_choice == "requested"
