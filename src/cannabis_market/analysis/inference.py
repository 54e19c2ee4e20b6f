"""Inference in one place: fixed-effects OLS by demeaning, cluster-robust errors (CRV1, and CRV3 for few
clusters), Newey-West (HAC) errors for time series, and small bootstrap helpers.

Fixed effects are swept out by alternating projections (subtract group means of each fixed-effect
dimension in turn), so thousands of stores or dates never become dummy columns. On a weakly connected
panel (e.g. stores that overlap in time only through a chain of neighbours) the projections converge very
slowly; when they have not converged within `max_iter` sweeps the exact least-squares solution is found
with scipy's LSMR instead, never returned half-way.

Small-sample factors follow fixest's `ssc(adj = TRUE, fixef.K = "none", cluster.adj = TRUE)`: the
fixed effects do not count in K, CRV1 = G/(G-1) * (n-1)/(n-K) * sandwich, heteroskedasticity-robust
(HC1) = n/(n-K) * sandwich; intervals use t with G-1 (clustered) or n-K degrees of freedom.
`tests/test_inference_pyfixest.py` pins estimates and errors against pyfixest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse, stats
from scipy.sparse.linalg import lsmr

from cannabis_market.analysis.results import Estimate
from cannabis_market.errors import InputError

VCOV_TYPES = ("CRV1", "CRV3", "hetero")
FEW_CLUSTERS = 50
"""Below this many clusters the competition fit uses CRV3 (CRV1 intervals are too short with few
clusters; MacKinnon, Nielsen & Webb 2023)."""


@dataclass
class FEResult:
    """Coefficients of a fixed-effects regression with robust intervals."""

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
    vcov_type: str = "CRV1"
    demean_method: str = "alternating projections"

    @property
    def df_t(self) -> int:
        """Degrees of freedom of the t intervals: G - 1 clustered, n - K otherwise."""
        if self.cluster:
            return max(self.n_clusters - 1, 1)
        return max(self.nobs - len(self.names), 1)

    def ci(self, name: str) -> tuple[float, float]:
        """(lo, hi) interval at level 1 - alpha."""
        q = stats.t.ppf(1 - self.alpha / 2, self.df_t)
        return self.coef[name] - q * self.se[name], self.coef[name] + q * self.se[name]

    def pvalue(self, name: str) -> float:
        """Two-sided p-value of coefficient `name` against zero."""
        t = self.coef[name] / self.se[name] if self.se[name] > 0 else np.inf
        return float(2 * stats.t.sf(abs(t), self.df_t))

    def estimate(self, name: str) -> Estimate:
        """Coefficient `name` as an `Estimate`."""
        return Estimate.from_fit(self, name)

    def summary(self) -> pl.DataFrame:
        """One row per regressor: estimate, std. error, interval, p-value."""
        rows = []
        for n in self.names:
            e = self.estimate(n)
            rows.append(
                {
                    "term": n,
                    "estimate": e.estimate,
                    "std_error": e.se,
                    "lo": e.lo,
                    "hi": e.hi,
                    "p_value": e.p_value,
                }
            )
        return pl.DataFrame(rows)


# ------------------------------------------------------------------------------------------- demeaning


def dense_codes(values: pl.Series) -> np.ndarray:
    """Integer codes 0..G-1 for the distinct values of a column (G = number of groups in *this* column).

    A Categorical's physical codes index a process-wide string cache, so they are not 0..G-1 once any other
    Categorical was made in the process (``max() + 1`` would count foreign categories as clusters).
    """
    phys = values.cast(pl.String).cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    if phys.size == 0:
        return phys
    present = np.zeros(int(phys.max()) + 1, dtype=bool)
    present[phys] = True
    lookup = np.cumsum(present) - 1
    return lookup[phys]


def _codes(df: pl.DataFrame, fe: Sequence[str]) -> list[np.ndarray]:
    return [dense_codes(df[f]) for f in fe]


def _sweeps(X: np.ndarray, codes: list[np.ndarray], tol: float, max_iter: int) -> tuple[np.ndarray, bool]:
    """Alternating projections on the columns of X; (result, converged).

    Stops when the estimated remaining error of a linearly converging sequence, delta * r / (1 - r) with
    r the ratio of successive changes, falls below `tol` times the column scale (a plain "change < tol"
    stops far too early when convergence is slow). Gives up early (not converged) when that rate says
    the remaining sweeps would exceed `max_iter`."""
    X = X.copy()
    counts = [np.bincount(c) for c in codes]
    scale = np.maximum(np.abs(X).max(axis=0), 1e-300)
    prev = np.inf
    for i in range(max_iter):
        before = X.copy()
        for c, n in zip(codes, counts, strict=True):
            for j in range(X.shape[1]):
                X[:, j] -= (np.bincount(c, X[:, j], minlength=n.size) / np.maximum(n, 1))[c]
        if len(codes) == 1:
            return X, True
        delta = float((np.abs(X - before).max(axis=0) / scale).max())
        rate = delta / prev if prev > 0 and np.isfinite(prev) else 0.0
        if delta == 0 or (delta < tol and rate < 1 and delta * rate / (1 - rate) < tol):
            return X, True
        if i >= 20 and 0 < rate < 1 and _sweeps_needed(delta, rate, tol) > max_iter - i:
            return X, False  # converging too slowly to finish within max_iter: go exact now
        prev = delta
    return X, False


def _sweeps_needed(delta: float, rate: float, tol: float) -> float:
    """Further sweeps until a linearly converging change delta * rate^k falls below tol * (1 - rate)."""
    return math.log(tol * (1 - rate) / delta) / math.log(rate) if delta > 0 else 0.0


def _lsmr(X: np.ndarray, codes: list[np.ndarray], tol: float) -> np.ndarray:
    """Exact residuals of X on the fixed-effect dummies (sparse least squares by LSMR)."""
    n = X.shape[0]
    blocks = [sparse.csr_matrix((np.ones(n), (np.arange(n), c)), shape=(n, int(c.max()) + 1)) for c in codes]
    D = sparse.hstack(blocks).tocsr()
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        sol = lsmr(D, X[:, j], atol=tol, btol=tol, maxiter=50 * D.shape[1])
        if sol[1] not in (1, 2, 4, 5):
            raise ArithmeticError(
                f"demean: the exact solver (LSMR) did not converge either (stop code {sol[1]}); the fixed "
                "effects are too weakly connected for this panel"
            )
        out[:, j] = X[:, j] - D @ sol[0]
    return out


def demean_arrays(
    X: np.ndarray, codes: list[np.ndarray], tol: float = 1e-10, max_iter: int = 1000
) -> tuple[np.ndarray, str]:
    """Columns of X with every fixed effect swept out, and the method used ("alternating projections"
    or "LSMR" when the projections had not converged within `max_iter` sweeps)."""
    if not codes:
        return X.astype(float), "none"
    out, ok = _sweeps(X.astype(float), codes, tol, max_iter)
    if ok:
        return out, "alternating projections"
    return _lsmr(X.astype(float), codes, 1e-14), "LSMR"


def demean(
    df: pl.DataFrame, columns: Sequence[str], fe: Sequence[str], tol: float = 1e-10, max_iter: int = 1000
) -> pl.DataFrame:
    """Return `columns` with every fixed-effect dimension in `fe` swept out.

    One pass is exact for a single effect; otherwise alternating projections iterate to convergence and
    fall back to the exact sparse solution (LSMR) after `max_iter` sweeps."""
    cols = list(columns)
    X = df.select([pl.col(c).cast(pl.Float64) for c in cols]).to_numpy()
    if not fe:
        return pl.DataFrame(X, schema=cols, orient="row") if X.size else df.select(cols)
    out, _ = demean_arrays(X, _codes(df, fe), tol, max_iter)
    return pl.DataFrame({c: out[:, j] for j, c in enumerate(cols)})


def within_two_way(M: np.ndarray, unit: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Columns of `M` with unit and time effects swept out exactly (the two-way within transform).

    `unit`, `time`: each row's codes 0..U-1 and 0..T-1. Unit means are
    subtracted in one pass; the time effects (a few dozen periods) are then projected out by least squares
    on the unit-demeaned time indicators (Frisch-Waugh), with their normal equations built from the
    unit x time count table. This is the limit the alternating projections of `demean` iterate towards,
    reached in one step on an unbalanced panel too.
    """
    n = M.shape[0]
    ones = np.ones(n)
    S = sparse.csr_matrix((ones, (np.arange(n), unit)))  # row -> unit indicator
    D = sparse.csr_matrix((ones, (np.arange(n), time)))  # row -> time indicator
    A, B = two_way_fit(S.T @ M, D.T @ M, two_way_counts(unit, time))
    return M - A[unit] - B[time]


