"""What every estimator returns: one `Estimate` type and one check of the interval level `alpha`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cannabis_market.errors import InputError

NAN = float("nan")


def check_alpha(alpha: Any, where: str | None = None) -> float:
    """`alpha` as a float in (0, 1) (0.05 for 95% intervals); InputError naming `where` otherwise."""
    ok = isinstance(alpha, int | float) and not isinstance(alpha, bool) and 0 < alpha < 1
    if not ok:
        prefix = f"{where}: " if where else ""
        raise InputError(f"{prefix}alpha must be in (0, 1) (e.g. 0.05 for 95% intervals), got {alpha!r}")
    return float(alpha)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error, interval (level 1 - alpha) and two-sided p-value.

    `se` and `p_value` are NaN where an estimator gives only an interval (e.g. a bootstrap)."""

    estimate: float
    se: float = NAN
    lo: float = NAN
    hi: float = NAN
    p_value: float = NAN

    @property
    def point(self) -> float:
        """The point estimate (alias of `estimate`)."""
        return self.estimate

    def covers(self, value: float) -> bool:
        """Whether `value` lies inside the interval."""
        return self.lo <= value <= self.hi

    def as_pct(self) -> Estimate:
        """The same effect on a log scale expressed as a percentage change: exp(x) - 1."""
        return Estimate(
            math.expm1(self.estimate), NAN, math.expm1(self.lo), math.expm1(self.hi), self.p_value
        )

    def scaled(self, k: float) -> Estimate:
        """The estimate times `k` (k > 0), e.g. a per-month slope as a per-year one."""
        return Estimate(k * self.estimate, k * self.se, k * self.lo, k * self.hi, self.p_value)

    @classmethod
    def from_fit(cls, fit: Any, name: str) -> Estimate:
        """Coefficient `name` of a fitted `inference.FEResult` (its interval and p-value)."""
        lo, hi = fit.ci(name)
        return cls(float(fit.coef[name]), float(fit.se[name]), float(lo), float(hi), float(fit.pvalue(name)))

    def row(self, **labels: Any) -> dict[str, Any]:
        """A summary-table row: the `labels` first, then estimate, std_error, lo, hi, p_value."""
        vals = {"estimate": self.estimate, "std_error": self.se, "lo": self.lo, "hi": self.hi}
        return {**labels, **vals, "p_value": self.p_value}
