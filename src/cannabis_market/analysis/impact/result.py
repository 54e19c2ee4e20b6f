"""The impact result: numbers (summary, average, cumulative, lost), text (table, report), chart.

``_assemble`` turns a model family's pre-period predictions and counterfactual paths into the
``series`` and ``summary`` frames; intervals on sums and averages come from per-path sums, never from
summing pointwise bounds. The tail-area probability ``p_value`` is the share of simulated post-period
sums at least as extreme as the observed sum, in the direction of the estimated effect, counting the
observation itself (floor ``1 / (n_sims + 1)``, never 0) -- CausalImpact's "posterior tail-area
probability".
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from cannabis_market.analysis.impact.inputs import Frequency
from cannabis_market.format import fmt_cad, fmt_date, fmt_interval, fmt_num, fmt_pct

_UNIT = {"daily": "day", "weekly": "week", "monthly": "month", "index": "period"}
_SUMMARY_COLUMNS = [
    "actual",
    "predicted",
    "predicted_lo",
    "predicted_hi",
    "abs_effect",
    "abs_effect_lo",
    "abs_effect_hi",
    "rel_effect",
    "rel_effect_lo",
    "rel_effect_hi",
]
MODEL_NAMES = {
    "regression": "spike-and-slab regression on the controls with autocorrelated errors (AR(1) or local level)",
    "state_space": "structural time series (local level, maximum likelihood)",
}


class Estimate(NamedTuple):
    """A point estimate with its interval."""

    point: float
    lo: float
    hi: float


# ----------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ImpactResult:
    """Result of :func:`estimate_impact`.

    ``series`` has one row per time point from the pre-period start to the post-period end: column
    ``date`` (a ``pl.Date``, or ``pl.Int64`` for an integer time index), ``actual``, ``predicted``
    (one-step-ahead in-sample predictions in the pre-period, mean of the simulated counterfactual
    paths afterwards), ``predicted_lo/hi``, ``point_effect`` (actual - predicted) with ``_lo/_hi``,
    and ``cum_effect`` with ``_lo/_hi`` (0 in the pre-period, null in a gap between the periods,
    running sum of the post-period effect from per-path cumulative sums). ``period`` says which
    window each row belongs to ("pre", "gap", "post").
    """

    y: str
    controls: list[str]
    series: pl.DataFrame
    alpha: float
    p_value: float
    n_sims: int
    seed: int
    frequency: Frequency
    seasonality: int | None
    pre_period: tuple[Any, Any]
    post_period: tuple[Any, Any]
    prior_level_sd: float
    params: dict[str, float] = field(default_factory=dict)
    _summary: pl.DataFrame = field(default=None, repr=False)  # type: ignore[assignment]
    model: str = "state_space"
    model_choice: str = ""
    control_table: pl.DataFrame | None = field(default=None, repr=False)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    _inputs: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- numbers -----------------------------------------------------------------------------
    def summary(self, what: str = "effect") -> pl.DataFrame:
        """The effect table (default), the controls table, or the model diagnostics.

        ``"effect"``: two rows, ``average`` and ``cumulative`` (column ``row``), over the post-period;
        columns actual, predicted (+ _lo/_hi), abs_effect = actual - predicted (+ _lo/_hi), rel_effect =
        abs_effect / predicted (+ _lo/_hi, from the per-path ratios).
        ``"controls"``: one row per control: ``inclusion_prob`` (posterior probability that the control
        is in the model; 1.0 for the state-space model, which keeps every control), ``coefficient``
        (posterior mean, in units of y per unit of the control, 0 when excluded) and ``weight`` (the
        same in pre-period-standardized units, comparable across controls).
        ``"model"``: one row: the model used, why, residual lag-1 autocorrelation, the posterior mean
        AR(1) coefficient and posterior probability of local-level errors (regression family).
        """
        if what == "effect":
            return self._summary.clone()
        if what == "controls":
            if self.control_table is None:
                schema = {"control": pl.String, "inclusion_prob": pl.Float64}
                return pl.DataFrame(schema={**schema, "coefficient": pl.Float64, "weight": pl.Float64})
            return self.control_table.clone()
        if what == "model":
            d = self.diagnostics
            return pl.DataFrame(
                {
                    "model": [self.model],
                    "chosen_by": [self.model_choice],
                    "residual_acf1": [d.get("acf1", math.nan)],
                    "ar1_phi": [d.get("phi", math.nan)],
                    "local_level_prob": [d.get("level_prob", math.nan)],
                    "seasonality": [self.seasonality],
                },
                schema_overrides={"seasonality": pl.Int64},
            )
        raise ValueError(f"summary(what=...) must be 'effect', 'controls' or 'model', got {what!r}")

    def _row(self, name: str) -> dict[str, float]:
        return self._summary.filter(pl.col("row") == name).row(0, named=True)

    @property
    def average(self) -> Estimate:
        """Average absolute effect per time step over the post-period, with interval."""
        r = self._row("average")
        return Estimate(r["abs_effect"], r["abs_effect_lo"], r["abs_effect_hi"])

    @property
    def cumulative(self) -> Estimate:
        """Absolute effect summed over the post-period, with interval."""
        r = self._row("cumulative")
        return Estimate(r["abs_effect"], r["abs_effect_lo"], r["abs_effect_hi"])

    @property
    def lost(self) -> Estimate:
        """What the intervention cost: minus the cumulative effect (positive = lost), with interval."""
        c = self.cumulative
        return Estimate(-c.point, -c.hi, -c.lo)

    @property
    def significant(self) -> bool:
        """True when the cumulative interval excludes zero and ``p_value < alpha``."""
        c = self.cumulative
        return (c.lo > 0 or c.hi < 0) and self.p_value < self.alpha

    @property
    def p_value_text(self) -> str:
        """'p = 0.034', or 'p < 1/1001' when no simulated path was as extreme as the data."""
        floor = 1.0 / (self.n_sims + 1)
        if self.p_value <= floor * (1 + 1e-9):
            return f"p < 1/{self.n_sims + 1}"
        return f"p = {self.p_value:.3f}"

    # -- text --------------------------------------------------------------------------------
    def text_table(self, money: bool = False) -> str:
        """The summary as an aligned plain-text table (what the CLI prints)."""
        avg, cum = self._row("average"), self._row("cumulative")
        fa, fc = _formatter(avg, money), _formatter(cum, money)
        level = f"{100 * (1 - self.alpha):g}%"

        def cell(r: dict[str, float], key: str, f) -> str:
            return f"{f(r[key])} {fmt_interval(r[key + '_lo'], r[key + '_hi'], fmt=f)}"

        def pct(x: float) -> str:
            return fmt_pct(x, signed=True)

        lines = [
            ("", "Average", "Cumulative"),
            ("Actual", fa(avg["actual"]), fc(cum["actual"])),
            (f"Prediction ({level} interval)", cell(avg, "predicted", fa), cell(cum, "predicted", fc)),
            (f"Absolute effect ({level})", cell(avg, "abs_effect", fa), cell(cum, "abs_effect", fc)),
            (f"Relative effect ({level})", cell(avg, "rel_effect", pct), cell(cum, "rel_effect", pct)),
        ]
        w0 = max(len(a) for a, _, _ in lines)
        w1 = max(len(b) for _, b, _ in lines)
        out = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in lines]
        out.append(f"Tail-area probability: {self.p_value_text} ({self.n_sims} simulated paths)")
        return "\n".join(out)

    def report(self, money: bool = False, width: int | None = None) -> str:
        """A plain-language paragraph: average and cumulative effect with intervals, p-value, verdict.

        ``money=True`` formats amounts as CAD. The wording never claims more than the interval
        supports: when it includes zero the text says that no effect cannot be ruled out.
        """
        avg, cum = self._row("average"), self._row("cumulative")
        fmt, fcum = _formatter(avg, money), _formatter(cum, money)
        unit = _UNIT[self.frequency]
        monthly = self.frequency == "monthly"
        level = f"{100 * (1 - self.alpha):g}%"
        post = self.series.filter(pl.col("period") == "post")
        n_post = post.height
        first, last = post["date"][0], post["date"][-1]
        if self.frequency == "index":
            span = f"periods {first} to {last}"
        else:
            span = f"{fmt_date(first, monthly=monthly)} to {fmt_date(last, monthly=monthly)}"
        plural = "" if n_post == 1 else "s"
        direction = "increase" if avg["abs_effect"] > 0 else "decrease"
        excludes_zero = cum["abs_effect_lo"] > 0 or cum["abs_effect_hi"] < 0

        parts = [
            f"Over the post-period ({span}, {n_post} {unit}{plural}) '{self.y}' averaged "
            f"{fmt(avg['actual'])} per {unit}. Had the pre-period relationship continued, the model "
            f"expected {fmt(avg['predicted'])} ({level} interval "
            f"{fmt_interval(avg['predicted_lo'], avg['predicted_hi'], fmt=fmt)}).",
            f"The estimated average effect is {fmt(avg['abs_effect'])} per {unit} "
            f"({level} interval {fmt_interval(avg['abs_effect_lo'], avg['abs_effect_hi'], fmt=fmt)}), "
            f"a relative effect of {fmt_pct(avg['rel_effect'], signed=True)} "
            f"{fmt_interval(avg['rel_effect_lo'], avg['rel_effect_hi'], fmt=fmt_pct, signed=True)}; "
            f"summed over the period it is {fcum(cum['abs_effect'])} "
            f"{fmt_interval(cum['abs_effect_lo'], cum['abs_effect_hi'], fmt=fcum)}.",
            f"Under the model, the probability of a post-period total at least this far from the "
            f"counterfactual in this direction is {self.p_value_text} (one-sided tail area).",
        ]
        if excludes_zero and self.p_value < self.alpha:
            parts.append(
                f"The interval excludes zero, so the data give strong evidence of {_article(direction)} "
                f"relative to the counterfactual -- provided the controls were not themselves affected "
                f"by the intervention and their pre-period relationship with '{self.y}' held afterwards."
            )
        elif excludes_zero:
            parts.append(
                f"The interval excludes zero but the tail-area probability is not below {self.alpha:g}, "
                f"so the evidence of {_article(direction)} is weak."
            )
        else:
            parts.append(
                f"The interval includes zero, so we cannot rule out no effect: an apparent {direction} "
                f"of this size could arise by chance under the model."
            )
        parts.append(self.model_text())
        text = " ".join(parts)
        return textwrap.fill(text, width, break_on_hyphens=False) if width else text

    def model_text(self) -> str:
        """One or two sentences: which model was used and why, residual autocorrelation, controls kept."""
        d = self.diagnostics
        out = f"Model: {MODEL_NAMES.get(self.model, self.model)}; {self.model_choice}."
        acf = d.get("acf1")
        if acf is not None and math.isfinite(acf):
            out += f" Pre-period residual lag-1 autocorrelation {acf:.2f}"
            phi, lvl = d.get("phi"), d.get("level_prob")
            out += f", AR(1) coefficient {phi:.2f}" if phi is not None and math.isfinite(phi) else ""
            out += f", probability of a wandering local level {lvl:.2f}." if lvl is not None else "."
        if self.control_table is not None and self.control_table.height and self.model == "regression":
            ranked = self.control_table.sort("inclusion_prob", descending=True)
            shown = [
                f"'{c}' {p:.2f}" for c, p in zip(ranked["control"], ranked["inclusion_prob"], strict=True)
            ]
            out += " Posterior inclusion probability of each control: " + ", ".join(shown) + "."
        return out

    # -- chart and checks ----------------------------------------------------------------------
    def chart(self) -> Any:
        """Three stacked altair panels: observed vs counterfactual, pointwise and cumulative effect."""
        from cannabis_market.analysis.impact.charts import impact_chart

        return impact_chart(self)

    def placebo(self, n_dates: int = 20, n_sims: int = 300) -> Any:
        """In-time placebo: re-estimate at fake intervention dates inside the pre-period.

        See :func:`cannabis_market.analysis.impact.placebo.in_time_placebo`.
        """
        from cannabis_market.analysis.impact.placebo import in_time_placebo

        return in_time_placebo(self, n_dates=n_dates, n_sims=n_sims)


def _formatter(row: dict[str, float], money: bool):
    """A number formatter for one summary row: enough decimals that the interval ends differ."""
    width = min(
        (
            row[f"{k}_hi"] - row[f"{k}_lo"]
            for k in ("predicted", "abs_effect")
            if row[f"{k}_hi"] > row[f"{k}_lo"]
        ),
        default=1.0,
    )
    big = max(abs(row["actual"]), abs(row["predicted"]))
    if money and big >= 1e6:
        unit = 1e9 if big >= 1e9 else 1e6
        digits = int(min(4, max(1, math.ceil(-math.log10(width / unit)) + 1)))

        def f(x: float) -> str:
            return fmt_cad(x, digits=digits)

        return f
    digits = int(min(6, max(0, math.ceil(-math.log10(width)) + 1)))
    if money:

        def g(x: float) -> str:
            return (
                fmt_cad(x, digits=digits)
                if abs(x) >= 1e6
                else f"{'-' if x < 0 else ''}CA${fmt_num(abs(x), digits)}"
            )

        return g

    def h(x: float) -> str:
        return fmt_num(x, digits)

    return h


def _assemble(
    dates: pl.Series,
    Y: np.ndarray,
    pre_mean_s: np.ndarray,
    pre_sd_s: np.ndarray,
    paths: np.ndarray,
    is_pre: np.ndarray,
    is_post: np.ndarray,
    n_pre: int,
    mu_y: float,
    sd_y: float,
    alpha: float,
    n_sims: int,
) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """(series, summary, p_value) from pre-period predictions and counterfactual paths (original units)."""
    n = len(Y)
    qlo, qhi = alpha / 2, 1 - alpha / 2
    pred = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)

    # pre-period: one-step-ahead predictions (null where the model makes none, e.g. a diffuse start-up)
    f_mean = mu_y + sd_y * pre_mean_s
    f_sd = sd_y * pre_sd_s
    z = NormalDist().inv_cdf(qhi)
    ok = np.isfinite(f_mean) & np.isfinite(f_sd)
    pred[:n_pre] = np.where(ok, f_mean, np.nan)
    lo[:n_pre] = np.where(ok, f_mean - z * f_sd, np.nan)
    hi[:n_pre] = np.where(ok, f_mean + z * f_sd, np.nan)

    # after the pre-period: simulated paths
    pred[n_pre:] = paths.mean(axis=1)
    lo[n_pre:] = np.quantile(paths, qlo, axis=1)
    hi[n_pre:] = np.quantile(paths, qhi, axis=1)

    cum = np.full(n, np.nan)
    cum_lo = np.full(n, np.nan)
    cum_hi = np.full(n, np.nan)
    cum[is_pre] = 0.0
    post_rows = np.flatnonzero(is_post)
    sim_post = paths[post_rows - n_pre]  # n_post x n_sims
    eff_paths = Y[post_rows, None] - sim_post
    cum_paths = np.cumsum(eff_paths, axis=0)
    cum[post_rows] = cum_paths.mean(axis=1)
    cum_lo[post_rows] = np.quantile(cum_paths, qlo, axis=1)
    cum_hi[post_rows] = np.quantile(cum_paths, qhi, axis=1)

    period = np.where(is_pre, "pre", np.where(is_post, "post", "gap"))
    series = pl.DataFrame(
        {
            "date": dates,
            "period": period,
            "actual": Y,
            "predicted": pred,
            "predicted_lo": lo,
            "predicted_hi": hi,
            "point_effect": Y - pred,
            "point_effect_lo": Y - hi,
            "point_effect_hi": Y - lo,
            "cum_effect": cum,
            "cum_effect_lo": cum_lo,
            "cum_effect_hi": cum_hi,
        }
    ).with_columns(pl.col(pl.Float64).fill_nan(None))

    # summary over the post-period from per-path sums
    n_post = len(post_rows)
    actual_sum = float(Y[post_rows].sum())
    sim_sums = sim_post.sum(axis=0)
    rows = []
    for name, scale in (("average", 1.0 / n_post), ("cumulative", 1.0)):
        a = actual_sum * scale
        s = sim_sums * scale
        p_mean = float(s.mean())
        p_lo, p_hi = (float(v) for v in np.quantile(s, [qlo, qhi]))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_paths = (a - s) / s
        rel_paths = rel_paths[np.isfinite(rel_paths)]
        r_lo, r_hi = (
            (float(v) for v in np.quantile(rel_paths, [qlo, qhi])) if rel_paths.size else (math.nan,) * 2
        )
        rows.append(
            {
                "row": name,
                "actual": a,
                "predicted": p_mean,
                "predicted_lo": p_lo,
                "predicted_hi": p_hi,
                "abs_effect": a - p_mean,
                "abs_effect_lo": a - p_hi,
                "abs_effect_hi": a - p_lo,
                "rel_effect": (a - p_mean) / p_mean if p_mean != 0 else math.nan,
                "rel_effect_lo": r_lo,
                "rel_effect_hi": r_hi,
            }
        )
    summary = pl.DataFrame(rows, schema={"row": pl.String, **dict.fromkeys(_SUMMARY_COLUMNS, pl.Float64)})

    # one-sided tail area in the direction of the effect, counting the observation itself
    if actual_sum >= sim_sums.mean():
        extreme = int((sim_sums >= actual_sum).sum())
    else:
        extreme = int((sim_sums <= actual_sum).sum())
    p_value = (extreme + 1) / (n_sims + 1)
    return series, summary, float(p_value)


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