def two_way_counts(unit: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Observations per unit and time (codes 0..U-1, 0..T-1): the U x T count table."""
    nu, nt = int(unit.max()) + 1, int(time.max()) + 1
    return np.bincount(unit * nt + time, minlength=nu * nt).reshape(nu, nt).astype(np.float64)


def two_way_fit(SM: np.ndarray, DM: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit and time effects (A, B) of the columns of a matrix M from its unit sums `SM` (U x m), time
    sums `DM` (T x m) and the unit x time count table `C`: M's two-way within transform is
    M - A[unit] - B[time] (`within_two_way`), without M itself, so M may be sparse or never formed."""
    P = C / C.sum(axis=1, keepdims=True)  # unit means of the time indicators
    means = SM / C.sum(axis=1)[:, None]
    # Dw'Dw and Dw'Mw (Mw = M minus unit means), without forming Mw
    G = np.diag(C.sum(axis=0)) - C.T @ P
    rhs = DM - C.T @ means
    coef = np.zeros((G.shape[0], SM.shape[1]))  # the last period is the reference: the rest are identified
    coef[:-1] = np.linalg.lstsq(G[:-1, :-1], rhs[:-1], rcond=None)[0]
    return means - P @ coef, coef


def two_way_effects(
    y: np.ndarray, unit: np.ndarray, time: np.ndarray, tol: float = 1e-12, max_iter: int = 2000
) -> tuple[np.ndarray, str]:
    """Time effects g of y = a[unit] + g[time] + e by least squares, as differences from g[0]; and the
    method used. Alternating means with the same stopping rule as `demean`; the exact sparse solution
    (LSMR) when they have not converged within `max_iter` rounds."""
    nu, nt = np.bincount(unit), np.bincount(time)
    g = np.zeros(nt.size)
    scale = max(float(np.abs(y).max()), 1e-300)
    prev = np.inf
    for _ in range(max_iter):
        a = np.bincount(unit, y - g[time], minlength=nu.size) / np.maximum(nu, 1)
        g_new = np.bincount(time, y - a[unit], minlength=nt.size) / np.maximum(nt, 1)
        delta = float(np.abs((g_new - g_new[0]) - (g - g[0])).max()) / scale
        g = g_new
        rate = delta / prev if prev > 0 and np.isfinite(prev) else 0.0
        if delta == 0 or (delta < tol and rate < 1 and delta * rate / (1 - rate) < tol):
            return g - g[0], "alternating projections"
        prev = delta
    n = y.size
    rows = np.arange(n)
    D = sparse.hstack(
        [
            sparse.csr_matrix((np.ones(n), (rows, unit)), shape=(n, nu.size)),
            sparse.csr_matrix((np.ones(n), (rows, time)), shape=(n, nt.size)),
        ]
    ).tocsr()
    sol = lsmr(D, y, atol=1e-14, btol=1e-14, maxiter=50 * D.shape[1])[0]
    g = sol[nu.size :]
    return g - g[0], "LSMR"


# ---------------------------------------------------------------------------------------- panel OLS


def _crv3(raw: np.ndarray, fe_codes: list[np.ndarray], codes: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Leave-one-cluster-out jackknife vcov (CRV3): (G-1)/G * sum_g (b_-g - b)(b_-g - b)'.

    Each b_-g is a full refit without cluster g (fixed effects demeaned again on the remaining rows), so
    effects that are not nested in the clusters (e.g. periods) are handled exactly."""
    g = int(codes.max()) + 1
    diffs = []
    for i in range(g):
        keep = codes != i
        w, _ = demean_arrays(raw[keep], [c[keep] for c in fe_codes])
        diffs.append(np.linalg.lstsq(w[:, 1:], w[:, 0], rcond=None)[0] - beta)
    d = np.stack(diffs)
    return (g - 1) / g * d.T @ d


def fe_ols(
    df: pl.DataFrame,
    y: str,
    x: Sequence[str],
    fe: Sequence[str] = (),
    cluster: str | None = None,
    alpha: float = 0.05,
    vcov: str = "CRV1",
) -> FEResult:
    """OLS of `y` on `x` with fixed effects `fe` absorbed and errors clustered by `cluster`.

    `vcov`: "CRV1" (default; the usual cluster-robust sandwich), "CRV3" (leave-one-cluster-out jackknife
    with (G-1)/G, refitting without each cluster; for few clusters), or "hetero" (HC1; used whenever `cluster` is None). Rows with a null or non-finite
    value in any used column are dropped first. Raises InputError when a regressor has no variation left
    after the fixed effects (nothing identifies it)."""
    if vcov not in VCOV_TYPES:
        raise InputError(f"panel regression: vcov must be one of {', '.join(VCOV_TYPES)}, got {vcov!r}")
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
    check_rows(n, len(x))
    raw = d.select([pl.col(c).cast(pl.Float64) for c in num]).to_numpy()
    fe_codes = _codes(d, fe)
    w, method = demean_arrays(raw, fe_codes)
    Y, X = w[:, 0], w[:, 1:]
    sd = X.std(axis=0)
    check_identified(
        x, [s > 1e-10 * max(1.0, float(np.abs(raw[:, j + 1]).max())) for j, s in enumerate(sd)], fe
    )
    xtx_inv = np.linalg.pinv(X.T @ X)
    beta = xtx_inv @ X.T @ Y
    u = Y - X @ beta
    k = len(x)
    if cluster:
        codes = _codes(d, [cluster])[0]
        g = int(codes.max()) + 1
        if vcov == "CRV3":
            V = _crv3(raw, fe_codes, codes, beta)
        else:
            scores = np.zeros((g, k))
            np.add.at(scores, codes, X * u[:, None])
            V = sandwich(xtx_inv, scores.T @ scores, n, g)
    else:
        g, vcov = n, "hetero"
        V = sandwich(xtx_inv, (X * (u**2)[:, None]).T @ X, n)
    se = np.sqrt(np.clip(np.diag(V), 0, None))
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
        vcov=V,
        names=tuple(x),
        r2_within=r2,
        vcov_type=vcov if cluster else "hetero",
        demean_method=method,
    )


def crv1_realized(
    X: np.ndarray,
    u: np.ndarray,
    unit: np.ndarray,
    cluster_of_unit: np.ndarray,
    adjust: np.ndarray,
    Z: np.ndarray,
) -> tuple[np.ndarray, int]:
    """CRV1 vcov for effects realized on the sample's own units, less conservative than the usual CRV1.

    When the estimand is the effect on the treated units actually observed (e.g. the sales *these* stores
    lost), how their effects differ from unit to unit is part of the target, not sampling error; the usual
    sandwich still counts that spread (it sits in the treated units' residuals) and over-covers (Abadie,
    Athey, Imbens & Wooldridge 2020). Here each flagged (`adjust`) unit's score X_i'u_i is replaced by its
    residual from a least-squares fit on the unit attributes `Z` (rows = units; include a constant) over
    the flagged units, scaled by sqrt(n / (n - p)) for the p fitted columns, which removes the part of the
    effect spread the attributes explain; what they do not explain keeps the estimate conservative.
    Scores are then summed by cluster (units nested in clusters, `cluster_of_unit`) with the same
    G/(G-1) * (n-1)/(n-K) factor as `fe_ols`. X and u: within-transformed regressors and OLS residuals;
    `unit`: each row's unit code 0..U-1. Returns (vcov, p); p = 0 (plain CRV1) when too few units are
    flagged to fit Z (fewer than 2p + 2).
    """
    n = X.shape[0]
    xtx_inv = np.linalg.pinv(X.T @ X)
    to_unit = sparse.csr_matrix((np.ones(n), (unit, np.arange(n))))
    scores = np.asarray(to_unit @ (X * u[:, None]))
    return crv1_realized_scores(xtx_inv, scores, n, cluster_of_unit, adjust, Z)


def crv1_realized_scores(
    xtx_inv: np.ndarray,
    scores: np.ndarray,
    n: int,
    cluster_of_unit: np.ndarray,
    adjust: np.ndarray,
    Z: np.ndarray,
) -> tuple[np.ndarray, int]:
    """`crv1_realized` from (X'X)^-1, the units' scores X_i'u_i (rows = units) and the number of rows n.

    For callers that have the scores without the within-transformed X (`analysis.indicator_ols`)."""
    k = scores.shape[1]
    scores = scores.copy()
    sel = np.flatnonzero(adjust)
    p = int(np.linalg.matrix_rank(Z[sel])) if sel.size else 0
    if p and sel.size >= 2 * p + 2:
        fitted = Z[sel] @ np.linalg.lstsq(Z[sel], scores[sel], rcond=None)[0]
        scores[sel] = (scores[sel] - fitted) * math.sqrt(sel.size / (sel.size - p))
    else:
        p = 0
    g = int(cluster_of_unit.max()) + 1
    by_cluster = np.zeros((g, k))
    np.add.at(by_cluster, cluster_of_unit, scores)  # one row per unit: cheap
    return sandwich(xtx_inv, by_cluster.T @ by_cluster, n, g), p


def sandwich(xtx_inv: np.ndarray, meat: np.ndarray, n: int, g: int | None = None) -> np.ndarray:
    """(X'X)^-1 meat (X'X)^-1 with the small-sample factor of `fe_ols`: G/(G-1) * (n-1)/(n-K) for `g`
    clusters (CRV1), n/(n-K) without (HC1)."""
    k = xtx_inv.shape[0]
    if g is None:
        return n / max(n - k, 1) * xtx_inv @ meat @ xtx_inv
    return (g / max(g - 1, 1)) * ((n - 1) / max(n - k, 1)) * xtx_inv @ meat @ xtx_inv


def check_rows(n: int, k: int) -> None:
    """InputError when `n` usable rows cannot fit `k` regressors (and a constant's worth of slack)."""
    if n <= k + 1:
        raise InputError(f"panel regression: only {n} usable rows for {k} regressor(s)")


def check_identified(names: Sequence[str], varies: Sequence[bool], fe: Sequence[str]) -> None:
    """InputError naming the regressors without variation left within the fixed effects `fe`."""
    flat = [name for name, ok in zip(names, varies, strict=True) if not ok]
    if flat:
        raise InputError(
            f"panel regression: {flat} has no variation within the fixed effects {list(fe)}; "
            "nothing identifies its coefficient (e.g. no store-level variation over time)"
        )


# ------------------------------------------------------------------------------------- time series (HAC)

HAC_METHODS = ("prewhitened", "nw")


def nw_lags(n: int) -> int:
    """Newey-West (1994) rule of thumb: floor(4 (n/100)^(2/9)), at least 1."""
    return max(1, int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0))))


@dataclass
class HacFit:
    params: np.ndarray
    bse: np.ndarray
    df_resid: int
    fittedvalues: np.ndarray
    resid: np.ndarray
    ar1: float

    def estimate(self, i: int, alpha: float) -> Estimate:
        """Coefficient i with a t interval (n - k degrees of freedom)."""
        b, se = float(self.params[i]), float(self.bse[i])
        q = stats.t.ppf(1 - alpha / 2, max(self.df_resid, 1))
        p = float(2 * stats.t.sf(abs(b / se), max(self.df_resid, 1))) if se > 0 else 0.0
        return Estimate(b, se, b - q * se, b + q * se, p)


def bartlett_sum(h: np.ndarray, lags: int) -> np.ndarray:
    """Newey-West sum of score outer products with Bartlett weights 1 - j / (lags + 1)."""
    s = h.T @ h
    for j in range(1, min(lags, h.shape[0] - 1) + 1):
        g = h[j:].T @ h[:-j]
        s += (1 - j / (lags + 1)) * (g + g.T)
    return s


def hac_ols(y: np.ndarray, X: np.ndarray, maxlags: int, hac: str = "prewhitened") -> HacFit:
    """OLS with autocorrelation-robust standard errors.

    "nw": statsmodels' Newey-West HAC (`cov_type="HAC"`, Bartlett kernel, small-sample correction).
    "prewhitened" (default): the same Newey-West estimator applied to AR(1)-prewhitened scores and
    recoloured by 1 / (1 - phi)^2 (Andrews & Monahan 1992), with phi bias-corrected for the short,
    detrended sample (phi + (2 + 4 phi) / n). Price series are strongly autocorrelated; in simulations of
    54-72 monthly points with AR(1) noise (phi 0.5-0.8) plain NW intervals covered the true slope only
    70-85% of the time at a nominal 95%, the prewhitened ones about 92-94%.
    """
    n, k = X.shape
    import statsmodels.api as sm  # ~2 s to import: only HAC fits need it

    ols = sm.OLS(y, X)
    if hac == "nw":
        r = ols.fit(cov_type="HAC", cov_kwds={"maxlags": maxlags, "use_correction": True}, use_t=True)
        return HacFit(
            np.asarray(r.params),
            np.asarray(r.bse),
            n - k,
            np.asarray(r.fittedvalues),
            np.asarray(r.resid),
            math.nan,
        )
    if hac != "prewhitened":
        raise InputError(f"hac must be one of {HAC_METHODS}, got {hac!r}")
    r = ols.fit()
    u = np.asarray(r.resid)
    phi = ar1(u)
    phi = float(np.clip(phi + (2 + 4 * phi) / n, -0.97, 0.97))
    h = X * u[:, None]
    e = h[1:] - phi * h[:-1]
    s = bartlett_sum(e, maxlags) * (n / (n - 1)) / (1 - phi) ** 2
    xtx_inv = np.linalg.inv(X.T @ X)
    V = xtx_inv @ s @ xtx_inv * n / (n - k)
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    return HacFit(np.asarray(r.params), se, n - k, np.asarray(r.fittedvalues), u, phi)


# ----------------------------------------------------------------------------------------- bootstrap


def ar1(u: np.ndarray) -> float:
    """First-order autocorrelation coefficient of a residual series (0 for a constant series)."""
    denom = float(u[:-1] @ u[:-1])
    return float(u[1:] @ u[:-1]) / denom if denom > 0 else 0.0


def rademacher(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random signs +-1 (wild bootstrap weights)."""
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def bootstrap_p_value(observed: float, draws: np.ndarray) -> float:
    """One-sided bootstrap p-value (1 + #{draws >= observed}) / (1 + #draws)."""
    return float((1 + np.sum(draws >= observed)) / (draws.size + 1))
