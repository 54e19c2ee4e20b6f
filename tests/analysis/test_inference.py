"""Fixed-effects regression: recovery of known truth (interval covers it), the exact fallback on a weakly
connected panel, CRV3 for few clusters, HAC errors."""

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.inference import crv1_realized, demean, fe_ols, hac_ols, two_way_effects
from cannabis_market.errors import InputError


def _panel(seed: int, n_units: int = 150, n_t: int = 40, beta: float = -0.3, unbalanced: bool = True):
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_t)
    t = np.tile(np.arange(n_t), n_units)
    a = rng.normal(0, 2, n_units)[unit]
    g = rng.normal(0, 1, n_t)[t]
    # regressor correlated with both effects: pooled OLS is biased, FE is not
    x = 0.8 * a + 0.5 * g + rng.normal(0, 1, unit.size)
    cl = rng.normal(0, 0.5, n_units)[unit] * rng.normal(0, 1, unit.size)  # within-unit correlated noise
    y = a + g + beta * x + cl + rng.normal(0, 0.5, unit.size)
    df = pl.DataFrame({"unit": unit.astype(str), "t": t, "x": x, "y": y})
    if unbalanced:
        df = df.filter(pl.Series(rng.random(df.height) > 0.2))
    return df


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fe_ols_recovers_slope_with_covering_interval(seed):
    df = _panel(seed)
    res = fe_ols(df, "y", ["x"], fe=["unit", "t"], cluster="unit")
    lo, hi = res.ci("x")
    assert lo < -0.3 < hi
    assert abs(res.coef["x"] + 0.3) < 0.05
    pooled = np.polyfit(df["x"].to_numpy(), df["y"].to_numpy(), 1)[0]
    assert abs(pooled + 0.3) > 0.3  # the bias the fixed effects remove


def test_interval_coverage_close_to_nominal():
    hits = 0
    for seed in range(60):
        res = fe_ols(_panel(100 + seed, n_units=60, n_t=15), "y", ["x"], fe=["unit", "t"], cluster="unit")
        lo, hi = res.ci("x")
        hits += lo < -0.3 < hi
    assert 0.85 <= hits / 60 <= 1.0


def test_demean_matches_dummy_regression_on_small_panel():
    df = _panel(7, n_units=12, n_t=6)
    w = demean(df, ["y", "x"], ["unit", "t"], tol=1e-12)
    slope = float((w["x"] * w["y"]).sum() / (w["x"] ** 2).sum())
    dummies = df.select("unit", "t").to_dummies(drop_first=True).to_numpy()
    X = np.column_stack([np.ones(df.height), df["x"].to_numpy(), dummies])
    ref = np.linalg.lstsq(X, df["y"].to_numpy(), rcond=None)[0][1]  # column 1 is x
    assert slope == pytest.approx(ref, rel=1e-6)


def test_no_within_variation_is_a_clear_error():
    df = _panel(3).with_columns(z=pl.col("unit").cast(pl.Int64).cast(pl.Float64))
    with pytest.raises(InputError, match="no variation"):
        fe_ols(df, "y", ["z"], fe=["unit"], cluster="unit")


def test_missing_column_is_a_clear_error():
    with pytest.raises(InputError, match="not in the data"):
        fe_ols(_panel(3), "y", ["nope"], fe=["unit"])


