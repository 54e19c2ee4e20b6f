"""The event study's regression on a prepared store-day panel (`event_study`): relative-day x treatment
effects with store and date effects absorbed, clustered errors, the realized-loss covariance (issue #17)
and the pre-trend test.

The regressors are indicators (one non-zero per treated store-day), so the fit goes through
`indicator_ols`, which never forms the dense within-transformed columns; the per-store and per-day
figures are numpy sums over the panel's rows, one pass each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from cannabis_market.analysis.indicator_ols import IndicatorFit, indicator_ols
from cannabis_market.analysis.inference import crv1_realized_scores, dense_codes, within_two_way
from cannabis_market.errors import InputError

_STORE, _DATE = "store_id", "date"


def _within(M: np.ndarray, panel: pl.DataFrame) -> np.ndarray:
    """Columns of `M` with store and date effects swept out exactly (`inference.within_two_way`)."""
    return within_two_way(M, dense_codes(panel[_STORE]), _day_codes(panel))


def _day_codes(panel: pl.DataFrame) -> np.ndarray:
    return (panel[_DATE] - panel[_DATE].min()).dt.total_days().to_numpy().astype(np.int64)


def _cluster_of_unit(panel: pl.DataFrame, cluster: str, unit: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Each store's cluster code (its first row's; -1 where the cluster is missing)."""
    if cluster == _STORE:
        return np.arange(first.size)
    values = panel[cluster]
    codes = np.full(panel.height, -1, dtype=np.int64)
    present = values.is_not_null().to_numpy()
    codes[present] = dense_codes(values.filter(values.is_not_null()))
    return codes[first]


