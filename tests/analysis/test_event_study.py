"""Event study: recovery of a known outage effect on simulated store panels and on a generated dataset."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.event_study import (
    EventStudyResult,
    event_study,
    no_stockout_threshold,
    treatment_from_inventory,
)
from cannabis_market.data.outage_model import served_share
from cannabis_market.errors import InputError

EVENT = dt.date(2022, 8, 5)
FILL = 0.5


def simulate_panel(
    n: int = 300,
    days: int = 100,
    event_day: int = 60,
    seed: int = 0,
    common_post_shock: float = 0.0,
    n_regions: int = 3,
):
    """Store-day revenue with store, weekday and daily common effects; low-cover stores lose sales.

    Returns (sales with 2 categories, inventory, stores, true loss per relative day, true total loss).
    """
    rng = np.random.default_rng(seed)
    start = EVENT - dt.timedelta(days=event_day)
    base = rng.lognormal(np.log(4000), 0.4, n)
    t = np.arange(days)
    day = (1 + 0.15 * np.sin(2 * np.pi * t / 7)) * np.exp(rng.normal(0, 0.05, days))
    day[event_day:] *= 1 + common_post_shock
    demand = base[:, None] * day[None, :] * rng.lognormal(-0.02, 0.2, (n, days))
    cover = np.round(rng.gamma(4.0, 2.2, n), 2)
    served = served_share(cover, 5, 8, FILL, horizon=days - event_day)
    lost = (1 - served) * demand[:, event_day:]
    sold = demand.copy()
    sold[:, event_day:] -= lost
    ids = np.array([f"S{i:04d}" for i in range(n)])
    dates = np.datetime64(start) + t
    share = rng.uniform(0.5, 0.7, (n, days))
    sales = pl.DataFrame(
        {
            "date": np.tile(np.repeat(dates, 2), n),
            "store_id": np.repeat(ids, 2 * days),
            "category": np.tile(["dried_flower", "vapes"], n * days),
            "revenue": np.stack([sold * share, sold * (1 - share)], axis=-1).ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    inventory = pl.DataFrame(
        {"date": [EVENT - dt.timedelta(days=1)] * n, "store_id": ids, "days_of_cover": cover}
    )
    stores = pl.DataFrame({"store_id": ids, "region": [f"R{i % n_regions}" for i in range(n)]})
    treated = cover < no_stockout_threshold(5, 8, FILL)
    per_day = -lost[treated].mean(axis=0)  # true effect per treated store-day, rel days 0..
    return sales, inventory, stores, per_day, float(lost.sum())


@pytest.fixture(scope="module")
def sim():
    return simulate_panel()


@pytest.fixture(scope="module")
def fit(sim) -> EventStudyResult:
    sales, inventory, _, _, _ = sim
    return event_study(sales.lazy(), EVENT, inventory=inventory, partial_fill=FILL)


def test_total_lost_sales_recovered(sim, fit):
    truth = sim[4]
    assert fit.lost_sales_lo < truth < fit.lost_sales_hi
    assert abs(fit.lost_sales / truth - 1) < 0.25
    assert fit.lost_sales_lo < fit.lost_sales < fit.lost_sales_hi


def test_daily_effects_cover_truth(sim, fit):
    per_day = sim[3]
    eff = fit.effects
    assert eff["rel_day"].to_list() == list(range(-28, 28))
    post = eff.filter(pl.col("rel_day") >= 0)
    truth = per_day[: post.height]
    covered = ((post["lo"].to_numpy() < truth) & (truth < post["hi"].to_numpy())).mean()
    assert covered >= 0.85
    pre = eff.filter(pl.col("rel_day") < 0)
    assert ((pre["lo"] < 0) & (pre["hi"] > 0)).mean() >= 0.85  # no effect before the event
    assert abs(pre["estimate"].mean()) < 1e-6  # pooled reference: pre effects average to zero
    assert fit.pretrend_p > 0.001
    # during the full stop the loss is large and clearly negative
    assert (eff.filter(pl.col("rel_day").is_between(3, 7))["hi"] < 0).all()
    assert (post["pct"].drop_nans().drop_nulls() < 1).all()


def test_balanced_panel_matches_difference_in_differences(sim, fit):
    sales, inventory, _, _, _ = sim
    tr = treatment_from_inventory(inventory, EVENT, 5, 8, FILL)
    sd = (
        sales.group_by("date", "store_id")
        .agg(pl.col("revenue").sum())
        .join(tr, on="store_id")
        .with_columns(rel=(pl.col("date") - pl.lit(EVENT)).dt.total_days())
        .filter(pl.col("rel").is_between(-28, 27))
    )
    gap = (
        sd.group_by("rel")
        .agg(
            (
                pl.col("revenue").filter(pl.col("treated")).mean()
                - pl.col("revenue").filter(~pl.col("treated")).mean()
            ).alias("gap")
        )
        .sort("rel")
    )
    ref = gap.filter(pl.col("rel") < 0)["gap"].mean()
    did = gap["gap"].to_numpy() - ref
    np.testing.assert_allclose(fit.effects["estimate"].to_numpy(), did, rtol=1e-6, atol=1e-4)


def test_shock_common_to_all_stores_is_not_attributed():
    sales, inventory, _, _, truth = simulate_panel(n=200, seed=3, common_post_shock=-0.3)
    res = event_study(sales, EVENT, inventory=inventory, partial_fill=FILL)
    # the 30% drop hits controls too: absorbed by the date effects, only the stock-out loss remains
    assert res.lost_sales_lo < truth < res.lost_sales_hi
    assert "relative to stores that kept stock" in res.report()
    assert "absorbed by the date effects" in res.report()


def test_missing_zero_rows_are_filled(sim, fit):
    sales = sim[0]
    no_zero = sales.filter(pl.col("revenue") > 0)
    assert no_zero.height < sales.height  # empty stores sold nothing on some days
    res = event_study(no_zero, EVENT, inventory=sim[1], partial_fill=FILL)
    assert res.lost_sales == pytest.approx(fit.lost_sales, rel=1e-9)


def test_heterogeneity_by_cover_bin_and_region(sim):
    sales, inventory, stores, _, truth = sim
    res = event_study(sales, EVENT, inventory=inventory, partial_fill=FILL, by="cover_bin")
    g = res.by_group
    assert g["group"].to_list()[0] == "<2 days"  # ordered by cover
    losses = g["lost_per_treated_store"].to_numpy()
    assert losses[0] > losses[-1]  # less cover, more lost per store
    assert g["lost_sales"].sum() == pytest.approx(res.lost_sales, rel=0.1)
    reg = event_study(sales, EVENT, inventory=inventory, partial_fill=FILL, by="region", stores=stores)
    assert reg.by_group["group"].to_list() == ["R0", "R1", "R2"]
    assert reg.by_group["lost_sales"].sum() == pytest.approx(truth, rel=0.25)
    same = event_study(
        sales,
        EVENT,
        inventory=inventory,
        partial_fill=FILL,
        by="region",
        stores=stores,
        group_controls="same",
    )
    assert (same.by_group["n_control"] < reg.by_group["n_control"]).all()
    assert "By region" in reg.report()


def test_intensity_treatment_recovers_total(sim):
    sales, inventory, _, _, truth = sim
    tr = treatment_from_inventory(inventory, EVENT, 5, 8, FILL)
    intensity = tr.select("store_id", pl.col("expected_lost_days").alias("treated"))
    res = event_study(sales, EVENT, treated=intensity)
    # one effect per day per unit of intensity is only an approximation of each store's own loss path,
    # so only the point is checked (the binary split is the default for that reason)
    assert abs(res.lost_sales / truth - 1) < 0.2
    assert res.n_treated == int((tr["expected_lost_days"] > 0).sum())


def test_long_panel_input_and_loss_window():
    sales, inventory, _, _, truth = simulate_panel(n=120, days=730, event_day=400, seed=5)
    res = event_study(sales, EVENT, inventory=inventory, partial_fill=FILL, loss_window=(0, 12))
    assert res.nobs == 120 * 56
    assert res.loss_window == (0, 12)
    assert res.lost_sales_lo < truth < res.lost_sales_hi


def test_summary_chart_report(fit):
    s = fit.summary()
    assert s["metric"].to_list()[0] == "lost_sales"
    assert s["estimate"][0] == pytest.approx(fit.lost_sales)
    spec = fit.chart().to_dict()
    assert len(spec["layer"]) == 4
    text = fit.report()
    assert "interval" in text and "CA$" in text


def test_treatment_from_inventory_threshold():
    inv = pl.DataFrame(
        {
            "date": [dt.date(2022, 8, 1), dt.date(2022, 8, 4), dt.date(2022, 8, 4), dt.date(2022, 8, 5)],
            "store_id": ["A", "A", "B", "B"],
            "days_of_cover": [20.0, 3.0, 9.0, 1.0],
        }
    )
    tr = treatment_from_inventory(inv, EVENT, 5, 8, 0.5)  # threshold 9 days; the 2022-08-05 row is ignored
    assert tr["store_id"].to_list() == ["A", "B"]
    assert tr["days_of_cover"].to_list() == [3.0, 9.0]
    assert tr["treated"].to_list() == [True, False]
    assert tr["expected_lost_days"][1] == 0.0 and tr["expected_lost_days"][0] > 0
    assert tr["cover_bin"].to_list() == ["2-4 days", "control (>=9 days)"]


def test_bad_input_is_a_clear_error(sim):
    sales, inventory, _, _, _ = sim
    with pytest.raises(InputError, match="outside the data"):
        event_study(sales, dt.date(2030, 1, 1), inventory=inventory)
    with pytest.raises(InputError, match="no control stores"):
        event_study(sales, EVENT, treated=inventory.select("store_id", treated=pl.lit(True)))
    with pytest.raises(InputError, match="window"):
        event_study(sales, EVENT, window=(0, 10), inventory=inventory)
    with pytest.raises(InputError, match="treated"):
        event_study(sales, EVENT)
    with pytest.raises(InputError, match="column"):
        event_study(sales.drop("revenue"), EVENT, inventory=inventory)
    with pytest.raises(InputError, match="partial_fill"):
        event_study(sales, EVENT, inventory=inventory, partial_fill=1.5)
    with pytest.raises(InputError, match="by='nope'"):
        event_study(sales, EVENT, inventory=inventory, by="nope")
    monthly = sales.filter(pl.col("date").dt.day() == 1)
    with pytest.raises(InputError, match="daily"):
        event_study(monthly, EVENT, inventory=inventory)
    with pytest.raises(InputError, match="before the event start"):
        treatment_from_inventory(inventory.with_columns(date=pl.lit(EVENT)), EVENT)


# ------------------------------------------------------------------------------ generated dataset


@pytest.fixture(scope="module")
def generated(outage_dataset):
    return outage_dataset


def test_generated_dataset_loss_recovered(generated):
    truth = generated.manifest["truth"]["outage_2022"]
    res = event_study(
        generated.sales,
        EVENT,
        inventory=generated.inventory,
        partial_fill=float(truth["partial_fill"]),
        by="cover_bin",
        loss_window=(0, 12),  # the disrupted days, 2022-08-05 to 2022-08-17
    )
    total = float(truth["lost_sales_total"])
    assert res.lost_sales_lo < total < res.lost_sales_hi
    assert abs(res.lost_sales / total - 1) < 0.25
    assert res.by_group["group"].to_list()[0] == "<2 days"
    assert res.by_group["lost_per_treated_store"][0] > res.by_group["lost_per_treated_store"][-1]
    # the default threshold (partial_fill 0.5) treats more stores; stores that kept stock add no loss
    res_default = event_study(generated.sales, EVENT, inventory=generated.inventory, loss_window=(0, 12))
    assert res_default.lost_sales_lo < total < res_default.lost_sales_hi


def test_group_table_suppresses_groups_with_few_treated_stores():
    from cannabis_market.analysis.event_study import EventStudyResult

    groups = pl.DataFrame(
        {
            "group": ["A", "B"],
            "n_treated": [2, 40],
            "n_control": [10, 10],
            "lost_sales": [500.0, 9000.0],
            "lost_sales_lo": [100.0, 8000.0],
            "lost_sales_hi": [900.0, 10000.0],
        }
    )
    res = EventStudyResult.__new__(EventStudyResult)
    res.by_group = groups
    safe = res.group_table(min_stores=3)
    assert safe["suppressed"].to_list() == [True, False]
    assert safe.filter(pl.col("group") == "A")["lost_sales"].item() is None
    assert safe.filter(pl.col("group") == "B")["lost_sales"].item() == 9000.0
    assert "n_stores" not in safe.columns
