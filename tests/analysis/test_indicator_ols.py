"""The event study's sparse fit (`indicator_ols`) equals `fe_ols` on the dense within-transformed columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.indicator_ols import indicator_ols
from cannabis_market.analysis.inference import crv1_realized, crv1_realized_scores, fe_ols, within_two_way
from cannabis_market.errors import InputError


def _design(seed: int = 0, units: int = 60, times: int = 20, k: int = 12):
    """Unbalanced unit x time panel; a third of the units treated with an intensity, one column a day."""
    rng = np.random.default_rng(seed)
    cells = [(u, t) for u in range(units) for t in range(times) if rng.random() < 0.85]
    unit = np.array([c[0] for c in cells])
    time = np.array([c[1] for c in cells])
    treat = ((np.arange(units) % 3 == 0) * rng.uniform(0.5, 2, units))[unit]
    col = np.where((treat != 0) & (time < k), time, -1)
    y = rng.normal(100, 10, unit.size) + 3 * unit + time - 5 * (col >= 0)
    X = np.zeros((unit.size, k))
    X[np.flatnonzero(col >= 0), col[col >= 0]] = treat[col >= 0]
    return y, unit, time, col, treat, X, [f"x{j}" for j in range(k)]


def _reference(y, unit, time, X, names, cluster_of_unit):
    W = within_two_way(np.column_stack([y, X]), unit, time)
    df = pl.DataFrame({"y": W[:, 0], **{n: W[:, j + 1] for j, n in enumerate(names)}})
    if cluster_of_unit is None:
        return W, fe_ols(df, "y", names)
    c = pl.Series("c", cluster_of_unit[unit]).replace(-1, None)
    return W, fe_ols(df.with_columns(c), "y", names, cluster="c")


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a - b).max()) <= 1e-9 * float(np.abs(b).max())


@pytest.mark.parametrize("clusters", ["unit", "groups", "some missing", "none"])
def test_indicator_ols_equals_fe_ols_on_the_within_columns(clusters):
    y, unit, time, col, treat, X, names = _design()
    units = int(unit.max()) + 1
    cl = {"unit": np.arange(units), "groups": np.arange(units) // 4, "none": None}.get(clusters)
    if clusters == "some missing":
        cl = np.arange(units) // 4
        cl[:5] = -1
    _, ref = _reference(y, unit, time, X, names, cl)
    got = indicator_ols(y, unit, time, col, treat, names, cl)
    assert _close(got.beta, np.array([ref.coef[n] for n in names]))
    assert _close(got.vcov, ref.vcov)
    assert (got.nobs, got.n_clusters) == (ref.nobs, ref.n_clusters)


def test_indicator_ols_scores_give_crv1_realized():
    y, unit, time, col, treat, X, names = _design(seed=3)
    units = int(unit.max()) + 1
    W, ref = _reference(y, unit, time, X, names, np.arange(units))
    u = W[:, 0] - W[:, 1:] @ np.array([ref.coef[n] for n in names])
    first = np.unique(unit, return_index=True)[1]
    Z = np.column_stack([np.ones(units), np.random.default_rng(1).normal(size=units)])
    want, p = crv1_realized(W[:, 1:], u, unit, np.arange(units), treat[first] != 0, Z)
    got = indicator_ols(y, unit, time, col, treat, names, np.arange(units))
    fast, p_fast = crv1_realized_scores(
        got.xtx_inv, got.unit_scores, got.nobs, got.unit_cluster, treat[first] != 0, Z
    )
    assert p_fast == p and _close(fast, want)


def test_indicator_ols_refuses_a_column_fe_ols_refuses():
    """A day on which only treated units are observed is collinear with its date effect."""
    y, unit, time, col, treat, X, names = _design(seed=5)
    keep = (time != 2) | (treat != 0)
    y, unit, time, col, treat, X = y[keep], unit[keep], time[keep], col[keep], treat[keep], X[keep]
    treat = np.where(time == 2, 1.0, treat)
    X[time == 2, 2] = 1.0
    with pytest.raises(InputError) as want:
        _reference(y, unit, time, X, names, np.arange(int(unit.max()) + 1))
    with pytest.raises(InputError) as got:
        indicator_ols(y, unit, time, col, treat, names, np.arange(int(unit.max()) + 1))
    assert str(got.value) == str(want.value) and "x2" in str(got.value)
