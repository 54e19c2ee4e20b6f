"""The regression family: spike-and-slab selection of controls with autocorrelated errors; exact, numpy.

The model (on data standardized with the pre-period mean and sd of each column)::

    y_t = alpha + s_t' delta + x_t,gamma' beta_gamma + u_t

``gamma`` says which controls enter (CausalImpact's spike-and-slab inclusion indicators), ``s_t`` are
optional seasonal dummies (one block, itself included or not). The errors ``u_t`` are one of

* AR(1): ``u_t = phi u_t-1 + e_t``, ``phi`` on a grid from 0 (white noise) to 1 (a random walk);
* local level + noise: ``u_t = l_t + e_t``, ``l_t+1 = l_t + w_t``, ``var(w) = q var(e)``, ``q`` on a grid
  (CausalImpact's local level; the level absorbs the intercept). It lets the counterfactual carry a
  level the controls do not explain, e.g. when a control that tracked y jumped in the pre-period.

Priors: a flat prior on ``alpha`` (or the initial level); ``p(s2) ~ 1/s2``; Zellner's g-prior on the
included coefficients, ``beta_gamma | s2 ~ N(0, g s2 (Z'Z)^-1)`` with ``g = 100 n`` (weak: with the
unit-information ``g = n`` the posterior mean shrinks coefficients by 1/(1+n), enough to bias forecasts
of trending series); independent inclusion indicators with prior probability ``min(0.5, 3 / k)`` (about
3 controls expected); a uniform prior over the error models. Every error model is whitened exactly --
Prais-Winsten for AR(1), the Kalman filter for the local level (it is linear, so filtering y and every
control column gives the GLS transform) -- so every ``(gamma, error model)`` has a closed-form marginal
likelihood, and instead of a Gibbs sampler over ``gamma`` the posterior is computed exactly by
enumerating the models (up to 2^9 subsets; a Gibbs sampler over the indicators takes over beyond). Why
this rather than MLE: coefficients are averaged over models, so it runs with more controls than the
3-points-per-parameter rule allows, a control whose relation with y breaks gets a low inclusion
probability, and serially correlated errors widen the intervals exactly as much as the pre-period
supports.

Counterfactual paths are exact posterior-predictive draws: a model from its posterior weight, then
``s2``, ``beta``, ``alpha`` from their conditional posteriors, then the errors continued from the end
of the pre-period (the last AR residual, or the filtered level and its variance).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from cannabis_market.analysis.impact.model import Fitted

PHI_GRID = (0.0, 0.25, 0.5, 0.65, 0.8, 0.9, 0.95, 0.98, 1.0)
Q_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)
MAX_ENUMERATED = 9  # groups; 2^9 models x 8 phi values stay well under 0.1 s
GIBBS_SWEEPS = 300
MAX_MODELS = 200
G_PER_POINT = 100.0


class _Whitened(NamedTuple):
    phi: float  # AR(1) coefficient of the errors (unused when q > 0)
    G: np.ndarray  # Z*'Z* (intercept projected out)
    b: np.ndarray  # Z*'y*
    yy: float
    c: np.ndarray  # transformed intercept column
    T: np.ndarray  # transformed [y, Z] (not projected)
    ldet: float  # Jacobian and flat-intercept terms of the log marginal likelihood
    q: float = 0.0  # > 0: local level + white noise errors, level variance / noise variance
    a_last: np.ndarray | None = None  # filtered level of each column of [y, Z] at the last point
    P_last: float = 0.0  # its variance, in units of the noise variance
    V: np.ndarray | None = None  # one-step innovations of [y, Z] (rows 1..n-1)
    F: np.ndarray | None = None  # their variances, in units of the noise variance


def seasonal_dummies(n: int, period: int) -> np.ndarray:
    """n x (period - 1) centred dummies for position t mod period (the last season is the reference)."""
    pos = np.arange(n) % period
    D = (pos[:, None] == np.arange(period - 1)[None, :]).astype(float)
    return D - 1.0 / period


def min_points(n_controls: int) -> int:
    """Shortest pre-period the family accepts: 3 points per intercept, variance, phi and ~2 controls."""
    return 3 * (3 + min(n_controls, 2))


def _prais_winsten(A: np.ndarray, phi: float) -> np.ndarray:
    if phi >= 1.0:  # a random-walk error: first differences (the diffuse level drops out with the intercept)
        return np.diff(A, axis=0)
    out = np.empty_like(A)
    out[0] = math.sqrt(1.0 - phi * phi) * A[0]
    out[1:] = A[1:] - phi * A[:-1]
    return out


def _whiten(y: np.ndarray, Z: np.ndarray, phi: float) -> _Whitened:
    n = len(y)
    T = _prais_winsten(np.column_stack([y, np.ones(n), Z]), phi)
    c = T[:, 1]
    cc = float(c @ c)
    M = np.delete(T, 1, axis=1)
    if phi < 1.0:
        M = M - np.outer(c, (c @ M) / cc)
        ldet = 0.5 * math.log(1.0 - phi * phi) - 0.5 * math.log(cc)
    else:  # the limit of the two terms as phi -> 1
        ldet = 0.0
    ys, Zs = M[:, 0], M[:, 1:]
    return _Whitened(phi, Zs.T @ Zs, Zs.T @ ys, float(ys @ ys), c, T, ldet)


def _whiten_level(y: np.ndarray, Z: np.ndarray, q: float) -> _Whitened:
    """Whiten local-level-plus-noise errors with the Kalman filter (diffuse level, which absorbs the
    intercept); the filter is linear, so running it on every column at once gives the GLS transform."""
    A = np.column_stack([y, Z])
    n = len(A)
    a, P = A[0].copy(), 1.0
    V = np.empty((n - 1, A.shape[1]))
    F = np.empty(n - 1)
    t = 1
    while t < n:
        Pp = P + q
        f = Pp + 1.0
        v = A[t] - a
        V[t - 1], F[t - 1] = v, f
        a = a + (Pp / f) * v
        P_new = Pp / f
        t += 1
        if abs(P_new - P) < 1e-13 and n - t > 1000:
            P = P_new
            break
        P = P_new
    if t < n:  # steady state: the filter is a fixed first-order recursion, run it in C
        from scipy.signal import lfilter

        K = (P + q) / (P + q + 1.0)
        levels = lfilter([K], [1.0, K - 1.0], A[t:], axis=0, zi=((1.0 - K) * a)[None, :])[0]
        prev = np.vstack([a[None, :], levels[:-1]])
        V[t - 1 :] = A[t:] - prev
        F[t - 1 :] = P + q + 1.0
        a = levels[-1]
    W = V / np.sqrt(F)[:, None]
    ys, Zs = W[:, 0], W[:, 1:]
    ldet = -0.5 * float(np.log(F).sum())
    return _Whitened(1.0, Zs.T @ Zs, Zs.T @ ys, float(ys @ ys), np.zeros(0), W, ldet, q, a, P, V, F)


class RegressionFit(NamedTuple):
    """Posterior over models: column groups, model list with weights, and the whitened data per phi."""

    groups: list[np.ndarray]
    models: list[tuple[int, tuple[int, ...]]]  # (phi index, included groups)
    weights: np.ndarray
    white: list[_Whitened]
    g: float
    n: int


def fit_regression(
    y: np.ndarray, Z: np.ndarray, groups: list[np.ndarray], prior_incl: list[float]
) -> RegressionFit:
    """Posterior weights of every (phi, included groups) model for y on the columns of Z."""
    n = len(y)
    g = float(max(G_PER_POINT * n, 1))
    white = [_whiten(y, Z, phi) for phi in PHI_GRID] + [_whiten_level(y, Z, q) for q in Q_GRID]
    k = len(groups)
    lp_in = np.log(prior_incl)
    lp_out = np.log1p(-np.asarray(prior_incl))
    shrink = g / (1.0 + g)

    def logpost(j: int, incl: tuple[int, ...]) -> float:
        w = white[j]
        cols = np.concatenate([groups[i] for i in incl]) if incl else np.empty(0, dtype=int)
        fit = 0.0
        if cols.size:
            Gs = w.G[np.ix_(cols, cols)]
            try:
                fit = float(w.b[cols] @ np.linalg.solve(Gs, w.b[cols]))
            except np.linalg.LinAlgError:
                return -math.inf
        S = max(w.yy - shrink * fit, 1e-300)
        prior = sum(lp_in[i] if i in incl else lp_out[i] for i in range(k))
        return w.ldet - 0.5 * cols.size * math.log1p(g) - 0.5 * (n - 1) * math.log(S) + prior

    if k <= MAX_ENUMERATED:
        subsets = [tuple(i for i in range(k) if mask >> i & 1) for mask in range(2**k)]
        models, lps = _enumerate(white, groups, subsets, lp_in, lp_out, g, n)
    else:
        models, lps = _gibbs(logpost, k, len(white))
    wts = np.exp(lps - lps.max())
    wts /= wts.sum()
    # keep the most probable models holding 99.9% of the posterior (at most MAX_MODELS)
    order = np.argsort(-wts)
    n_keep = min(int(np.searchsorted(np.cumsum(wts[order]), 0.999)) + 1, MAX_MODELS, len(order))
    keep = order[:n_keep]
    models = [models[i] for i in keep]
    wts = wts[keep] / wts[keep].sum()
    return RegressionFit(groups, models, wts, white, g, n)


def _enumerate(
    white: list[_Whitened],
    groups: list[np.ndarray],
    subsets: list[tuple[int, ...]],
    lp_in: np.ndarray,
    lp_out: np.ndarray,
    g: float,
    n: int,
) -> tuple[list[tuple[int, tuple[int, ...]]], np.ndarray]:
    """Log posterior of every (phi, subset), batched over subsets with the same number of columns."""
    shrink = g / (1.0 + g)
    cols = [np.concatenate([groups[i] for i in s]) if s else np.empty(0, dtype=int) for s in subsets]
    prior = np.array([sum(lp_in[i] if i in s else lp_out[i] for i in range(len(groups))) for s in subsets])
    by_size: dict[int, list[int]] = {}
    for idx, c in enumerate(cols):
        by_size.setdefault(c.size, []).append(idx)
    models, lps = [], []
    for j, w in enumerate(white):
        fit = np.zeros(len(subsets))
        for p, idxs in by_size.items():
            if p == 0:
                continue
            C = np.stack([cols[i] for i in idxs])  # m x p
            Gs = w.G[C[:, :, None], C[:, None, :]]  # m x p x p
            bs = w.b[C]  # m x p
            try:
                sol = np.linalg.solve(Gs, bs[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:  # a singular subset somewhere: fall back one by one
                sol = np.stack(
                    [np.linalg.lstsq(G1, b1, rcond=None)[0] for G1, b1 in zip(Gs, bs, strict=True)]
                )
            fit[idxs] = (bs * sol).sum(axis=1)
        S = np.maximum(w.yy - shrink * fit, 1e-300)
        sizes = np.array([c.size for c in cols])
        lp = w.ldet - 0.5 * sizes * math.log1p(g) - 0.5 * (n - 1) * np.log(S) + prior
        models += [(j, s) for s in subsets]
        lps.append(lp)
    return models, np.concatenate(lps)


def _gibbs(logpost, k: int, n_phi: int) -> tuple[list[tuple[int, tuple[int, ...]]], np.ndarray]:
    """Gibbs sampler over the indicators (and phi); returns the distinct models visited, exactly weighted."""
    rng = np.random.default_rng(12345)
    cache: dict[tuple[int, tuple[int, ...]], float] = {}

    def lp(j: int, s: tuple[int, ...]) -> float:
        key = (j, s)
        if key not in cache:
            cache[key] = logpost(j, s)
        return cache[key]

    state = set(range(min(k, 3)))
    j = 0
    for _ in range(GIBBS_SWEEPS):
        for i in range(k):
            a, b = tuple(sorted(state | {i})), tuple(sorted(state - {i}))
            la, lb = lp(j, a), lp(j, b)
            p_in = 1.0 / (1.0 + math.exp(min(700.0, lb - la)))
            state = set(a) if rng.random() < p_in else set(b)
        s = tuple(sorted(state))
        lj = np.array([lp(jj, s) for jj in range(n_phi)])
        pj = np.exp(lj - lj.max())
        j = int(rng.choice(n_phi, p=pj / pj.sum()))
    models = list(cache)
    return models, np.array([cache[m] for m in models])


def _cols(fit: RegressionFit, incl: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([fit.groups[i] for i in incl]) if incl else np.empty(0, dtype=int)


def _posterior(fit: RegressionFit, j: int, incl: tuple[int, ...]):
    """(columns, shrunk beta mean, chol of beta covariance / s2, posterior S) of one model."""
    w = fit.white[j]
    cols = _cols(fit, incl)
    shrink = fit.g / (1.0 + fit.g)
    if cols.size:
        Ginv = np.linalg.inv(w.G[np.ix_(cols, cols)])
        ols = Ginv @ w.b[cols]
        S = max(w.yy - shrink * float(w.b[cols] @ ols), 1e-300)
        L = np.linalg.cholesky(shrink * (Ginv + Ginv.T) / 2)
        return cols, shrink * ols, L, S
    return cols, np.zeros(0), np.zeros((0, 0)), max(w.yy, 1e-300)


def simulate_regression(
    fit: RegressionFit,
    y: np.ndarray,
    Z: np.ndarray,
    Z_ahead: np.ndarray,
    n_sims: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Posterior-predictive paths (horizon x n_sims) for the rows Z_ahead after the fitted sample."""
    horizon = len(Z_ahead)
    counts = rng.multinomial(n_sims, fit.weights)
    out = []
    for (j, incl), m in zip(fit.models, counts, strict=True):
        if m == 0:
            continue
        w = fit.white[j]
        cols, mean, L, S = _posterior(fit, j, incl)
        s2 = S / (2.0 * rng.standard_gamma((fit.n - 1) / 2.0, size=m))
        s = np.sqrt(s2)
        beta = mean[None, :] + (rng.standard_normal((m, cols.size)) @ L.T) * s[:, None]
        if w.q > 0:  # local level: filtered level at the end, then a random walk, plus noise
            level = (
                w.a_last[0] - w.a_last[1:][cols] @ beta.T + rng.standard_normal(m) * s * math.sqrt(w.P_last)
            )
            steps = rng.standard_normal((horizon, m)) * (s * math.sqrt(w.q))[None, :]
            u = level[None, :] + np.cumsum(steps, axis=0) + rng.standard_normal((horizon, m)) * s[None, :]
            out.append(Z_ahead[:, cols] @ beta.T + u)
            continue
        alpha = _draw_intercept(w, cols, beta, s, rng)
        u_last = y[-1] - alpha - Z[-1, cols] @ beta.T
        e = rng.standard_normal((horizon, m)) * s[None, :]
        u = np.empty((horizon, m))
        prev = u_last
        for h in range(horizon):
            prev = w.phi * prev + e[h]
            u[h] = prev
        out.append(alpha[None, :] + Z_ahead[:, cols] @ beta.T + u)
    paths = np.concatenate(out, axis=1)
    return paths[:, rng.permutation(n_sims)]


