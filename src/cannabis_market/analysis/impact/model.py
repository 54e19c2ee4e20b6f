"""The maximum-likelihood structural time-series family (statsmodels ``UnobservedComponents``).

The model (on data standardized with the pre-period mean and sd of each column)::

    y_t     = mu_t + gamma_t + x_t' beta + eps_t,      eps_t ~ N(0, s2_irregular)
    mu_t+1  = mu_t + eta_t,                             eta_t ~ N(0, s2_level)
    gamma_t = -(gamma_t-1 + ... + gamma_t-S+1) + w_t    (dummy seasonal, only when seasonal)

The controls enter as ``exog`` with ``mle_regression=False``: the coefficients are part of the state
vector (exact-diffuse initialised, a flat prior), so their uncertainty reaches the simulated paths.

Level disturbance bound: CausalImpact's informative prior on the level sd (``prior.level.sd``) is
enforced here as a hard bound through the parametrisation ``s2_level = B t1^2 / (1 + t1^2)`` with
``B = prior_level_sd^2`` (any real ``t1`` maps into ``[0, B)``), ``s2_irregular = exp(t0)``,
``s2_seasonal = t2^2``; a plain, deterministic optimisation that guarantees the counterfactual level
cannot drift faster than ``prior_level_sd`` sd units per step.

Uncertainty: paths are simulated jointly over the gap and post-period with
``MLEResults.simulate(anchor="end")`` from the filtered state at the end of the pre-period (level,
seasonal states and coefficients); parameter uncertainty comes from normal draws of the transformed
variances (inverse numerical Hessian), each group of paths re-running the filter with its own draw.
statsmodels and scipy are imported inside the functions: a process that never picks this family never
pays for them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from cannabis_market.analysis.impact.inputs import Prepared


class Spec(NamedTuple):
    level_bound: float  # upper bound of the level variance (0 = deterministic level)
    season: int | None


def build_model(y: np.ndarray, X: np.ndarray | None, spec: Spec):
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    kw: dict[str, Any] = {}
    if spec.season:
        kw.update(seasonal=spec.season, stochastic_seasonal=True)
    if X is not None:
        kw.update(exog=X, mle_regression=False)
    return UnobservedComponents(
        y,
        irregular=True,
        level=True,
        stochastic_level=spec.level_bound > 0,
        use_exact_diffuse=True,
        **kw,
    )


def to_params(theta: np.ndarray, spec: Spec) -> np.ndarray:
    """Map unconstrained ``theta`` to statsmodels' params (variances), enforcing the level bound."""
    theta = np.clip(theta, -30.0, 30.0)
    out = [math.exp(min(max(theta[0], -25.0), 10.0))]
    i = 1
    if spec.level_bound > 0:
        t2 = theta[i] ** 2
        out.append(spec.level_bound * t2 / (1.0 + t2))
        i += 1
    if spec.season:
        out.append(theta[i] ** 2)
    return np.asarray(out, dtype=float)


