"""Pricing analytics: recovery of known truth (own simulations and the generator), real Oregon prices,
and clear errors for bad input."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cannabis_market.analysis import pricing as P
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date

from conftest import real_file

OREGON = "oregon_olcc_monthly_sales_prices_2016-2021.xlsx"
GRAMS_PER_POUND = 453.59237  # Oregon reports wholesale flower in USD per pound


# ------------------------------------------------------------------------------------ simulators


def _months(n: int, start: dt.date = dt.date(2019, 1, 1)) -> pl.Series:
    return pl.date_range(start, dt.date(start.year + n // 12 + 2, 1, 1), "1mo", eager=True)[:n]


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) noise with marginal standard deviation `sd`."""
    u = np.empty(n)
    u[0] = rng.normal(0, sd)
    for i in range(1, n):
        u[i] = phi * u[i - 1] + rng.normal(0, sd * math.sqrt(1 - phi**2))
    return u


def _price_series(seed, n=72, rate=-0.10, phi=0.5, sd=0.03, brk=None, rate_after=None) -> pl.DataFrame:
    """Monthly price per gram on a log-linear path (optionally kinked at index `brk`) with AR(1) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    b = math.log1p(rate) / 12
    y = math.log(12.0) + b * t
    if brk is not None:
        b2 = math.log1p(rate_after) / 12
        y = np.where(t >= brk, math.log(12.0) + b * brk + b2 * (t - brk), y)
    return pl.DataFrame({"period": _months(n), "price_per_g": np.exp(y + _ar1(rng, n, phi, sd))})


def _elasticity_panel(seed, eps=-1.3, n_stores=120, n_t=36) -> pl.DataFrame:
    """Store-month panel where busy (high-quality) stores charge more, and within-store price shocks are
    exogenous: the cross-section is biased upward, the fixed-effects slope is the true elasticity."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(n_stores), n_t)
    t = np.tile(np.arange(n_t), n_stores)
    quality = rng.normal(0, 0.4, n_stores)
    level = 0.5 * quality + rng.normal(0, 0.05, n_stores)
    shock = np.concatenate([_ar1(rng, n_t, 0.6, 0.08) for _ in range(n_stores)])
    common_p = rng.normal(0, 0.03, n_t) - 0.005 * np.arange(n_t)
    common_q = rng.normal(0, 0.05, n_t)
    log_p = math.log(10) + level[s] + common_p[t] + shock
    log_q = 8 + 1.2 * quality[s] + common_q[t] + eps * log_p + rng.normal(0, 0.1, s.size)
    grams = np.exp(log_q)
    return pl.DataFrame(
        {
            "period": _months(n_t).gather(t),
            "store_id": [f"S{i:03d}" for i in s],
            "revenue": np.exp(log_p) * grams,
            "grams": grams,
        }
    )