def _draw_intercept(w: _Whitened, cols: np.ndarray, beta: np.ndarray, s: np.ndarray, rng) -> np.ndarray:
    """Intercept draws given coefficient draws (m x p) and sds (m); 0 under a random-walk error."""
    cc = float(w.c @ w.c)
    if w.phi >= 1.0 or w.q > 0 or cc <= 0:
        return np.zeros(len(s))
    cT = w.c @ w.T  # c'[y, 1, Z]: the intercept's GLS estimate is linear in beta
    mean = (cT[0] - cT[2:][cols] @ beta.T) / cc
    return mean if rng is None else mean + rng.standard_normal(len(s)) * s / math.sqrt(cc)


def summarize(fit: RegressionFit, y: np.ndarray, Z: np.ndarray) -> dict:
    """Inclusion probabilities, mean coefficients, posterior phi, pre-period one-step predictions, acf."""
    k = len(fit.groups)
    incl_p = np.zeros(k)
    beta_mean = np.zeros(Z.shape[1])
    phi_mean = level_p = 0.0
    for (j, incl), wt in zip(fit.models, fit.weights, strict=True):
        for i in incl:
            incl_p[i] += wt
        cols, mean, _, _ = _posterior(fit, j, incl)
        beta_mean[cols] += wt * mean
        w = fit.white[j]
        if w.q > 0:
            level_p += wt
        else:
            phi_mean += wt * w.phi
    phi_mean = phi_mean / (1.0 - level_p) if level_p < 1.0 else math.nan
    # one-step predictions of the most probable model at its posterior mean
    j, incl = fit.models[int(np.argmax(fit.weights))]
    w = fit.white[j]
    cols, mean, _, S = _posterior(fit, j, incl)
    alpha = float(_draw_intercept(w, cols, mean[None, :], np.zeros(1), None)[0])
    u = y - alpha - Z[:, cols] @ mean
    pre_mean = np.full(len(y), np.nan)
    pre_sd = np.full(len(y), math.sqrt(S / max(fit.n - 1, 1)))
    pre_sd[0] = np.nan
    if w.q > 0:
        pre_mean[1:] = y[1:] - (w.V[:, 0] - w.V[:, 1:][:, cols] @ mean)
        pre_sd[1:] *= np.sqrt(w.F)
    else:
        pre_mean[1:] = y[1:] - u[1:] + w.phi * u[:-1]
    ols_resid = u - u.mean()
    acf1 = float(ols_resid[1:] @ ols_resid[:-1] / (ols_resid @ ols_resid)) if len(u) > 2 else math.nan
    return {
        "inclusion": incl_p,
        "beta": beta_mean,
        "phi": phi_mean,
        "level_prob": level_p,
        "acf1": acf1,
        "pre_mean": pre_mean,
        "pre_sd": pre_sd,
    }