def fit(model, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Maximum likelihood in the transformed space; returns (theta_hat, covariance of theta)."""
    from scipy.optimize import minimize

    def nll(theta: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = model.loglike(to_params(theta, spec))
        return -v if np.isfinite(v) else 1e12

    starts = []
    for lvl in (0.5, 3.0) if spec.level_bound > 0 else (None,):
        th = [math.log(0.3)] + ([lvl] if lvl is not None else []) + ([0.05] if spec.season else [])
        starts.append(np.asarray(th))
    best = None
    for th0 in starts:
        # BFGS on the unconstrained theta (the transformation already enforces every constraint)
        res = minimize(nll, th0, method="BFGS", options={"maxiter": 200})
        if best is None or res.fun < best.fun:
            best = res
    theta = np.asarray(best.x, dtype=float)
    # Level/seasonal enter as squares: report the non-negative root (the likelihood is even in them).
    theta[1:] = np.abs(theta[1:])
    cov = _inverse_hessian(nll, theta)
    return theta, cov


def _inverse_hessian(f, theta: np.ndarray, max_var: float = 25.0) -> np.ndarray:
    """Covariance from a central-difference Hessian, regularised to be positive definite."""
    k = theta.size
    h = 1e-3 * np.maximum(np.abs(theta), 1.0)
    H = np.empty((k, k))
    f0 = f(theta)
    for i in range(k):
        for j in range(i, k):
            if i == j:
                e = np.zeros(k)
                e[i] = h[i]
                H[i, i] = (f(theta + e) - 2 * f0 + f(theta - e)) / h[i] ** 2
            else:
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i], ej[j] = h[i], h[j]
                H[i, j] = H[j, i] = (
                    f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)
                ) / (4 * h[i] * h[j])
    if not np.all(np.isfinite(H)):
        return np.zeros((k, k))
    w, V = np.linalg.eigh((H + H.T) / 2)
    w = np.maximum(w, 1.0 / max_var)
    return (V / w) @ V.T


def simulate(
    model,
    spec: Spec,
    theta: np.ndarray,
    cov: np.ndarray,
    X_ahead: np.ndarray | None,
    horizon: int,
    n_sims: int,
    rng: np.random.Generator,
    param_uncertainty: bool,
) -> np.ndarray:
    """Counterfactual paths (horizon x n_sims, standardized units) anchored at the pre-period end."""
    n_groups = max(1, min(40, n_sims // 50)) if param_uncertainty else 1
    sizes = np.full(n_groups, n_sims // n_groups)
    sizes[: n_sims % n_groups] += 1
    if param_uncertainty:
        draws = rng.multivariate_normal(theta, cov, size=n_groups, method="eigh")
    else:
        draws = theta[None, :]
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for th, m in zip(draws, sizes, strict=True):
            res = model.filter(to_params(th, spec))
            sim = res.simulate(horizon, anchor="end", repetitions=int(m), exog=X_ahead, rng=rng)
            paths.append(np.asarray(sim).reshape(horizon, int(m)))
    return np.concatenate(paths, axis=1)


class Fitted(NamedTuple):
    """What a model family hands back: pre-period one-step predictions, paths and parameters.

    All in standardized units. ``pre_mean``/``pre_sd`` are NaN where the model makes no prediction
    (the filter's diffuse start-up). ``paths`` is horizon x n_sims (horizon = rows after the pre-period).
    """

    pre_mean: np.ndarray
    pre_sd: np.ndarray
    paths: np.ndarray
    params: dict[str, float]
    info: dict[str, Any]


def fit_state_space(
    prep: Prepared,
    controls: list[str],
    spec: Spec,
    n_sims: int,
    rng: np.random.Generator,
    param_uncertainty: bool,
) -> Fitted:
    """Fit the structural model on the pre-period and simulate ``n_sims`` counterfactual paths."""
    n_pre, Xs = prep.n_pre, prep.Xs
    model = build_model(prep.Ys[:n_pre], Xs[:n_pre] if Xs is not None else None, spec)
    theta, cov = fit(model, spec)
    params = to_params(theta, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.filter(params)
    horizon = len(prep.Ys) - n_pre
    X_ahead = Xs[n_pre:] if Xs is not None else None
    paths = simulate(model, spec, theta, cov, X_ahead, horizon, n_sims, rng, param_uncertainty)

    burn = int(getattr(fitted, "nobs_diffuse", 0) or 0)
    ok = np.arange(n_pre) >= burn
    f_mean = np.asarray(fitted.forecasts[0])
    f_sd = np.sqrt(np.maximum(np.asarray(fitted.forecasts_error_cov[0, 0]), 0.0))
    pre_mean = np.where(ok, f_mean, np.nan)
    pre_sd = np.where(ok, f_sd, np.nan)

    names = (
        ["sigma2_irregular"]
        + (["sigma2_level"] if spec.level_bound > 0 else [])
        + (["sigma2_seasonal"] if spec.season else [])
    )
    pinfo = {n: float(v) for n, v in zip(names, params, strict=True)}
    weights = {}
    if controls:
        beta = _coefficients(fitted, len(controls))
        for c, b, s in zip(controls, beta, prep.sd_x, strict=True):
            pinfo[f"beta_{c}"] = float(b * prep.sd_y / s)
            weights[c] = float(b)
    return Fitted(pre_mean, pre_sd, paths, pinfo, {"weights": weights})


def _coefficients(fitted, k: int) -> np.ndarray:
    """Regression coefficients (standardized units) from the last filtered state."""
    names = list(fitted.model.state_names) if hasattr(fitted.model, "state_names") else []
    idx = [i for i, n in enumerate(names) if n.startswith("beta")]
    if len(idx) != k:  # statsmodels places the regression states last
        idx = list(range(fitted.filtered_state.shape[0] - k, fitted.filtered_state.shape[0]))
    return fitted.filtered_state[idx, -1]
