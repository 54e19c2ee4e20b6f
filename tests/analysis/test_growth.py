"""Growth, demand, saturation and cannibalization: recovery of known truth, generated data, real data.

Simulations here draw from known parameters and check that intervals cover them. The generated-dataset
tests read their truth from the generator's manifest; the Washington tests check that the real panel
gives finite estimates with intervals (there is no truth to compare with).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis import growth as G
from cannabis_market.analysis.growth._common import _add_months as add_months
from cannabis_market.analysis.growth.cannibalization import _haversine_km as haversine_km
from cannabis_market.errors import InputError

from conftest import real_file

WA_FILE = "washington_lcb_retail_sales_by_license_monthly_2017-2021.xlsx"


def _months(start: dt.date, n: int) -> list[dt.date]:
    return [add_months(start, k) for k in range(n)]


# ------------------------------------------------------------------------------------------------
# simulations with known truth
# ------------------------------------------------------------------------------------------------

TRUE_K, TRUE_R, TRUE_T0 = 1800.0, 0.12, 30.0


def _logistic_counts(seed: int, n: int = 70, phi: float = 0.6, sd: float = 20.0) -> pl.DataFrame:
    """Logistic store path plus AR(1) noise (counts drift off the curve for months at a time)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + rng.normal(0, sd)
    y = np.maximum(TRUE_K / (1 + np.exp(-TRUE_R * (t - TRUE_T0))) + e, 0).round()
    return pl.DataFrame({"period": _months(dt.date(2019, 4, 1), n), "stores_open": y})


