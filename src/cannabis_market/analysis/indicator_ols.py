"""Two-way fixed-effects OLS for regressors with at most one non-zero per row, without forming them densely.

The event study's regressors are relative-day x treatment indicators: row r holds `val[r]` in column
`col[r]` (or nothing, `col[r] = -1`). Their two-way within transform X_w = X - A[unit] - B[time] is a dense
n x k matrix, but it is the sparse X plus unit and time effects (A, B from `inference.two_way_fit`), so
every product the regression needs -- X_w'X_w, X_w'y, each unit's score X_i'u_i, the HC1 meat
X_w' diag(u^2) X_w -- follows from X's sums per unit, per time and per column and from small U x T and
U x k matrix products: O(n + (U + T) k^2) work instead of O(n k^2).

The estimates and their CRV1 (units nested in clusters) or HC1 covariance are those of `inference.fe_ols`
on the dense within-transformed columns, with the same rows dropped (non-finite values, no cluster), the
same checks and messages and the same small-sample factors (`inference.sandwich`); they differ only by
rounding (tests pin them to 1e-9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cannabis_market.analysis.inference import (
    check_identified,
    check_rows,
    sandwich,
    two_way_counts,
    two_way_fit,
)


@dataclass
class IndicatorFit:
    """OLS of the within-transformed y on the within-transformed indicator columns.

    `vcov`: CRV1 by cluster (HC1 without clusters); `unit_scores`: each unit's X_i'u_i (rows = unit codes);
    `unit_cluster`: each unit's cluster code 0..G-1 among the clusters used (-1: no row used)."""

    beta: np.ndarray
    xtx_inv: np.ndarray
    vcov: np.ndarray
    unit_scores: np.ndarray
    unit_cluster: np.ndarray | None
    nobs: int
    n_clusters: int


def _table(a: np.ndarray, b: np.ndarray, w: np.ndarray, na: int, nb: int) -> np.ndarray:
    """na x nb table of the weights `w` summed by (a, b) code pairs."""
    return np.bincount(a * nb + b, weights=w, minlength=na * nb).reshape(na, nb)