def chain_panel(n: int = 200, seed: int = 0, span: int = 3) -> pl.DataFrame:
    """Store i trades in periods i .. i + span - 1 only: the store-period graph is one long chain, the
    worst case for alternating projections (they need on the order of n^2 sweeps)."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n), span)
    t = unit + np.tile(np.arange(span), n)
    x = rng.normal(0, 1, unit.size) + 0.01 * t
    y = 0.05 * unit + 0.02 * t + 0.7 * x + rng.normal(0, 0.1, unit.size)
    return pl.DataFrame({"unit": unit.astype(str), "t": t.astype(str), "x": x, "y": y})


def _dummy_slope(df: pl.DataFrame) -> float:
    dummies = df.select("unit", "t").to_dummies(drop_first=True).to_numpy()
    X = np.column_stack([np.ones(df.height), df["x"].to_numpy(), dummies])
    return float(np.linalg.lstsq(X, df["y"].to_numpy(), rcond=None)[0][1])


def test_weakly_connected_panel_falls_back_to_the_exact_solver():
    df = chain_panel()
    res = fe_ols(df, "y", ["x"], fe=["unit", "t"], cluster="unit")
    assert res.demean_method == "LSMR"  # the projections did not converge in time: never returned half-way
    assert res.coef["x"] == pytest.approx(_dummy_slope(df), rel=1e-9)
    D = df.select("unit", "t").to_dummies().to_numpy().astype(float)
    y = df["y"].to_numpy()
    exact = y - D @ np.linalg.lstsq(D, y, rcond=None)[0]
    assert np.allclose(demean(df, ["y"], ["unit", "t"])["y"].to_numpy(), exact, atol=1e-9)


def _clustered(seed: int, n_clusters: int = 12, per: int = 8, n_t: int = 10) -> pl.DataFrame:
    """Stores nested in few clusters; the regressor and the errors share a cluster-level shock."""
    rng = np.random.default_rng(seed)
    n_units = n_clusters * per
    unit = np.repeat(np.arange(n_units), n_t)
    t = np.tile(np.arange(n_t), n_units)
    cl = unit // per
    shock_x = rng.normal(0, 1, (n_clusters, n_t))[cl, t]
    shock_u = rng.normal(0, 1, (n_clusters, n_t))[cl, t]
    x = shock_x + rng.normal(0, 0.5, unit.size)
    y = (
        rng.normal(0, 1, n_units)[unit]
        + 0.5 * x
        + shock_u * (1 + np.abs(shock_x))
        + rng.normal(0, 0.5, unit.size)
    )
    return pl.DataFrame({"unit": unit, "t": t, "cl": cl, "x": x, "y": y})


def test_crv3_is_the_leave_one_cluster_out_jackknife():
    df = _clustered(1)
    res = fe_ols(df, "y", ["x"], fe=["unit"], cluster="cl", vcov="CRV3")
    b = res.coef["x"]
    loo = np.array(
        [fe_ols(df.filter(pl.col("cl") != g), "y", ["x"], fe=["unit"]).coef["x"] for g in range(12)]
    )  # store effects are nested in clusters, so the refit is exactly the jackknife
    assert res.se["x"] == pytest.approx(np.sqrt(11 / 12 * ((loo - b) ** 2).sum()), rel=1e-9)
    assert res.se["x"] > fe_ols(df, "y", ["x"], fe=["unit"], cluster="cl").se["x"]


def test_crv3_covers_more_often_than_crv1_with_few_clusters():
    hits = {"CRV1": 0, "CRV3": 0}
    for seed in range(60):
        df = _clustered(100 + seed)
        for v in hits:
            lo, hi = fe_ols(df, "y", ["x"], fe=["unit", "t"], cluster="cl", vcov=v).ci("x")
            hits[v] += lo < 0.5 < hi
    assert hits["CRV3"] >= hits["CRV1"]
    assert hits["CRV3"] / 60 >= 0.88


def test_hac_nw_matches_statsmodels_and_bad_option_is_clear():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(60), np.arange(60.0)])
    y = X @ [1.0, -0.01] + rng.normal(0, 0.1, 60)
    fit = hac_ols(y, X, 3, "nw")
    ref = sm.OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": 3, "use_correction": True})
    assert np.allclose(fit.bse, ref.bse) and np.allclose(fit.params, ref.params)
    with pytest.raises(InputError, match="hac"):
        hac_ols(y, X, 3, "bartlett")


def test_old_import_path_still_works():
    from cannabis_market.analysis import inference, panel

    assert panel.fe_ols is inference.fe_ols and panel.demean is inference.demean


@pytest.mark.parametrize(
    ("df", "method"), [(_panel(4, 30, 8), "alternating projections"), (chain_panel(120), "LSMR")]
)
def test_two_way_time_effects_match_the_dummy_regression(df, method):
    unit = df["unit"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    time = df["t"].cast(pl.String).cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    g, how = two_way_effects(df["y"].to_numpy(), unit, time, max_iter=300)
    assert how == method
    D = np.column_stack([np.eye(unit.max() + 1)[unit], np.eye(time.max() + 1)[time][:, 1:]])
    coef = np.linalg.lstsq(D, df["y"].to_numpy(), rcond=None)[0]
    assert np.allclose(g[1:], coef[unit.max() + 1 :], atol=1e-8) and g[0] == 0


def test_cluster_codes_ignore_categories_made_elsewhere_in_the_process() -> None:
    """Categorical physical codes are process-wide: clusters must still be counted 0..G-1 in this column."""
    import numpy as np
    import polars as pl

    from cannabis_market.analysis.inference import dense_codes, fe_ols

    pl.Series([f"unrelated-{i}" for i in range(5000)]).cast(pl.Categorical)  # fills the global cache
    rng = np.random.default_rng(3)
    n_groups, per = 12, 30
    g = np.repeat(np.arange(n_groups), per)
    frame = pl.DataFrame({"g": [f"m{i}" for i in g], "x": rng.normal(size=g.size)})
    frame = frame.with_columns(y=2.0 * pl.col("x") + pl.Series(rng.normal(size=g.size)))
    codes = dense_codes(frame["g"])
    assert codes.min() == 0 and codes.max() == n_groups - 1
    fit = fe_ols(frame, "y", ["x"], fe=[], cluster="g")
    assert fit.n_clusters == n_groups


def test_crv1_realized_drops_explained_effect_spread_only():
    """Effects that differ by a known unit attribute: the realized-effect CRV1 matches the CRV1 of the
    same noise without the spread; with nothing flagged it is the plain CRV1 of `fe_ols`."""
    rng = np.random.default_rng(5)
    n_units, n_t = 300, 20
    unit, t = np.repeat(np.arange(n_units), n_t), np.tile(np.arange(n_t), n_units)
    z = rng.normal(0, 1, n_units)
    treated = np.arange(n_units) < n_units // 2
    d = (treated[unit] & (t >= 10)).astype(float)
    noise = rng.normal(0, 1, n_units)[unit] * 0.3 + rng.normal(0, 1, unit.size)
    tau = 2 + 3 * z  # the spread of the treated units' effects, explained by z
    y_het = tau[unit] * d + noise
    y_hom = tau[treated].mean() * d + noise
    Z = np.column_stack([np.ones(n_units), z])
    out = {}
    for name, y in (("het", y_het), ("hom", y_hom)):
        df = pl.DataFrame({"y": y, "d": d, "unit": unit, "t": t})
        res = fe_ols(df, "y", ["d"], fe=("unit", "t"), cluster="unit")
        w = demean(df, ["y", "d"], ["unit", "t"]).to_numpy()
        u = w[:, 0] - w[:, 1] * res.coef["d"]
        X = w[:, 1:]
        plain, p0 = crv1_realized(X, u, unit, np.arange(n_units), np.zeros(n_units, bool), Z)
        assert p0 == 0 and plain[0, 0] == pytest.approx(res.vcov[0, 0], rel=1e-9)
        out[name] = (plain[0, 0], crv1_realized(X, u, unit, np.arange(n_units), treated, Z)[0][0, 0])
    assert out["het"][0] > 3 * out["hom"][0]  # the plain sandwich counts the spread of the effects
    assert out["het"][1] == pytest.approx(out["hom"][0], rel=0.15)  # the realized one does not
    assert out["hom"][1] == pytest.approx(out["hom"][0], rel=0.15)  # and changes little without it
