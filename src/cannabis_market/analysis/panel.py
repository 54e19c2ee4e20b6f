"""Linear panel regression with fixed effects absorbed by demeaning and cluster-robust errors.

Fixed effects are swept out by alternating projections (subtract group means of each fixed-effect
dimension in turn until nothing changes), so thousands of stores or dates never become dummy columns.
Standard errors are clustered (CR1, with the small-sample factor fixest uses for nested effects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from cannabis_market.errors import InputError


@dataclass
class FEResult:
    """Coefficients of a fixed-effects regression with clustered intervals."""

    coef: dict[str, float]
    se: dict[str, float]
    nobs: int
    n_clusters: int
    alpha: float
    fe: tuple[str, ...]
    cluster: str | None
    vcov: np.ndarray
    names: tuple[str, ...]
    r2_within: float

    def ci(self, name: str) -> tuple[float, float]:
        """(lo, hi) interval at level 1 - alpha, t with G - 1 degrees of freedom."""
        q = stats.t.ppf(1 - self.alpha / 2, max(self.n_clusters - 1, 1))
        return self.coef[name] - q * self.se[name], self.coef[name] + q * self.se[name]

    def pvalue(self, name: str) -> float:
        """Two-sided p-value of coefficient `name` against zero."""
        t = self.coef[name] / self.se[name] if self.se[name] > 0 else np.inf
        return float(2 * stats.t.sf(abs(t), max(self.n_clusters - 1, 1)))

    def summary(self) -> pl.DataFrame:
        """One row per regressor: estimate, std. error, interval, p-value."""
        rows = []
        for n in self.names:
            lo, hi = self.ci(n)
            rows.append(
                {
                    "term": n,
                    "estimate": self.coef[n],
                    "std_error": self.se[n],
                    "lo": lo,
                    "hi": hi,
                    "p_value": self.pvalue(n),
                }
            )
        return pl.DataFrame(rows)


def demean(
    df: pl.DataFrame, columns: Sequence[str], fe: Sequence[str], tol: float = 1e-9, max_iter: int = 500
) -> pl.DataFrame:
    """Return `columns` with every fixed-effect dimension in `fe` swept out (alternating projections).

    One pass is exact for a single effect or a balanced two-way panel; unbalanced panels iterate until
    the largest change falls below `tol` times the column's scale.
    """
    cols = list(columns)
    out = df.select([*fe, *[pl.col(c).cast(pl.Float64) for c in cols]])
    if not fe:
        return out.select(cols)
    scale = {c: max(float(out[c].abs().max() or 0.0), 1e-300) for c in cols}
    for _ in range(max_iter):
        before = out.select(cols)
        for f in fe:
            out = out.with_columns([(pl.col(c) - pl.col(c).mean().over(f)) for c in cols])
        if len(fe) == 1:
            break
        delta = max(float((out[c] - before[c]).abs().max() or 0.0) / scale[c] for c in cols)
        if delta < tol:
            break
    return out.select(cols)


def fe_ols(
    df: pl.DataFrame,
    y: str,
    x: Sequence[str],
    fe: Sequence[str] = (),
    cluster: str | None = None,
    alpha: float = 0.05,
) -> FEResult:
    """OLS of `y` on `x` with fixed effects `fe` absorbed and errors clustered by `cluster`.

    Rows with a null or non-finite value in any used column are dropped first. Raises InputError when
    a regressor has no variation left after the fixed effects (nothing identifies it).
    """
    x = list(x)
    used = [y, *x, *fe, *([cluster] if cluster and cluster not in fe else [])]
    missing = [c for c in used if c not in df.columns]
    if missing:
        raise InputError(f"panel regression: column(s) {missing} not in the data (have {df.columns})")
    num = [y, *x]
    d = (
        df.select(used)
        .drop_nulls()
        .filter(pl.all_horizontal([pl.col(c).cast(pl.Float64).is_finite() for c in num]))
    )
    n = d.height
    if n <= len(x) + 1:
        raise InputError(f"panel regression: only {n} usable rows for {len(x)} regressor(s)")
    w = demean(d, num, fe)
    Y = w[y].to_numpy()
    X = w.select(x).to_numpy()
    sd = X.std(axis=0)
    flat = [
        name for name, s in zip(x, sd, strict=True) if not s > 1e-10 * max(1.0, float(np.abs(d[name]).max()))
    ]
    if flat:
        raise InputError(
            f"panel regression: {flat} has no variation within the fixed effects {list(fe)}; "
            "nothing identifies its coefficient (e.g. no store-level variation over time)"
        )
    xtx_inv = np.linalg.pinv(X.T @ X)
    beta = xtx_inv @ X.T @ Y
    u = Y - X @ beta
    k = len(x)
    if cluster:
        codes = d[cluster].cast(pl.String).cast(pl.Categorical).to_physical().to_numpy()
        g = int(codes.max()) + 1
        scores = np.zeros((g, k))
        np.add.at(scores, codes, X * u[:, None])
        meat = scores.T @ scores
        adj = (g / max(g - 1, 1)) * ((n - 1) / max(n - k, 1))
    else:
        g = n
        meat = (X * (u**2)[:, None]).T @ X  # heteroskedasticity-robust (HC1)
        adj = n / max(n - k, 1)
    vcov = adj * xtx_inv @ meat @ xtx_inv
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    tss = float(((Y - Y.mean()) ** 2).sum())
    r2 = 1 - float((u**2).sum()) / tss if tss > 0 else float("nan")
    return FEResult(
        coef=dict(zip(x, beta.tolist(), strict=True)),
        se=dict(zip(x, se.tolist(), strict=True)),
        nobs=n,
        n_clusters=g,
        alpha=alpha,
        fe=tuple(fe),
        cluster=cluster,
        vcov=vcov,
        names=tuple(x),
        r2_within=r2,
    )