def fit_and_simulate(
    Ys: np.ndarray,
    Xs: np.ndarray | None,
    n_pre: int,
    season: int | None,
    n_sims: int,
    rng: np.random.Generator,
) -> tuple[Fitted, dict]:
    """Fit the family on the first ``n_pre`` rows and simulate the remaining rows; standardized units."""
    n = len(Ys)
    blocks, groups, prior = [], [], []
    start = 0
    if season:
        blocks.append(seasonal_dummies(n, season))
        groups.append(np.arange(season - 1))
        prior.append(0.5)
        start = season - 1
    k = 0 if Xs is None else Xs.shape[1]
    if k:
        blocks.append(Xs)
        groups += [np.array([start + i]) for i in range(k)]
        prior += [min(0.5, 3.0 / k)] * k
    Z = np.column_stack(blocks) if blocks else np.zeros((n, 0))
    fit = fit_regression(Ys[:n_pre], Z[:n_pre], groups, prior)
    paths = simulate_regression(fit, Ys[:n_pre], Z[:n_pre], Z[n_pre:], n_sims, rng)
    s = summarize(fit, Ys[:n_pre], Z[:n_pre])
    ctrl_groups = slice(1, None) if season else slice(None)
    info = {
        "inclusion": s["inclusion"][ctrl_groups].tolist() if k else [],
        "weights_std": s["beta"][start:].tolist() if k else [],
        "seasonal_prob": float(s["inclusion"][0]) if season else None,
        "phi": s["phi"],
        "level_prob": s["level_prob"],
        "acf1": s["acf1"],
        "n_models": len(fit.models),
    }
    return Fitted(s["pre_mean"], s["pre_sd"], paths, {"ar1_phi": s["phi"]}, info), info