def _competition_panel(seed, delta=-0.10, n_munis=30, n_t=48, compression=-0.08):
    """Stores open at random dates in their municipality; log price falls by delta per log(1 + competitors)
    and every store's base price compresses by `compression` a year (plus small common noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    pops = {}
    common = math.log1p(compression) / 12 * np.arange(n_t) + _ar1(rng, n_t, 0.5, 0.005)
    sid = 0
    for m in range(n_munis):
        pops[f"M{m:02d}"] = int(rng.integers(20_000, 400_000))
        k = int(rng.integers(2, 9))
        opens = np.where(rng.random(k) < 0.3, 0, rng.integers(0, n_t - 6, k))
        for o in opens:
            rows += [(sid, f"M{m:02d}", int(o), rng.normal(0, 0.1))]
            sid += 1
    stores = pl.DataFrame(rows, schema=["sid", "municipality", "open", "level"], orient="row")
    grid = stores.join(pl.DataFrame({"t": np.arange(n_t)}), how="cross").filter(pl.col("t") >= pl.col("open"))
    grid = grid.with_columns(competitors=pl.len().over("municipality", "t") - 1)
    noise = rng.normal(0, 0.03, grid.height)
    log_p = (
        math.log(11)
        + grid["level"].to_numpy()
        + common[grid["t"].to_numpy()]
        + delta * np.log1p(grid["competitors"].to_numpy())
        + noise
    )
    grams = np.exp(rng.normal(8, 0.3, grid.height))
    panel = pl.DataFrame(
        {
            "period": _months(n_t).gather(grid["t"]),
            "store_id": grid["sid"].cast(pl.String),
            "municipality": grid["municipality"],
            "competitors": grid["competitors"],
            "revenue": np.exp(log_p) * grams,
            "grams": grams,
        }
    )
    years = range(2019, 2019 + n_t // 12 + 1)
    population = pl.DataFrame(
        [(m, y, p) for m, p in pops.items() for y in years],
        schema=["municipality", "year", "population"],
        orient="row",
    )
    return panel, population


# ----------------------------------------------------------------------------------- price trend


def test_trend_recovers_compression_rate_with_interval():
    res = P.price_trend(_price_series(1), breaks=False)
    assert res.annual.lo < -0.10 < res.annual.hi
    assert abs(res.annual_rate + 0.10) < 0.02
    # the stated formula: annual = exp(12 * monthly log slope) - 1
    assert res.annual_rate == pytest.approx(math.expm1(12 * res.slope.estimate))
    assert res.compression == pytest.approx(-res.annual_rate)


def test_trend_interval_coverage_near_nominal_with_autocorrelated_noise():
    n_rep = 200
    hits = 0
    for s in range(n_rep):
        r = P.price_trend(_price_series(100 + s, phi=0.6), breaks=False)
        hits += r.annual.lo < -0.10 < r.annual.hi
    assert hits / n_rep >= 0.87  # nominal 0.95; plain Newey-West gives about 0.8 here


def test_trend_quarterly_and_daily_frequencies_use_periods_per_year():
    q = _price_series(2, n=24).with_columns(period=_months(72).gather_every(3)[:24])
    res = P.price_trend(q, freq="quarterly", breaks=False)
    # 24 quarters, true annual rate -10% was applied per *month index*, i.e. per quarter here
    truth = math.expm1(4 * math.log1p(-0.10) / 12)
    assert res.annual.lo < truth < res.annual.hi


def test_break_found_near_true_break_with_rates_either_side():
    res = P.price_trend(_price_series(5, n=72, rate=-0.20, phi=0.5, sd=0.02, brk=40, rate_after=0.08))
    b = res.brk
    assert b is not None and abs(b.index - 40) <= 3
    assert b.p_value < 0.05
    assert b.before.lo < -0.20 < b.before.hi or abs(b.before.estimate + 0.20) < 0.03
    assert b.after.lo < 0.08 < b.after.hi or abs(b.after.estimate - 0.08) < 0.03
    s = res.summary()
    assert s["measure"].to_list() == [
        "annual_rate",
        "annual_rate_before_break",
        "annual_rate_after_break",
        "break_sup_f",
    ]


def test_break_test_rarely_fires_without_a_break():
    rejections = sum(
        P.price_trend(_price_series(300 + s, phi=0.5), n_boot=199, seed=s).brk.p_value < 0.05
        for s in range(40)
    )
    assert rejections / 40 <= 0.15


def test_short_series_skips_break_with_note():
    res = P.price_trend(_price_series(3, n=10))
    assert res.brk is None and "too short" in res.report()


def test_plain_newey_west_option_matches_statsmodels_point_estimate():
    df = _price_series(4)
    a = P.price_trend(df, breaks=False)
    b = P.price_trend(df, breaks=False, hac="nw")
    assert a.annual_rate == pytest.approx(b.annual_rate)
    assert b.annual.lo < b.annual_rate < b.annual.hi


# ------------------------------------------------------------------------------------ elasticity


def test_elasticity_recovers_truth_and_beats_cross_section():
    covered = 0
    for seed in range(5):
        res = P.price_elasticity(_elasticity_panel(seed))
        e = res.elasticity
        covered += e.lo < -1.3 < e.hi
        assert abs(e.estimate + 1.3) / 1.3 < 0.15
        assert abs(res.pooled.estimate + 1.3) > 0.5  # the bias the fixed effects remove
        assert res.between.estimate > e.estimate
    assert covered >= 4  # 95% intervals: missing twice in five has probability ~2%
    txt = res.report()
    assert "within-store" in txt and "cross-sectional" in txt and "-1.4" in txt
    assert res.summary().height == 3


def test_elasticity_with_categories_gives_pooled_and_per_category_rows():
    a = _elasticity_panel(8).with_columns(category=pl.lit("dried_flower"))
    b = _elasticity_panel(9).with_columns(category=pl.lit("vapes"))
    res = P.price_elasticity(pl.concat([a, b]))
    assert set(res.by_category) == {"dried_flower", "vapes"}
    assert res.elasticity.lo < -1.3 < res.elasticity.hi
    assert res.fe[0] == "store x category"


# ----------------------------------------------------------------------------------- competition


def test_competition_effect_sign_size_and_per_competitor_cut():
    panel, population = _competition_panel(11)
    res = P.competition_price_effect(panel, population=population)
    e = res.log1p_competitors
    assert e.lo < -0.10 < e.hi and e.hi < 0
    pc = res.per_competitor_pct
    assert pc.estimate < 0 and pc.hi < 0
    assert res.density is not None and res.density.estimate < 0
    assert res.cluster == "municipality" and res.n_clusters == 30
    assert "additional local competitor" in res.report()
    assert set(res.summary()["term"]) == {"log(1 + competitors)", "competitors", "density"}


def test_compression_of_base_price_recovered_net_of_competition():
    panel, _ = _competition_panel(12, delta=-0.15, compression=-0.08)
    idx = P.price_index(panel)
    assert idx["index"][0] == pytest.approx(100.0)
    raw = P.price_trend(idx, breaks=False)  # market price: compression plus the entry wave
    res = P.compression_trend(panel, breaks=False)
    assert res.annual.lo < -0.08 < res.annual.hi
    assert raw.annual_rate < res.annual.lo  # the raw price overstates compression
    assert "holds local competition fixed" in res.report()


# --------------------------------------------------------------------------------- margin & gap


def test_margin_squeeze_arithmetic_and_trend():
    prices = _price_series(21, n=48, rate=-0.12, sd=0.01)
    res = P.margin_squeeze(prices)
    f = res.frame
    assert np.allclose(f["margin_per_g"], f["price_per_g"] - P.DEFAULT_WHOLESALE_PER_G)
    assert np.allclose(f["margin_pct"], f["margin_per_g"] / f["price_per_g"])
    slope = np.polyfit(np.arange(48), f["margin_pct"].to_numpy(), 1)[0] * 12
    m = res.margin_pct_trend
    assert m.lo < slope < m.hi and m.hi < 0
    # flat wholesale: the margin per gram falls faster than the retail price
    assert res.margin_trend.annual_rate < res.retail_trend.annual_rate < 0
    assert "4.05" in res.report()


def test_margin_squeeze_with_wholesale_path():
    prices = _price_series(22, n=48)
    path = P.wholesale_path(prices["period"], annual_change=-0.05)
    mid = P.wholesale_path([dt.date(2023, 7, 1)])
    assert mid["wholesale_per_g"][0] == pytest.approx(4.05)
    res = P.margin_squeeze(prices, wholesale=path)
    assert np.allclose(res.frame["wholesale_per_g"], path["wholesale_per_g"])
    late = path.filter(pl.col("period") > dt.date(2020, 1, 1))
    with pytest.raises(InputError, match="wholesale path starts"):
        P.margin_squeeze(prices, wholesale=late)


def test_illicit_gap_from_statcan_context_figures():
    legal, illicit = P.statcan_legal_illicit()
    gap = P.illicit_gap(legal, illicit)
    assert gap.height == legal.height
    assert np.allclose(gap["gap"], gap["legal"] - gap["illicit"])
    assert (gap["premium_pct"] > 0).all()
    assert "Statistics Canada" in P.STATCAN_SOURCE
    spec = P.illicit_gap_chart(gap, source=P.STATCAN_SOURCE).to_dict()
    assert "layer" in spec


def test_illicit_gap_aligns_monthly_legal_to_quarterly_illicit():
    legal = _price_series(30, n=15)
    illicit = pl.DataFrame({"period": [dt.date(2019, 1, 1), dt.date(2019, 4, 1)], "price_per_g": [6.0, 5.8]})
    with pytest.raises(InputError, match="share no period"):
        P.illicit_gap(legal.filter(pl.col("period").dt.month() == 2), illicit)
    gap = P.illicit_gap(legal, illicit, align="quarterly")
    q1 = legal.filter(pl.col("period") < dt.date(2019, 4, 1))["price_per_g"].mean()
    assert gap["legal"][0] == pytest.approx(q1)


# ---------------------------------------------------------------------------------- tables & glue


def _tiny_sales():
    stores = pl.DataFrame(
        {
            "store_id": ["A", "B", "C"],
            "municipality": ["X", "X", "Y"],
            "region": ["R1", "R1", "R2"],
            "opened_on": [dt.date(2022, 1, 1), dt.date(2022, 1, 17), dt.date(2022, 1, 1)],
            "closed_on": [None, None, dt.date(2022, 2, 14)],
        }
    )
    sales = pl.DataFrame(
        {
            "date": [dt.date(2022, 1, 5), dt.date(2022, 1, 20), dt.date(2022, 1, 20), dt.date(2022, 2, 3)]
            * 2,
            "store_id": ["A", "A", "B", "C"] * 2,
            "category": ["dried_flower"] * 4 + ["vapes"] * 4,
            "revenue": [100.0, 90.0, 50.0, 30.0, 40.0, 40.0, 20.0, 15.0],
            "grams": [10.0, 10.0, 5.0, 3.0, 2.0, 2.0, 1.0, 1.0],
        }
    )
    return sales, stores


def test_price_table_is_sales_weighted_and_joins_region():
    sales, stores = _tiny_sales()
    t = P.price_table(sales, by=("category", "region"), stores=stores)
    row = t.filter((pl.col("category") == "dried_flower") & (pl.col("region") == "R1"))
    assert row["price_per_g"][0] == pytest.approx((100 + 90 + 50) / (10 + 10 + 5))
    assert set(t.columns) >= {"period", "category", "region", "revenue", "grams", "price_per_g"}


@pytest.mark.parametrize(
    "change",
    [
        {},  # clean: the same table
        {"grams": [None, 10.0, 5.0, 3.0, 2.0, None, 1.0, 1.0]},  # null grams dropped
        {"revenue": [0.0, 90.0, 50.0, 30.0, None, 40.0, 20.0, 15.0], "grams": [0.0] + [10.0] * 7},  # no sales
        {"grams": [10.0, -1.0, 5.0, 3.0, 2.0, 0.0, 1.0, 1.0]},  # grams <= 0
        {"revenue": [100.0, -5.0, 50.0, 30.0, 40.0, 40.0, 20.0, 15.0]},  # revenue <= 0
        {"revenue": [100.0, float("nan"), 50.0, 30.0, 40.0, float("inf"), 20.0, 15.0]},  # non-finite
        {"grams": [None] * 8},  # every gram missing
    ],
)
def test_price_table_one_lazy_pass_keeps_the_row_rules_of_with_price(change):
    """Typed dates take the lazy one-pass path, ISO text the eager with_price path: same table or
    the same error, whatever the rows."""
    sales, _ = _tiny_sales()
    sales = sales.with_columns(*[pl.Series(k, v, dtype=pl.Float64) for k, v in change.items()])
    as_text = sales.with_columns(pl.col("date").cast(pl.String))
    try:
        want = P.price_table(as_text, freq="weekly")
    except InputError as e:
        with pytest.raises(InputError) as got:
            P.price_table(sales.lazy(), freq="weekly")
        assert str(got.value) == str(e)
        return
    assert_frame_equal(P.price_table(sales.lazy(), freq="weekly"), want, rel_tol=1e-12)
    assert_frame_equal(P.price_table(sales, freq="weekly"), want, rel_tol=1e-12)


def test_store_period_prices_averages_competition_over_days():
    sales, stores = _tiny_sales()
    p = P.store_period_prices(sales, stores)
    a_jan = p.filter((pl.col("store_id") == "A") & (pl.col("period") == dt.date(2022, 1, 1)))
    # B opens on Jan 17: A has a competitor on 15 of 31 days
    assert a_jan["competitors"][0] == pytest.approx(15 / 31)
    assert a_jan["log1p_competitors"][0] == pytest.approx(15 / 31 * math.log(2))
    b_jan = p.filter((pl.col("store_id") == "B") & (pl.col("period") == dt.date(2022, 1, 1)))
    assert (a_jan["open_days"][0], b_jan["open_days"][0]) == (31, 15)
    assert b_jan["partial"][0] and a_jan["partial"][0]  # opening periods are flagged, even from the 1st
    c_feb = p.filter(pl.col("store_id") == "C")
    assert c_feb["partial"][0] and c_feb["competitors"][0] == 0


def test_charts_are_small_and_build():
    trend = P.price_trend(_price_series(40))
    panel, population = _competition_panel(13)
    charts = [
        trend.chart(),
        P.price_elasticity(_elasticity_panel(14)).chart(),
        P.competition_price_effect(panel, population=population).chart(),
        P.margin_squeeze(_price_series(41)).chart(),
    ]
    for ch in charts:
        spec = ch.to_dict()
        n_rows = sum(len(v) for v in spec.get("datasets", {}).values())
        assert 0 < n_rows <= 5000


def test_plot_data_is_the_aggregated_frame_each_chart_draws():
    trend = P.price_trend(_price_series(40, brk=40, rate_after=0.05))
    d = trend.plot_data()
    assert set(d["series"]) == {"observed", "log-linear trend", "trend with one break"}
    assert d.filter(pl.col("series") == "observed").height == 72
    seg = d.filter(pl.col("series") == "trend with one break")
    assert (seg.filter(pl.col("period") >= trend.brk.date)["part"] == "after").all()
    el = P.price_elasticity(_elasticity_panel(14))
    assert el.plot_data().height == 20 and el.plot_data()["n"].sum() == el.nobs
    panel, population = _competition_panel(13)
    comp = P.competition_price_effect(panel, population=population).plot_data()
    assert comp["n"].min() >= 5 and comp["competitors"].is_sorted()
    m = P.margin_squeeze(_price_series(41)).plot_data()
    assert m.height == 3 * 72 and set(m["series"]) == {"retail", "wholesale", "margin"}
    daily = pl.DataFrame(
        {"period": pl.date_range(dt.date(2019, 1, 1), dt.date(2024, 12, 31), "1d", eager=True)}
    ).with_columns(price_per_g=10.0 * (1 - pl.int_range(pl.len()) / 1e5))
    assert P.price_trend(daily, freq="daily", breaks=False).plot_data().height == 2 * 72  # monthly means


# ------------------------------------------------------------------------------------ bad input


def test_missing_grams_column_is_a_clear_error():
    panel = _elasticity_panel(15).drop("grams")
    with pytest.raises(InputError, match="'grams'"):
        P.price_elasticity(panel)
    sales, _ = _tiny_sales()
    with pytest.raises(InputError, match="'grams'"):
        P.price_table(sales.drop("grams"))


def test_all_null_grams_is_a_clear_error():
    panel = _elasticity_panel(16).with_columns(grams=pl.lit(None, dtype=pl.Float64))
    with pytest.raises(InputError, match=r"'grams' is empty \(all 4320 values are null\)"):
        P.price_elasticity(panel)


def test_zero_or_negative_prices_are_clear_errors():
    prices = _price_series(17).with_columns(
        price_per_g=pl.when(pl.int_range(pl.len()) < 2).then(0.0).otherwise(pl.col("price_per_g"))
    )
    with pytest.raises(InputError, match=r"must be > 0.*2 zero or negative"):
        P.price_trend(prices)
    panel = _elasticity_panel(18)
    bad = panel.with_columns(grams=pl.when(pl.int_range(pl.len()) < 3).then(-1.0).otherwise(pl.col("grams")))
    with pytest.raises(InputError, match=r"3 row\(s\) of 4320 have grams <= 0"):
        P.price_elasticity(bad)
    bad = panel.with_columns(
        revenue=pl.when(pl.int_range(pl.len()) < 4).then(0.0).otherwise(pl.col("revenue"))
    )
    with pytest.raises(InputError, match=r"zero or negative price per gram: 4 row"):
        P.price_elasticity(bad)
    with pytest.raises(InputError, match="wholesale price must be > 0"):
        P.margin_squeeze(_price_series(19), wholesale=0.0)


def test_single_period_and_too_few_observations_are_clear_errors():
    panel = _elasticity_panel(20)
    one = panel.filter(pl.col("period") == pl.col("period").min())
    with pytest.raises(InputError, match="single-period"):
        P.price_elasticity(one)
    with pytest.raises(InputError, match="single-period"):
        P.price_trend(_price_series(21, n=1))
    with pytest.raises(InputError, match="too few observations: 4 periods"):
        P.price_trend(_price_series(22, n=4))
    few = panel.filter(pl.col("store_id").is_in(["S000", "S001"]))
    with pytest.raises(InputError, match="too few observations"):
        P.price_elasticity(few)
    dup = pl.concat([_price_series(23, n=12), _price_series(24, n=12)])
    with pytest.raises(InputError, match="more than once"):
        P.price_trend(dup)
    with pytest.raises(InputError, match="competitors"):
        P.competition_price_effect(panel)


def test_no_sales_rows_are_dropped_not_errors():
    panel = _elasticity_panel(25)
    zeros = panel.head(5).with_columns(
        revenue=pl.lit(0.0), grams=pl.lit(0.0), period=pl.lit(dt.date(2030, 1, 1))
    )
    res = P.price_elasticity(pl.concat([panel, zeros]))
    assert res.notes == {"no_sales": 5}


# ------------------------------------------------------------------------------- generated data


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from cannabis_market.data.generate import generate_dataset
    from cannabis_market.data.loader import load_dataset

    out = generate_dataset(tmp_path_factory.mktemp("gen") / "ds", seed=2022, stores=200, frequency="daily")
    ds = load_dataset(out)
    panel = P.store_period_prices(ds.sales, ds.stores, by_category=True)
    return ds, panel


def test_generated_elasticity_covers_truth(generated):
    ds, panel = generated
    truth = ds.truth["price_elasticity"]
    res = P.price_elasticity(panel)
    assert res.elasticity.lo < truth < res.elasticity.hi
    assert abs(res.estimate - truth) / abs(truth) < 0.15


def test_generated_compression_rate_within_interval(generated):
    ds, panel = generated
    truth = ds.truth["price_compression_annual"]
    res = P.compression_trend(panel, breaks=False)
    assert res.annual.lo < truth < res.annual.hi
    # the raw market price falls faster: it also carries the entry wave (more competitors nearby)
    flower = P.price_table(ds.sales).filter(pl.col("category") == "dried_flower")
    assert P.price_trend(flower, breaks=False).annual_rate < res.annual_rate


def test_generated_density_effect_sign_and_size(generated):
    ds, panel = generated
    truth = ds.truth["price_density_effect"]
    res = P.competition_price_effect(panel, population=ds.population)
    e = res.log1p_competitors
    assert np.sign(e.estimate) == np.sign(truth)
    assert e.lo < truth < e.hi


# ---------------------------------------------------------------------------------------- real data


def _read_oregon() -> pl.DataFrame:
    """Oregon OLCC monthly flower prices: period, price_per_g (retail, USD/g), wholesale_per_g (USD/g)."""
    f = real_file(OREGON)
    df = pl.read_excel(f)
    return df.select(
        pl.col("date").cast(pl.Date).alias("period"),
        pl.col("retail_flower_price").cast(pl.Float64).alias("price_per_g"),
        (pl.col("wholesale_flower_price").cast(pl.Float64) / GRAMS_PER_POUND).alias("wholesale_per_g"),
    )


@pytest.mark.realdata
def test_oregon_flower_price_compression_and_break():
    prices = _read_oregon()
    assert prices.height == 54
    res = P.price_trend(prices)
    a = res.annual
    assert all(math.isfinite(v) for v in (a.estimate, a.lo, a.hi))
    assert a.estimate < 0 and a.lo < a.estimate < a.hi
    b = res.brk
    assert b is not None and b.p_value < 0.05
    assert dt.date(2018, 7, 1) <= b.date <= dt.date(2020, 1, 1)  # prices fell, then rose after ~2019
    assert b.before.hi < 0 < b.after.estimate
    assert fmt_date(b.date, monthly=True) in res.report()
    assert res.chart().to_dict()


@pytest.mark.realdata
def test_oregon_margin_with_real_wholesale_path():
    o = _read_oregon()
    res = P.margin_squeeze(o.select("period", "price_per_g"), wholesale=o.select("period", "wholesale_per_g"))
    f = res.frame
    assert np.allclose(f["margin_per_g"], o["price_per_g"] - o["wholesale_per_g"])
    m = res.margin_trend.annual
    assert all(math.isfinite(v) for v in (m.estimate, m.lo, m.hi)) and m.lo < m.estimate < m.hi
    assert res.summary().height == 5
