"""In-time placebo: the same model re-estimated at fake intervention dates inside the pre-period.

Nothing happened at those dates, so their estimated effects show what size of "effect" the model
produces from noise and misfit alone. The share of placebo effects at least as large (in absolute
relative terms) as the real one is a distribution-free check beside the model's tail-area probability:
it does not rely on the model's intervals being right. Placebo windows have the real post-period's
length, start after at least half of the pre-period (and the model's minimum length), and end before
the real pre-period ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from cannabis_market.analysis.impact import regression
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_pct

if TYPE_CHECKING:
    from cannabis_market.analysis.impact.result import ImpactResult


@dataclass(frozen=True)
class PlaceboResult:
    """Placebo estimates (``table``: fake_start, rel_effect, rel_effect_lo/hi, significant) and the real one."""

    real_rel_effect: float
    table: pl.DataFrame
    alpha: float

    @property
    def n(self) -> int:
        """Number of placebo dates that could be estimated."""
        return self.table.height

    @property
    def n_as_large(self) -> int:
        """Placebo effects at least as large in absolute value as the real relative effect."""
        return int((self.table["rel_effect"].abs() >= abs(self.real_rel_effect)).sum()) if self.n else 0

    @property
    def share_as_large(self) -> float:
        """Share of placebo effects at least as large as the real one (NaN without placebos)."""
        return self.n_as_large / self.n if self.n else math.nan

    @property
    def p_value(self) -> float:
        """Rank p-value, counting the real estimate among the placebos: (as large + 1) / (n + 1)."""
        return (self.n_as_large + 1) / (self.n + 1)

    @property
    def false_positive_rate(self) -> float:
        """Share of placebo dates where the model called an effect significant (nominal: alpha)."""
        return float(self.table["significant"].mean()) if self.n else math.nan

    def summary(self) -> pl.DataFrame:
        """One row: n_placebos, share_as_large, rank p_value, false_positive_rate, real_rel_effect."""
        return pl.DataFrame(
            {
                "n_placebos": [self.n],
                "share_as_large": [self.share_as_large],
                "p_value": [self.p_value],
                "false_positive_rate": [self.false_positive_rate],
                "real_rel_effect": [self.real_rel_effect],
            }
        )

    def report(self) -> str:
        """A short plain-language paragraph for the outage report."""
        if self.n == 0:
            return (
                "In-time placebo: the pre-period is too short to re-estimate the model at earlier, fake "
                "intervention dates, so this check could not be made."
            )
        first, last = self.table["fake_start"][0], self.table["fake_start"][-1]
        real = fmt_pct(self.real_rel_effect, signed=True)
        text = (
            f"In-time placebo: re-estimated at {self.n} fake intervention dates inside the pre-period "
            f"({first} to {last}), when nothing happened, the model found a relative effect at least as "
            f"large as the real one ({real}) {self.n_as_large} time(s) "
            f"({fmt_pct(self.share_as_large)}), and called {int(self.table['significant'].sum())} of them "
            f"significant at {100 * self.alpha:g}%."
        )
        if self.n < 10:
            text += " With so few placebo dates this is a rough check only."
        if self.share_as_large <= self.alpha:
            text += " The real effect stands out from what the model produces when nothing happens."
        else:
            text += (
                " Effects of this size also appear without any intervention, so the estimate should be "
                "read with that much caution."
            )
        return text


def in_time_placebo(result: ImpactResult, n_dates: int = 20, n_sims: int = 300) -> PlaceboResult:
    """Re-estimate ``result``'s model at up to ``n_dates`` fake dates inside its pre-period."""
    from cannabis_market.analysis.impact.estimate import estimate_impact

    if isinstance(n_dates, bool) or not isinstance(n_dates, int) or n_dates < 1:
        raise InputError(f"n_dates must be a positive integer, got {n_dates!r}")
    inp = result._inputs
    real = result.summary().filter(pl.col("row") == "average")["rel_effect"][0]
    pre_dates = result.series.filter(pl.col("period") == "pre")["date"]
    n_pre = pre_dates.len()
    n_post = result.series.filter(pl.col("period") == "post").height
    first_ok = max(regression.min_points(len(inp["controls"])), math.ceil(n_pre / 2))
    last_ok = n_pre - n_post
    starts = (
        sorted(set(int(v) for v in np.linspace(first_ok, last_ok, n_dates).round()))
        if last_ok >= first_ok
        else []
    )
    rows = []
    for i in starts:
        try:
            r = estimate_impact(
                inp["frame"],
                inp["y"],
                (pre_dates[0], pre_dates[i - 1]),
                (pre_dates[i], pre_dates[i + n_post - 1]),
                controls=inp["controls"],
                date_col=inp["date_col"],
                alpha=result.alpha,
                seasonality=inp["seasonality"],
                prior_level_sd=inp["prior_level_sd"],
                n_sims=n_sims,
                seed=result.seed + i,
                param_uncertainty=inp["param_uncertainty"],
                model=inp["model"],
            )
        except InputError:
            continue  # this window is too short for the model: skip the date
        avg = r.summary().filter(pl.col("row") == "average").row(0, named=True)
        rows.append(
            {
                "fake_start": pre_dates[i],
                "rel_effect": avg["rel_effect"],
                "rel_effect_lo": avg["rel_effect_lo"],
                "rel_effect_hi": avg["rel_effect_hi"],
                "significant": r.significant,
            }
        )
    schema = {
        "fake_start": pre_dates.dtype,
        "rel_effect": pl.Float64,
        "rel_effect_lo": pl.Float64,
        "rel_effect_hi": pl.Float64,
        "significant": pl.Boolean,
    }
    return PlaceboResult(float(real), pl.DataFrame(rows, schema=schema), result.alpha)