def _seasonal_sales(seed: int, n: int, extra: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """Monthly sales with trend and strong seasonality; also returns `extra` future values."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + extra)
    season = 0.15 * np.sin(2 * np.pi * t / 12) + 0.07 * np.cos(2 * np.pi * t / 6)
    e = np.zeros(n + extra)
    for i in range(1, n + extra):
        e[i] = 0.4 * e[i - 1] + rng.normal(0, 0.03)
    y = np.exp(np.log(5e7) + 0.012 * t + season + e)
    df = pl.DataFrame({"period": _months(dt.date(2019, 1, 1), n), "sales": y[:n]})
    return df, y[n:]


def _sim_market(
    seed: int, b: float, n_stores: int = 140, n_munis: int = 22, n_months: int = 60
) -> pl.DataFrame:
    """Store-month panel: staggered openings on random days, some closures, municipality competition.

    log(full-month revenue) = store effect + month effect + b * log(1 + c), c = average number of other
    stores of the municipality open on a day of the month; opening/closing months only get the days open.
    """
    rng = np.random.default_rng(seed)
    start = dt.date(2019, 1, 1)
    months = _months(start, n_months)
    m_start = np.array([(m - start).days for m in months])
    m_len = np.array([(add_months(m, 1) - m).days for m in months])
    muni = rng.integers(0, n_munis, n_stores)
    opened = np.where(rng.random(n_stores) < 0.25, 0, rng.integers(1, (n_months - 8) * 30, n_stores))
    life = rng.integers(365, 5 * 365, n_stores)
    closes = rng.random(n_stores) < 0.2
    closed = np.where(closes, opened + life, 10**6)  # last day open
    # days open per store and month
    lo = np.maximum(opened[:, None], m_start[None, :])
    hi = np.minimum(closed[:, None], (m_start + m_len - 1)[None, :])
    days = np.clip(hi - lo + 1, 0, None).astype(float)
    muni_days = np.zeros((n_munis, n_months))
    np.add.at(muni_days, muni, days)
    comp = (muni_days[muni] - days) / m_len[None, :]
    a = rng.normal(np.log(150_000), 0.5, n_stores)
    g = np.cumsum(rng.normal(0.01, 0.03, n_months)) + 0.08 * np.sin(2 * np.pi * np.arange(n_months) / 12)
    noise = rng.normal(0, 0.08, (n_stores, n_months))
    full = np.exp(a[:, None] + g[None, :] + b * np.log1p(comp) + noise)
    revenue = full * days / m_len[None, :]
    si, ti = np.nonzero(days > 0)
    day0 = start
    return pl.DataFrame(
        {
            "period": [months[t] for t in ti],
            "store_id": [f"S{s:04d}" for s in si],
            "municipality": [f"M{muni[s]:02d}" for s in si],
            "region": [f"R{muni[s] % 4}" for s in si],
            "revenue": revenue[si, ti],
            "competitors": comp[si, ti],
            "opened_on": [day0 + dt.timedelta(days=int(opened[s])) for s in si],
            "closed_on": [day0 + dt.timedelta(days=int(closed[s])) if closes[s] else None for s in si],
        },
        schema_overrides={"closed_on": pl.Date},
    )


def test_logistic_parameters_recovered_within_intervals():
    hits = {"K": 0, "r": 0, "t0": 0}
    seeds = range(4)
    for seed in seeds:
        res = G.fit_store_growth(
            _logistic_counts(seed), models=("logistic",), horizon=6, n_boot=150, seed=seed
        )
        f = res.fits["logistic"]
        for p, true in (("K", TRUE_K), ("r", TRUE_R), ("t0", TRUE_T0)):
            lo, hi = f.interval[p]
            assert lo <= f.estimate[p] <= hi
            hits[p] += lo <= true <= hi
        assert abs(f.K - TRUE_K) / TRUE_K < 0.03
        assert f.interval["K"][1] - f.interval["K"][0] < 0.1 * TRUE_K  # informative, not just wide
    assert all(h >= 3 for h in hits.values()), hits


def test_growth_compares_models_and_forecasts_with_intervals():
    res = G.fit_store_growth(_logistic_counts(11), horizon=12, n_boot=120, seed=1)
    assert res.best_model == "logistic"  # the data are logistic; Gompertz is the wrong shape
    comp = res.comparison()
    assert comp.filter(pl.col("model") == "gompertz")["delta_aic"][0] > 0
    fc = res.forecast.filter(pl.col("model") == "logistic")
    assert fc.height == 12
    assert (fc["lo"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["hi"]).all()
    assert (fc["hi"] - fc["lo"]).to_numpy()[-1] > (fc["hi"] - fc["lo"]).to_numpy()[0] * 0.9
    s = res.summary()
    assert s.height == 2 and {"K", "K_lo", "K_hi", "r", "t0", "midpoint", "aic", "bic"} <= set(s.columns)
    assert res.midpoint("logistic") == add_months(dt.date(2019, 4, 1), round(res.fits["logistic"].t0))
    assert "carrying capacity" in res.report()


def test_demand_forecast_backtest_chooses_seasonal_model_on_seasonal_data():
    df, future = _seasonal_sales(3, 66, extra=12)
    res = G.forecast_demand(df, horizon=12, backtest_origins=6, models=("ets", "sarimax"))
    assert res.seasonal and res.chosen_model in ("ets", "sarimax")
    bt = res.backtest
    assert set(bt["model"]) == {"ets", "sarimax", "snaive", "naive"}
    assert bt.height == 4 * 12 and bt.select(pl.col("mape", "mase").is_finite().all()).row(0) == (True, True)
    err = res.backtest_error()
    # seasonal model must beat the non-seasonal naive benchmark clearly, and be accurate in absolute terms
    assert err["mase"] < 0.7 * res.backtest_error("naive")["mase"]
    assert err["mape"] < 0.08
    s = res.summary()
    assert s.columns == ["period", "forecast", "lo", "hi"] and s.height == 12
    assert s["period"][0] == dt.date(2024, 7, 1)
    inside = ((s["lo"].to_numpy() <= future) & (future <= s["hi"].to_numpy())).sum()
    assert inside >= 10
    # the forecast keeps the seasonal shape
    assert np.corrcoef(np.log(s["forecast"].to_numpy()), np.log(future))[0, 1] > 0.8


def test_demand_default_is_the_combination_and_reports_against_benchmarks():
    df, future = _seasonal_sales(5, 60, extra=6)
    res = G.forecast_demand(df, horizon=6, backtest_origins=4)
    assert res.chosen_model == "combined" and res.horizon == 6
    assert set(res.backtest["model"]) == {"combined", "ets", "sarimax", "snaive", "naive"}
    assert res.backtest.filter(pl.col("model") == "combined")["n_origins"].to_list() == [4] * 6
    s95, s80 = res.summary(), res.at_level(0.2)
    assert np.allclose(s95["forecast"], s80["forecast"])
    assert ((s80["lo"] > s95["lo"]) & (s80["hi"] < s95["hi"])).all()
    text = res.report()
    assert "seasonal naive" in text and "naive" in text and "last month of data" in text
    # the combination is between its parts one month ahead (no seasonal-naive share there)
    f = res.forecasts.filter(pl.col("period") == pl.col("period").min())
    parts = dict(zip(f["model"], f["forecast"], strict=True))
    assert min(parts["ets"], parts["sarimax"]) <= parts["combined"] <= max(parts["ets"], parts["sarimax"])


def test_demand_short_history_shortens_the_horizon_instead_of_failing():
    sales, _ = _seasonal_sales(1, 19)
    res = G.forecast_demand(sales, horizon=12)
    assert 1 <= res.horizon < 12 and res.summary().height == res.horizon and not res.seasonal
    assert "instead of the 12 asked for" in res.report()


def test_cannibalization_elasticity_recovered():
    covered = 0
    for seed in range(5):
        res = G.cannibalization(_sim_market(seed, b=-0.25))
        covered += res.lo < -0.25 < res.hi
        assert abs(res.elasticity + 0.25) < 0.2 * 0.25
    assert covered >= 4
    res = G.cannibalization(_sim_market(5, b=-0.25))
    assert res.n_excluded_partial > 0 and res.period_effects
    c = res.median_competitors
    expected = 1 - ((2 + c) / (1 + c)) ** res.elasticity
    assert res.share_taken == pytest.approx(expected)
    assert res.share_taken_lo <= res.share_taken <= res.share_taken_hi
    s = res.summary()
    assert s["quantity"][0] == "elasticity" and s.height == 2  # no coordinates -> no distance bands
    assert res.by_distance is None
    assert "store-months" in res.report()


def _coords_panel(seed: int, b_near: float, n: int = 160, T: int = 36) -> pl.DataFrame:
    """Stores scattered over ~28 x 20 km; only neighbours within 2 km take sales."""
    rng = np.random.default_rng(seed)
    lat = 43.6 + rng.random(n) * 0.25
    lon = -79.6 + rng.random(n) * 0.25
    open_m = np.where(rng.random(n) < 0.3, 0, rng.integers(1, T - 6, n))
    D = haversine_km(lat, lon)
    np.fill_diagonal(D, np.inf)
    near = (D <= 2.0).astype(float)
    present = (np.arange(T)[None, :] >= open_m[:, None]).astype(float)  # n x T
    n_near = (near @ present).T  # T x n
    a = rng.normal(11.5, 0.4, n)
    g = rng.normal(0, 0.05, T)
    rows = []
    months = _months(dt.date(2020, 1, 1), T)
    for i in range(n):
        for t in range(open_m[i], T):
            rev = math.exp(a[i] + g[t] + b_near * math.log1p(n_near[t, i]) + rng.normal(0, 0.05))
            rows.append((months[t], f"S{i}", rev, float(n_near[t, i]), months[open_m[i]], lat[i], lon[i]))
    cols = ["period", "store_id", "revenue", "competitors", "opened_on", "lat", "lon"]
    return pl.DataFrame(rows, schema=cols, orient="row")


def test_cannibalization_distance_bands_when_coordinates_exist():
    b_near, near_hits, far_hits, points = -0.3, 0, 0, []
    for seed in range(5):
        res = G.cannibalization(_coords_panel(seed, b_near), distance_bands_km=(2.0, 6.0))
        bands = {r["band"]: r for r in res.by_distance.iter_rows(named=True)}
        assert set(bands) == {"0-2km", "2-6km"}
        near_hits += bands["0-2km"]["lo"] < b_near < bands["0-2km"]["hi"]
        far_hits += bands["2-6km"]["lo"] < 0 < bands["2-6km"]["hi"]
        points.append(bands["0-2km"]["estimate"])
        assert res.summary().height == 4
    assert near_hits >= 4 and far_hits >= 4
    assert abs(np.mean(points) - b_near) < 0.05 * abs(b_near)


def _saturation_panel() -> tuple[pl.DataFrame, dict[str, int]]:
    rng = np.random.default_rng(2)
    months = _months(dt.date(2023, 1, 1), 24)
    rows, low = [], {}
    spec = {"East": (20, 6), "West": (15, 3), "North": (2, 1)}  # region: (stores, below break-even)
    for region, (n, n_low) in spec.items():
        low[region] = n_low
        for i in range(n):
            level = 50_000 if i < n_low else 150_000
            for m in months:
                rows.append(
                    (m, f"{region}{i}", region, level * math.exp(rng.normal(0, 0.05)), dt.date(2018, 5, 3))
                )
    # two new stores: opened in the second-to-last month, only one full month -> too new to judge
    for k in range(2):
        for m in months[-2:]:
            rows.append((m, f"New{k}", "East", 10_000.0, months[-2] + dt.timedelta(days=9)))
    cols = ["period", "store_id", "region", "revenue", "opened_on"]
    return pl.DataFrame(rows, schema=cols, orient="row"), low


def test_saturation_counts_stores_at_risk_without_store_rows():
    panel, low = _saturation_panel()
    fc_hist, _ = _seasonal_sales(1, 48)
    fc = G.forecast_demand(fc_hist, horizon=6, backtest_origins=3)
    res = G.saturation(panel, breakeven_monthly_revenue=80_000, trailing_months=6, forecast=fc)
    s = res.summary()
    assert "store_id" not in s.columns
    assert s.height == 4 and s["group"].to_list()[-1] == "All"
    by = {r["group"]: r for r in s.iter_rows(named=True)}
    for region, n_low in low.items():
        # North has 2 stores: its at-risk count and average are withheld (fewer than 3 stores)
        assert by[region]["stores_at_risk"] == (n_low if region != "North" else None)
    assert by["East"]["stores_too_new"] == 2 and by["East"]["stores_open"] == 22
    assert by["All"]["stores_at_risk"] == sum(low.values())
    assert by["North"]["sales_per_store"] is None  # 2 stores: below the disclosure threshold
    assert res.stores_at_risk_detail.height == sum(low.values())
    cap = res.capacity
    f = fc.summary()
    assert cap["capacity"].to_list() == pytest.approx((f["forecast"] / 80_000).to_list())
    assert (cap["oversupply_lo"] <= cap["oversupply"]).all() and (
        cap["oversupply"] <= cap["oversupply_hi"]
    ).all()
    n_open = by["All"]["stores_open"]
    assert cap["oversupply"].to_list() == pytest.approx((n_open - f["forecast"] / 80_000).to_list())
    assert "break-even" in res.report()


def test_saturation_withholds_dominated_groups_and_survives_a_tiny_selection():
    panel, _ = _saturation_panel()
    # one West store grows to ~2/3 of West's sales: West's average must be withheld, East's shown
    big = (pl.col("store_id") == "West5").cast(pl.Float64) * 4_000_000
    dominated = panel.with_columns(revenue=pl.col("revenue") + big)
    res = G.saturation(dominated, breakeven_monthly_revenue=80_000, trailing_months=6)
    by = {r["group"]: r for r in res.summary().iter_rows(named=True)}
    assert by["West"]["sales_per_store"] is None and by["West"]["suppressed"]
    assert by["East"]["sales_per_store"] is not None and not by["East"]["suppressed"]
    west = res.over_time.filter(pl.col("group") == "West")
    assert west["sales_per_store"].null_count() == west.height
    # a selection with fewer stores than min_cell: no crash, no count, a plain sentence instead
    north = G.saturation(panel.filter(pl.col("region") == "North"), breakeven_monthly_revenue=80_000)
    assert north.stores_at_risk is None
    text = north.report()
    assert "no count is shown" in text and "Current sales would carry" not in text


def test_store_counts_from_stores_table_balance_flows():
    stores = pl.DataFrame(
        {
            "store_id": ["a", "b", "c", "d", "e"],
            "opened_on": [
                dt.date(2020, 1, 15),
                dt.date(2020, 1, 1),
                dt.date(2020, 2, 10),
                dt.date(2020, 3, 5),
                dt.date(2020, 3, 1),
            ],
            "closed_on": [None, dt.date(2020, 2, 29), None, dt.date(2020, 3, 20), None],
        },
        schema_overrides={"closed_on": pl.Date},
    )
    c = G.store_counts(stores, end="2020-04-30")
    assert c["stores_open"].to_list() == [2, 3, 3, 3]  # b is open on Feb 29 (its last day), closed in March
    # the first month's openings are unknown: a store there may have opened before the data start
    assert c["openings"].to_list() == [None, 1, 2, 0]
    assert c["closures"].to_list() == [0, 0, 2, 0]
    diff = c["stores_open"].diff().to_list()[1:]
    assert diff == c["net_change"].to_list()[1:]
    # with a window starting after the first opening, the opening dates are known: nothing is censored
    assert G.store_counts(stores, start="2020-02-01", end="2020-04-30")["openings"].to_list() == [1, 2, 0]


def test_market_sales_from_a_series_only_dataset():
    from types import SimpleNamespace

    rows = [(dt.date(2020, m, 1), g, "sales", 100.0 * m + (g == "B")) for m in (1, 2, 3) for g in ("A", "B")]
    series = pl.DataFrame(rows, schema=["date", "geo", "metric", "value"], orient="row").lazy()
    ds = SimpleNamespace(stores=None, sales=None, series=series)
    assert G.market_sales(ds, geo="B")["sales"].to_list() == [101.0, 201.0, 301.0]
    with pytest.raises(InputError, match="pass `geo=`"):
        G.market_sales(ds)


def test_store_counts_from_panel_and_series():
    panel = pl.DataFrame(
        {
            "period": [dt.date(2021, m, 1) for m in (1, 1, 2, 2, 2, 3, 3)],
            "store_id": ["a", "b", "a", "b", "c", "a", "c"],
            "revenue": [1.0] * 7,
        }
    )
    c = G.store_counts(
        panel.with_columns(opened_on=pl.lit(dt.date(2020, 1, 1)))
    )  # a panel, not a stores table
    assert c["stores_open"].to_list() == [2, 3, 2]
    assert c["openings"].to_list() == [None, 1, 0] and c["closures"].to_list() == [0, 0, 1]
    series = pl.DataFrame(
        {
            "date": [dt.date(2021, 1, 31), dt.date(2021, 2, 28), dt.date(2021, 3, 31)],
            "geo": ["ON"] * 3,
            "metric": ["stores"] * 3,
            "value": [10.0, 12.0, 11.0],
        }
    )
    s = G.store_counts(series)
    assert s["stores_open"].to_list() == [10.0, 12.0, 11.0] and s["net_change"].to_list() == [None, 2.0, -1.0]


def test_charts_are_small_and_valid():
    market = _sim_market(1, b=-0.2, n_stores=60, n_months=30)
    g = G.fit_store_growth(G.store_counts(market), horizon=6, n_boot=40)
    d = G.forecast_demand(_seasonal_sales(4, 50)[0], horizon=6, backtest_origins=3)
    panel, _ = _saturation_panel()
    s = G.saturation(panel, breakeven_monthly_revenue=80_000, forecast=d)
    c = G.cannibalization(market)
    charts = [
        g.chart(),
        g.chart_flows(),
        d.chart(),
        d.chart_backtest(),
        s.chart(),
        s.chart_capacity(),
        c.chart(),
    ]
    with pytest.raises(InputError, match="openings/closures"):
        G.fit_store_growth(_logistic_counts(2), horizon=0, n_boot=20).chart_flows()
    for ch in charts:
        spec = ch.to_dict()
        datasets = spec.get("datasets", {})
        assert datasets and all(len(v) <= G.MAX_CHART_ROWS for v in datasets.values())


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------


def test_bad_input_is_a_clear_input_error():
    counts = _logistic_counts(0)
    with pytest.raises(InputError, match="at least 8 periods"):
        G.fit_store_growth(counts.head(5))
    with pytest.raises(InputError, match="stores_open"):
        G.fit_store_growth(counts.drop("stores_open"))
    with pytest.raises(InputError, match="never changes"):
        G.fit_store_growth(counts.with_columns(stores_open=pl.lit(5.0)))
    with pytest.raises(InputError, match="models"):
        G.fit_store_growth(counts, models=("richards",))
    sales, _ = _seasonal_sales(0, 40)
    with pytest.raises(InputError, match="too few"):
        G.forecast_demand(sales.head(10), horizon=12)
    with pytest.raises(InputError, match="backtest_origins"):
        G.forecast_demand(sales, backtest_origins=2)
    with pytest.raises(InputError, match="empty"):
        G.forecast_demand(sales.clear())
    with pytest.raises(InputError, match="missing after"):
        G.forecast_demand(sales.filter(pl.col("period") != dt.date(2020, 6, 1)))
    with pytest.raises(InputError, match="'sales' must be positive"):
        G.forecast_demand(sales.with_columns(sales=pl.lit(0.0)))
    panel = _sim_market(0, b=-0.2, n_stores=40, n_months=24)
    for bad in (0, -5.0, float("nan")):
        with pytest.raises(InputError, match="breakeven_monthly_revenue"):
            G.saturation(panel, breakeven_monthly_revenue=bad)
    with pytest.raises(InputError, match="trailing_months"):
        G.saturation(panel, breakeven_monthly_revenue=1.0, trailing_months=0)
    with pytest.raises(InputError, match="empty"):
        G.saturation(panel.clear(), breakeven_monthly_revenue=1.0)
    with pytest.raises(InputError, match="never changes"):
        G.cannibalization(panel.with_columns(competitors=pl.lit(3.0)))
    with pytest.raises(InputError, match="competitors"):
        G.cannibalization(panel.drop("competitors"))
    # competitors counted market-wide move only with the month: a plain reason, no internal names
    market_wide = G.add_competitors(panel.drop("competitors"), within=None)
    with pytest.raises(InputError, match="market-wide changes") as err:
        G.cannibalization(market_wide)
    assert "_lc" not in str(err.value) and "period_effects" not in str(err.value)
    with pytest.raises(InputError, match="empty"):
        G.cannibalization(panel.clear())
    with pytest.raises(InputError, match="alpha"):
        G.cannibalization(panel, alpha=1.5)


# ------------------------------------------------------------------------------------------------
# generated dataset (ground truth in the manifest)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from cannabis_market.data.generate import generate_dataset
    from cannabis_market.data.loader import load_dataset

    path = generate_dataset(
        tmp_path_factory.mktemp("gen") / "ds150", seed=2022, stores=150, frequency="daily"
    )
    return load_dataset(path)


def test_generated_cannibalization_recovers_truth(generated):
    truth = generated.truth["cannibalization_elasticity"]
    res = G.cannibalization(generated)
    assert res.lo <= truth <= res.hi
    assert abs(res.elasticity - truth) <= 0.2 * abs(truth)


def test_generated_store_growth_capacity_matches_store_path(generated):
    counts = G.store_counts(generated.stores, end=generated.manifest["generator"]["end"])
    res = G.fit_store_growth(counts, horizon=12, n_boot=150)
    op = generated.truth["openings"]
    targets = sorted(op["target_open_stores"].items())
    plateau = targets[-1][1] * op["scale"]  # the level the generator's store path settles at
    lo, hi = res.best.interval["K"]
    assert lo <= plateau <= hi
    observed = float(counts["stores_open"].tail(12).mean())
    assert lo <= observed <= hi


def test_generated_demand_backtest_and_saturation(generated):
    ms = G.market_sales(generated)
    fc = G.forecast_demand(ms, horizon=12, backtest_origins=4)
    err = fc.backtest_error()
    assert math.isfinite(err["mape"]) and math.isfinite(err["mase"]) and err["mape"] < 0.3
    be = generated.truth["breakeven_monthly_revenue"]
    sat = G.saturation(generated, breakeven_monthly_revenue=be, forecast=fc)
    s = sat.summary()
    total = s.filter(pl.col("group") == "All").row(0, named=True)
    assert total["stores_at_risk"] == sat.stores_at_risk_detail.height
    assert total["stores_open"] == int(G.store_counts(generated.stores)["stores_open"][-1])
    regions = s.filter(pl.col("group") != "All")
    if regions["stores_at_risk"].null_count() == 0:
        assert regions["stores_at_risk"].sum() == total["stores_at_risk"]
    assert regions["stores_open"].sum() == total["stores_open"]
    assert sat.capacity is not None and sat.capacity["capacity"].is_finite().all()


# ------------------------------------------------------------------------------------------------
# real data: Washington State LCB sales by licence and month
# ------------------------------------------------------------------------------------------------


def _read_washington(path: Path) -> pl.DataFrame:
    """Minimal private reader: [period, store_id, revenue] per licence and month.

    The sheet has note rows above the header; licence numbers are stored sometimes as text with leading
    zeros, sometimes as numbers, and a few carry a '-1' suffix, so they are normalised to six digits.
    Duplicate licence-months (late corrections) are summed; rows without a numeric total are dropped.
    """
    raw = pl.read_excel(path, sheet_name="Retailers", has_header=False, infer_schema_length=0)
    col0 = raw.columns[0]
    header = raw[col0].to_list().index("License Number")
    df = raw.slice(header + 1).select(raw.columns[:3])
    df.columns = ["licence", "period", "revenue"]
    return (
        df.drop_nulls("licence")
        .with_columns(
            store_id=pl.col("licence").str.strip_chars().str.extract(r"^(\d+)", 1).str.zfill(6),
            period=(pl.col("period").str.strip_chars().str.slice(0, 7) + "-01").str.to_date(
                "%Y-%m-%d", strict=False
            ),
            revenue=pl.col("revenue").cast(pl.Float64, strict=False),
        )
        .drop_nulls(["store_id", "period", "revenue"])
        .group_by("period", "store_id")
        .agg(pl.col("revenue").sum())
        .filter(pl.col("revenue") > 0)
        .sort("period", "store_id")
    )


@pytest.fixture(scope="module")
def washington():
    wa = _read_washington(real_file(WA_FILE))
    # the last reported month is incomplete (late reports): leave it out
    return wa.filter(pl.col("period") < wa["period"].max())


@pytest.mark.realdata
def test_washington_store_growth_and_saturation(washington):
    assert washington["store_id"].n_unique() > 500 and washington["period"].n_unique() == 47
    counts = G.store_counts(washington)
    assert counts["stores_open"].min() >= 380 and counts["stores_open"].max() <= 470
    g = G.fit_store_growth(counts, horizon=12, n_boot=150)
    for f in g.fits.values():
        lo, hi = f.interval["K"]
        assert lo <= f.K <= hi and math.isfinite(hi)
        assert lo <= counts["stores_open"].max() * 1.05 and hi >= counts["stores_open"].tail(6).mean() * 0.97
    ms = G.market_sales(washington)
    fc = G.forecast_demand(ms, horizon=12, backtest_origins=6, currency="USD")
    assert fc.backtest.select(pl.col("mape", "mase").is_finite().all()).row(0) == (True, True)
    sat = G.saturation(washington, breakeven_monthly_revenue=100_000, forecast=fc, currency="USD")
    s = sat.summary()
    assert s.height == 1 and s["group"][0] == "All"
    assert 0 < s["stores_at_risk"][0] < s["stores_judged"][0]
    assert 100_000 < s["sales_per_store"][0] < 1_000_000
    assert "US$" in sat.report()


@pytest.mark.realdata
def test_washington_market_level_competition_variant(washington):
    # licences reporting under $1,000 a month are not trading in any real sense; leave them out
    panel = G.add_competitors(washington.filter(pl.col("revenue") >= 1_000), within=None)
    with pytest.raises(InputError, match="market-wide changes"):
        G.cannibalization(panel)  # market-wide counts vary only by month: absorbed by month effects
    res = G.cannibalization(panel, period_effects=False)
    assert (
        all(math.isfinite(v) for v in (res.elasticity, res.lo, res.hi)) and res.lo < res.elasticity < res.hi
    )
    assert res.n_stores > 400 and res.nobs > 15_000
    assert "association, not a causal effect" in res.report()
    # with a trend and a COVID-period indicator as controls the estimate must still be finite
    months = (pl.col("period").dt.year() * 12 + pl.col("period").dt.month()).cast(pl.Float64)
    ctrl = panel.with_columns(
        trend=months - months.min(), covid=(pl.col("period") >= dt.date(2020, 3, 1)).cast(pl.Float64)
    )
    res2 = G.cannibalization(ctrl, period_effects=False, controls=("trend", "covid"))
    assert math.isfinite(res2.elasticity) and res2.lo < res2.hi