def _realized_vcov(
    panel: pl.DataFrame, fit: IndicatorFit, unit: np.ndarray, first: np.ndarray, treat_u: np.ndarray
) -> np.ndarray:
    """Clustered vcov of the betas for the effects on the treated stores observed (`crv1_realized`).

    The target is the treated stores' own realized loss, so the spread of their effects across stores is
    not error. It is mostly explained by store size (mean pre-event sales m) and exposure d (the outage
    model's `expected_lost_days`, else the treatment intensity): the treated stores' scores are purged of
    their fit on (1, m, d, m * d) before the sandwich.
    """
    pre = panel["rel"].to_numpy() < 0
    y = panel["y"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.bincount(unit[pre], y[pre], first.size) / np.bincount(unit[pre], minlength=first.size)
    if "_lost_days" in panel.columns:
        d = panel["_lost_days"].cast(pl.Float64).fill_null(float("nan")).to_numpy()[first]
        d = np.where(np.isfinite(d), d, treat_u)
    else:
        d = treat_u
    Z = np.column_stack([np.ones_like(m), m, d, m * d])
    assert fit.unit_cluster is not None
    return crv1_realized_scores(fit.xtx_inv, fit.unit_scores, fit.nobs, fit.unit_cluster, treat_u != 0, Z)[0]


@dataclass
class _Fit:
    effects: pl.DataFrame
    lost: float
    lost_lo: float
    lost_hi: float
    lost_share: float
    n_treated: int
    n_control: int
    nobs: int
    n_clusters: int
    pretrend_p: float


def _fit(panel: pl.DataFrame, loss_window: tuple[int, int], cluster: str | None, alpha: float) -> _Fit:
    """Relative-day x treatment regression on a prepared panel (store_id, date, rel, y, treat)."""
    unit = dense_codes(panel[_STORE])
    first = np.unique(unit, return_index=True)[1]  # each store's first row
    rel = panel["rel"].to_numpy()
    treat = panel["treat"].to_numpy()
    treat_u = treat[first]
    n_treated = int((treat_u != 0).sum())
    n_control = int((treat_u == 0).sum())
    if n_treated == 0:
        raise InputError("event study: no treated stores in the data window")
    on = treat != 0
    days = np.unique(rel[on])
    pre = days[days < 0]
    if pre.size == 0 or not (days >= 0).any():
        raise InputError("event study: treated stores need observed days both before and after the event")
    omitted = int(pre.max())
    ks = [int(k) for k in days if k != omitted]
    pos = {k: j for j, k in enumerate(ks)}
    col = np.array([pos.get(int(r), -1) for r in range(int(rel.min()), int(rel.max()) + 1)])[rel - rel.min()]
    col = np.where(on, col, -1)
    names = [f"rel_{k:+d}" for k in ks]
    y = panel["y"].to_numpy().astype(np.float64)
    clusters = None if cluster is None else _cluster_of_unit(panel, cluster, unit, first)
    res = indicator_ols(y, unit, _day_codes(panel), col, treat, names, clusters)
    beta = res.beta
    plain = cluster is None or panel[cluster].null_count() > 0  # (rows without a cluster were dropped)
    V = res.vcov if plain else _realized_vcov(panel, res, unit, first, treat_u)

    # re-express against the pooled pre-event reference: theta_k = b_k - mean_{j<0} b_j (b_omitted = 0)
    all_days = np.array(sorted([*ks, omitted]))
    K, m = all_days.size, len(ks)
    E = np.zeros((K, m))
    for i, k in enumerate(all_days):
        if k != omitted:
            E[i, pos[int(k)]] = 1.0
    A = E - E[all_days < 0].mean(axis=0, keepdims=True)
    theta = A @ beta
    Vt = A @ V @ A.T
    V_pre = A @ res.vcov @ A.T  # the pre-trend test: plain CRV1 (no treatment effects before the event)
    se = np.sqrt(np.clip(np.diag(Vt), 0, None))
    q = stats.t.ppf(1 - alpha / 2, max(res.n_clusters - 1, 1))

    # treated stores (summed intensity) and their mean sales per relative day
    day = np.searchsorted(all_days, rel[on])
    n_k = np.bincount(day, treat[on], K)
    cf = np.bincount(day, y[on] * treat[on], K) / n_k - theta  # counterfactual sales per treated store-day
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(cf > 0, theta / cf, np.nan)
        pct_lo = np.where(cf > 0, (theta - q * se) / cf, np.nan)
        pct_hi = np.where(cf > 0, (theta + q * se) / cf, np.nan)
    effects = pl.DataFrame(
        {
            "rel_day": all_days.astype(np.int64),
            "estimate": theta,
            "std_error": se,
            "lo": theta - q * se,
            "hi": theta + q * se,
            "pct": pct,
            "pct_lo": pct_lo,
            "pct_hi": pct_hi,
            "n_treated": n_k,
        }
    )

    in_loss = (all_days >= loss_window[0]) & (all_days <= loss_window[1])
    w = -(n_k * in_loss) @ A
    lost = float(w @ beta)
    lost_se = float(np.sqrt(max(w @ V @ w, 0.0)))
    cf_total = float((n_k * cf * in_loss).sum())
    share = lost / cf_total if cf_total > 0 else float("nan")

    # joint test that the pre-event effects are all zero (they sum to zero, so drop one). A clustered
    # Wald statistic with many restrictions over-rejects; the Hotelling-style scaling
    # F = W (G - q) / (q (G - 1)) with (q, G - q) degrees of freedom keeps its size near nominal.
    pre_idx = np.flatnonzero(all_days < 0)[:-1]
    p_pre = float("nan")
    G = res.n_clusters
    if pre_idx.size:
        tp = theta[pre_idx]
        Vp = V_pre[np.ix_(pre_idx, pre_idx)]
        qdf = int(np.linalg.matrix_rank(Vp))
        if 0 < qdf < G:
            wald = float(tp @ np.linalg.pinv(Vp) @ tp)
            fstat = wald * (G - qdf) / (qdf * (G - 1))
            p_pre = float(stats.f.sf(fstat, qdf, G - qdf))
    return _Fit(
        effects=effects,
        lost=lost,
        lost_lo=lost - q * lost_se,
        lost_hi=lost + q * lost_se,
        lost_share=share,
        n_treated=n_treated,
        n_control=n_control,
        nobs=res.nobs,
        n_clusters=res.n_clusters,
        pretrend_p=p_pre,
    )