class _Design:
    """The indicator regressors on the rows used and the effects their within transform subtracts."""

    def __init__(
        self,
        unit: np.ndarray,
        time: np.ndarray,
        col: np.ndarray,
        val: np.ndarray,
        A: np.ndarray,
        B: np.ndarray,
    ) -> None:
        self.unit, self.time, self.A, self.B = unit, time, A, B
        self.nu, self.nt, self.k = A.shape[0], B.shape[0], A.shape[1]
        self.nz = np.flatnonzero(col >= 0)
        self.col, self.val = col[self.nz], val[self.nz]

    def dot(self, beta: np.ndarray) -> np.ndarray:
        """X_w @ beta, one value per row."""
        out = -(self.A @ beta)[self.unit] - (self.B @ beta)[self.time]
        out[self.nz] += self.val * beta[self.col]
        return out

    def tdot(self, lam: np.ndarray) -> np.ndarray:
        """X_w' lam (k)."""
        xl = np.bincount(self.col, self.val * lam[self.nz], minlength=self.k)
        su, st = np.bincount(self.unit, lam, self.nu), np.bincount(self.time, lam, self.nt)
        return xl - self.A.T @ su - self.B.T @ st

    def cross(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """S' L X_w (U x k), D' L X_w (T x k) and X_w' L X_w (k x k) for row weights L = diag(lam); S, D
        the row -> unit and row -> time indicators."""
        w = self.val * lam[self.nz]
        SX = _table(self.unit[self.nz], self.col, w, self.nu, self.k)  # S' L X
        DX = _table(self.time[self.nz], self.col, w, self.nt, self.k)  # D' L X
        SD = _table(self.unit, self.time, lam, self.nu, self.nt)  # S' L D
        su, st = SD.sum(axis=1), SD.sum(axis=0)
        TS = SX - su[:, None] * self.A - SD @ self.B
        TD = DX - SD.T @ self.A - st[:, None] * self.B
        XX = np.diag(np.bincount(self.col, w * self.val, minlength=self.k)) - SX.T @ self.A - DX.T @ self.B
        gram = XX - self.A.T @ TS - self.B.T @ TD
        return TS, TD, (gram + gram.T) / 2

    def column(self, j: int) -> np.ndarray:
        """Column j of X_w, dense."""
        out = -self.A[self.unit, j] - self.B[self.time, j]
        on = self.col == j
        out[self.nz[on]] += self.val[on]
        return out


def _identified(d: _Design, xtx: np.ndarray, n: int) -> list[bool]:
    """`fe_ols`'s test that each column varies: sd > 1e-10 * max(1, max |column|). The sd from the sums
    decides clear cases (far above the threshold, against an upper bound of max |column|); the rest are
    formed and tested exactly as `fe_ols` does."""
    mean = d.tdot(np.ones(n)) / n
    sd = np.sqrt(np.clip(np.diag(xtx) / n - mean**2, 0, None))
    top = np.zeros(d.k)
    np.maximum.at(top, d.col, np.abs(d.val))
    used_u, used_t = np.unique(d.unit), np.unique(d.time)
    bound = top + np.abs(d.A[used_u]).max(axis=0) + np.abs(d.B[used_t]).max(axis=0)
    varies = []
    for j in range(d.k):
        if sd[j] > 1e-6 * max(1.0, float(bound[j])):
            varies.append(True)
            continue
        c = d.column(j)
        varies.append(bool(c.std() > 1e-10 * max(1.0, float(np.abs(c).max()))))
    return varies


def indicator_ols(
    y: np.ndarray,
    unit: np.ndarray,
    time: np.ndarray,
    col: np.ndarray,
    val: np.ndarray,
    names: Sequence[str],
    cluster_of_unit: np.ndarray | None = None,
) -> IndicatorFit:
    """OLS of y on k = len(names) regressors with unit and time effects swept out (`within_two_way`).

    Row r of the regressors is `val[r]` in column `col[r]` (-1: all zero); `unit`, `time`: codes 0..U-1,
    0..T-1. `cluster_of_unit`: each unit's cluster code (units nested in clusters; -1 = none: its rows are
    dropped, as `fe_ols` drops rows without a cluster); None for HC1. The within transform is taken over
    all rows, as for `fe_ols` on within-transformed columns."""
    k = len(names)
    nu, nt = int(unit.max()) + 1, int(time.max()) + 1
    on = np.flatnonzero(col >= 0)
    SM = np.column_stack([np.bincount(unit, y, nu), _table(unit[on], col[on], val[on], nu, k)])
    DM = np.column_stack([np.bincount(time, y, nt), _table(time[on], col[on], val[on], nt, k)])
    A, B = two_way_fit(SM, DM, two_way_counts(unit, time))
    y_w = y - A[unit, 0] - B[time, 0]
    A, B = A[:, 1:], B[:, 1:]
    keep = np.isfinite(y_w) & np.isfinite(A).all(axis=1)[unit] & np.isfinite(B).all(axis=1)[time]
    keep[on] &= np.isfinite(val[on])
    if cluster_of_unit is not None:
        keep &= cluster_of_unit[unit] >= 0
    if not keep.all():
        y_w, unit, time, col, val = y_w[keep], unit[keep], time[keep], col[keep], val[keep]
    n = int(y_w.size)
    check_rows(n, k)
    d = _Design(unit, time, col, val, A, B)
    xtx = d.cross(np.ones(n))[2]
    check_identified(names, _identified(d, xtx, n), ())
    xtx_inv = np.linalg.pinv(xtx)
    beta = xtx_inv @ d.tdot(y_w)
    u = y_w - d.dot(beta)
    scores = d.cross(u)[0]
    if cluster_of_unit is None:
        return IndicatorFit(beta, xtx_inv, sandwich(xtx_inv, d.cross(u**2)[2], n), scores, None, n, n)
    used = np.bincount(unit, minlength=nu) > 0
    labels, codes = np.unique(cluster_of_unit[used], return_inverse=True)
    unit_cluster = np.full(nu, -1)
    unit_cluster[used] = codes
    by_cluster = np.zeros((labels.size, k))
    np.add.at(by_cluster, codes, scores[used])
    V = sandwich(xtx_inv, by_cluster.T @ by_cluster, n, int(labels.size))
    return IndicatorFit(beta, xtx_inv, V, scores, unit_cluster, n, int(labels.size))
