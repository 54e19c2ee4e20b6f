"""Recovery tests for the fixed-effects regression (known truth, interval must cover it)."""

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.panel import demean, fe_ols
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
