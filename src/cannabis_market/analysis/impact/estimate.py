"""``estimate_impact``: check the input, choose a model family on the pre-period, simulate, assemble.

Two model families (both on pre-period-standardized data, both simulate the counterfactual jointly
over the post-period):

* ``"regression"`` (:mod:`.regression`): spike-and-slab selection over the controls with AR(1) or local-level errors,
  exact Bayesian model averaging; numpy only, a few milliseconds.
* ``"state_space"`` (:mod:`.model`): statsmodels' structural model (local level with a bounded
  variance, optional stochastic seasonal, flat-prior coefficients), fitted by maximum likelihood.

``model="auto"`` (the default) holds out the last part of the pre-period: the regression family is
fitted on the rest and forecasts the holdout. When the holdout mean falls inside its 90% forecast
interval the regression family is used; otherwise the state-space family is fitted on the same split
and the family with the lower CRPS (continuous ranked probability score) of the holdout mean is used.
The state-space fit costs statsmodels' import and ~0.1-0.2 s, so it is paid only when the cheap
family fails its own check. The result says which family was used and why (``model``,
``model_choice``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import polars as pl

from cannabis_market.analysis.impact import regression
from cannabis_market.analysis.impact.inputs import (
    PeriodBound,
    Prepared,
    check_arguments,
    check_controls,
    length_problem,
    prepare,
    resolve_seasonality,
)
from cannabis_market.analysis.impact.model import Fitted, Spec, fit_state_space
from cannabis_market.analysis.impact.result import ImpactResult, _assemble
from cannabis_market.errors import InputError

Model = Literal["auto", "regression", "state_space"]
_HOLDOUT_SIMS = 400
MAX_STATE_SPACE = 5_000  # pre-period points; the MLE fit takes ~1 s per 1,000 points beyond this
AUTO_STATE_SPACE = 2_000  # model="auto" does not try the state-space model on longer pre-periods
_HOLDOUT_LEVEL = 0.9


def estimate_impact(
    frame: pl.DataFrame,
    y: str,
    pre_period: tuple[PeriodBound, PeriodBound],
    post_period: tuple[PeriodBound, PeriodBound],
    controls: list[str] | None = None,
    date_col: str = "date",
    alpha: float = 0.05,
    seasonality: int | None | Literal["auto"] = "auto",
    prior_level_sd: float = 0.01,
    n_sims: int = 1000,
    seed: int = 0,
    param_uncertainty: bool = True,
    model: Model = "auto",
) -> ImpactResult:
    """Estimate the effect of an intervention on ``y`` over ``post_period`` (CausalImpact-style).

    ``frame`` holds ``date_col`` (``pl.Date``/``pl.Datetime``, ISO date strings, or an integer time
    index), the response ``y`` and optional ``controls`` -- series the intervention did not affect.
    ``pre_period``/``post_period`` are inclusive ``(start, end)`` pairs in the date column's type
    (dates or ISO strings; integers for an index). Only rows from the pre-period start to the
    post-period end are used; rows between the two windows (a transition gap) are forecast but not
    counted in the effect.

    ``model``: ``"auto"`` chooses between the two families on a pre-period holdout (see the module
    docstring), ``"regression"`` / ``"state_space"`` force one. ``seasonality``: ``"auto"`` considers
    day-of-week (7) for daily and month-of-year (12) for monthly month-start dates when the pre-period
    covers at least 2 cycles, none otherwise; an integer forces that period; ``None`` switches it off.
    (The regression family includes the seasonal block only when the data support it.)
    ``prior_level_sd`` bounds the sd of the state-space level's random walk in standardized units
    (CausalImpact's ``prior.level.sd``). ``n_sims`` counterfactual paths are simulated with the
    generator seeded by ``seed``; ``param_uncertainty`` also draws the state-space variances (the
    regression family always draws every parameter from its posterior).

    Raises :class:`cannabis_market.errors.InputError` on bad input (see the messages).
    """
    check_arguments(alpha, n_sims, prior_level_sd, seed)
    controls = check_controls(frame, y, controls, date_col)
    if model not in ("auto", "regression", "state_space"):
        raise InputError(f"model must be 'auto', 'regression' or 'state_space', got {model!r}")
    prep = prepare(frame, y, controls, date_col, pre_period, post_period)
    k, n_pre = len(controls), prep.n_pre
    level_bound = float(prior_level_sd) ** 2

    season_ss = resolve_seasonality(seasonality, prep.frequency, n_pre, k, level_bound > 0)
    ss_problem = length_problem(n_pre, k, level_bound > 0, season_ss)
    if n_pre > MAX_STATE_SPACE:
        ss_problem = (
            f"pre-period too long for the state-space model: {n_pre:,} points, more than {MAX_STATE_SPACE:,} "
            "(its maximum-likelihood fit would take minutes); use model='regression' or aggregate the series "
            "(e.g. daily to weekly)"
        )
    reg_season = _regression_season(seasonality, prep, k)
    reg_need = regression.min_points(k)
    reg_problem = (
        f"pre-period too short: it has {n_pre} points but the model ({k} control(s)) needs at least "
        f"{reg_need} (3 per estimated parameter, with the controls shrunk towards an expected model of "
        "2 controls)"
        if n_pre < reg_need
        else None
    )
    if model == "state_space" and ss_problem:
        raise InputError(ss_problem)
    if model == "regression" and reg_problem:
        raise InputError(reg_problem)
    if model == "auto" and reg_problem and ss_problem:
        raise InputError(reg_problem)

    rng = np.random.default_rng(int(seed))
    spec = Spec(level_bound, season_ss)
    if model == "auto":
        chosen, why = _choose(prep, controls, spec, reg_season, ss_problem, reg_problem, rng)
    else:
        chosen, why = model, "requested"

    if chosen == "regression":
        fitted, info = regression.fit_and_simulate(prep.Ys, prep.Xs, n_pre, reg_season, int(n_sims), rng)
        season = reg_season if reg_season and (info["seasonal_prob"] or 0) >= 0.5 else None
        incl = info["inclusion"]
        weights = info["weights_std"]
        diag = {k: info[k] for k in ("acf1", "phi", "level_prob", "seasonal_prob")}
    else:
        fitted = fit_state_space(prep, controls, spec, int(n_sims), rng, param_uncertainty)
        season = season_ss
        incl = [1.0] * k
        weights = [fitted.info["weights"][c] for c in controls]
        diag = {"acf1": _acf1(prep.Ys[:n_pre] - fitted.pre_mean), "phi": math.nan}

    paths = prep.mu_y + prep.sd_y * fitted.paths
    series, summary, p_value = _assemble(
        prep.dates,
        prep.Y,
        fitted.pre_mean[:n_pre],
        fitted.pre_sd[:n_pre],
        paths,
        prep.is_pre,
        prep.is_post,
        n_pre,
        prep.mu_y,
        prep.sd_y,
        alpha,
        int(n_sims),
    )
    table = None
    if controls:
        scale = prep.sd_y / prep.sd_x
        table = pl.DataFrame(
            {
                "control": controls,
                "inclusion_prob": [float(v) for v in incl],
                "coefficient": [float(w * s) for w, s in zip(weights, scale, strict=True)],
                "weight": [float(w) for w in weights],
            }
        )
    params = dict(fitted.params)
    if chosen == "regression":
        for c, w, s in zip(controls, weights, prep.sd_x if controls else [], strict=True):
            params[f"beta_{c}"] = float(w * prep.sd_y / s)
    inputs = {
        "frame": frame.select(date_col, y, *controls),
        "y": y,
        "controls": controls,
        "date_col": date_col,
        "seasonality": seasonality,
        "prior_level_sd": prior_level_sd,
        "param_uncertainty": param_uncertainty,
        "model": chosen,
        "n_pre": n_pre,
    }
    return ImpactResult(
        y=y,
        controls=controls,
        series=series,
        alpha=float(alpha),
        p_value=p_value,
        n_sims=int(n_sims),
        seed=int(seed),
        frequency=prep.frequency,
        seasonality=season,
        pre_period=prep.pre,
        post_period=prep.post,
        prior_level_sd=float(prior_level_sd),
        params=params,
        _summary=summary,
        model=chosen,
        model_choice=why,
        control_table=table,
        diagnostics=diag,
        _inputs=inputs,
    )


def _regression_season(seasonality: Any, prep: Prepared, k: int) -> int | None:
    """The seasonal period the regression family may include (it adds period - 1 dummies)."""
    if seasonality is None or seasonality == "none":
        return None
    if seasonality == "auto":
        period = {"daily": 7, "monthly": 12}.get(prep.frequency)
    else:
        period = int(seasonality) if int(seasonality) > 1 else None
    if period is None or prep.n_pre < max(2 * period, regression.min_points(k) + period - 1):
        return None
    return period


def _acf1(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    if len(r) < 3:
        return math.nan
    r = r - r.mean()
    den = float(r @ r)
    return float(r[1:] @ r[:-1] / den) if den > 0 else math.nan


def _crps(samples: np.ndarray, obs: float) -> float:
    """Continuous ranked probability score of an ensemble forecast (lower is better)."""
    x = np.sort(samples)
    m = len(x)
    spread = 2.0 * float(((2 * np.arange(1, m + 1) - m - 1) * x).sum()) / (m * m)
    return float(np.abs(x - obs).mean()) - 0.5 * spread


def _choose(
    prep: Prepared,
    controls: list[str],
    spec: Spec,
    reg_season: int | None,
    ss_problem: str | None,
    reg_problem: str | None,
    rng: np.random.Generator,
) -> tuple[str, str]:
    """Pick a family for ``model="auto"`` on a holdout at the end of the pre-period; (name, reason)."""
    if reg_problem:
        return "state_space", "the pre-period is too short for the regression model"
    if ss_problem:
        size = "long" if prep.n_pre > MAX_STATE_SPACE else "short"
        return "regression", f"the pre-period is too {size} for the state-space model"
    n_pre, k = prep.n_pre, len(controls)
    if n_pre > AUTO_STATE_SPACE:
        return "regression", f"a long pre-period ({n_pre:,} points): the state-space model was not tried"
    horizon = len(prep.Ys) - n_pre
    h = min(max(horizon, math.ceil(0.2 * n_pre)), n_pre // 3)
    n_train = n_pre - h
    if h < 1 or n_train < regression.min_points(k) + (reg_season - 1 if reg_season else 0):
        return "regression", "the pre-period is too short for a holdout check"
    Ys = prep.Ys[:n_pre]
    Xs = prep.Xs[:n_pre] if prep.Xs is not None else None
    season = reg_season if reg_season and n_train >= 2 * reg_season else None
    reg, _ = regression.fit_and_simulate(Ys, Xs, n_train, season, _HOLDOUT_SIMS, rng)
    actual = float(Ys[n_train:].mean())
    reg_means = reg.paths.mean(axis=0)
    lo, hi = np.quantile(reg_means, [(1 - _HOLDOUT_LEVEL) / 2, (1 + _HOLDOUT_LEVEL) / 2])
    where = f"the last {h} pre-period points"
    if lo <= actual <= hi:
        return "regression", f"holdout: it forecast {where} within its 90% interval"
    hold = Prepared(
        prep.dates[:n_pre],
        prep.Y[:n_pre],
        Ys,
        Xs,
        prep.sd_x,
        prep.mu_y,
        prep.sd_y,
        np.arange(n_pre) < n_train,
        np.arange(n_pre) >= n_train,
        n_train,
        prep.frequency,
        prep.pre,
        prep.post,
    )
    ss_spec = spec if spec.season is None or n_train >= 2 * spec.season else Spec(spec.level_bound, None)
    if length_problem(n_train, k, spec.level_bound > 0, ss_spec.season):
        return "regression", f"holdout: missed {where}, but the state-space model cannot be checked on it"
    ss: Fitted = fit_state_space(hold, controls, ss_spec, _HOLDOUT_SIMS, rng, False)
    c_reg = _crps(reg_means, actual)
    c_ss = _crps(ss.paths.mean(axis=0), actual)
    winner = "state_space" if c_ss < c_reg else "regression"
    return winner, f"holdout on {where}: CRPS {c_reg:.3f} regression vs {c_ss:.3f} state space"
