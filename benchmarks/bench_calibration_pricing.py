"""Calibration of the pricing intervals (#17): simulations with known truth at a nominal 95%.

For each interval the pricing report publishes — the annual price trend, the own-price elasticity and
the local-competition effect — data are simulated many times from a model whose true value is known,
the estimator is run exactly as the report runs it, and the share of intervals that cover the truth is
counted. A calibrated 95% interval covers 90–98% of the time over 100 or more draws.

- trend: 60 monthly prices on a log-linear path (-6.5% a year) with AR(1) noise (phi 0.6), the
  situation in which plain Newey-West intervals under-cover; `price_trend(breaks=False)`.
- elasticity: 80 stores x 24 months, store quality raises both price and volume (so pooled OLS is
  biased), exogenous within-store price shocks, true elasticity -1.2; `price_elasticity`.
- competition: 24 municipalities (as in the default dataset) with staggered store openings, a
  municipality x month demand shock that hits every store of a municipality (errors correlated within
  municipality), true effect -0.16 per log(1 + competitors); `competition_price_effect` (CRV3 with 24
  clusters; CRV1 is reported next to it for comparison).
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

TRUTH = {"trend": -0.065, "elasticity": -1.2, "competition": -0.16}
LEVEL = 0.95
BAND = (0.90, 0.98)


def _months(n: int) -> pl.Series:
    return pl.date_range(dt.date(2019, 1, 1), dt.date(2019 + n // 12 + 1, 12, 1), "1mo", eager=True)[:n]


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    u = np.empty(n)
    u[0] = rng.normal(0, sd)
    for i in range(1, n):
        u[i] = phi * u[i - 1] + rng.normal(0, sd * math.sqrt(1 - phi**2))
    return u


def sim_trend(rng: np.random.Generator, n: int = 60) -> pl.DataFrame:
    b = math.log1p(TRUTH["trend"]) / 12
    y = math.log(11.0) + b * np.arange(n) + _ar1(rng, n, 0.6, 0.03)
    return pl.DataFrame({"period": _months(n), "price_per_g": np.exp(y)})


def sim_elasticity(rng: np.random.Generator, n_stores: int = 80, n_t: int = 24) -> pl.DataFrame:
    s = np.repeat(np.arange(n_stores), n_t)
    t = np.tile(np.arange(n_t), n_stores)
    quality = rng.normal(0, 0.4, n_stores)
    shock = np.concatenate([_ar1(rng, n_t, 0.5, 0.08) for _ in range(n_stores)])
    log_p = math.log(10) + 0.5 * quality[s] + rng.normal(0, 0.03, n_t)[t] + shock
    log_q = 8 + 1.2 * quality[s] + rng.normal(0, 0.05, n_t)[t] + TRUTH["elasticity"] * log_p
    grams = np.exp(log_q + rng.normal(0, 0.1, s.size))
    return pl.DataFrame(
        {
            "period": _months(n_t).gather(t),
            "store_id": s.astype(str),
            "revenue": np.exp(log_p) * grams,
            "grams": grams,
        }
    )


def sim_competition(rng: np.random.Generator, n_munis: int = 24, n_t: int = 36) -> pl.DataFrame:
    rows = []
    for m in range(n_munis):
        for _ in range(int(rng.integers(2, 8))):
            rows.append(
                (len(rows), m, 0 if rng.random() < 0.3 else int(rng.integers(1, n_t - 3)), rng.normal(0, 0.1))
            )
    st = pl.DataFrame(rows, schema=["sid", "muni", "open", "level"], orient="row")
    g = st.join(pl.DataFrame({"t": np.arange(n_t)}), how="cross").filter(pl.col("t") >= pl.col("open"))
    g = g.with_columns(competitors=(pl.len().over("muni", "t") - 1).cast(pl.Float64))
    muni_shock = rng.normal(0, 0.02, (n_munis, n_t))[g["muni"].to_numpy(), g["t"].to_numpy()]
    log_p = (
        math.log(11)
        + g["level"].to_numpy()
        - 0.005 * g["t"].to_numpy()
        + TRUTH["competition"] * np.log1p(g["competitors"].to_numpy())
        + muni_shock
        + rng.normal(0, 0.02, g.height)
    )
    grams = np.exp(rng.normal(8, 0.3, g.height))
    return pl.DataFrame(
        {
            "period": _months(n_t).gather(g["t"]),
            "store_id": g["sid"].cast(pl.String),
            "municipality": g["muni"].cast(pl.String),
            "competitors": g["competitors"],
            "revenue": np.exp(log_p) * grams,
            "grams": grams,
        }
    )


def _estimators() -> dict[str, Callable[[np.random.Generator], tuple[float, float, float]]]:
    from cannabis_market.analysis import pricing as P

    def trend(rng):
        a = P.price_trend(sim_trend(rng), alpha=1 - LEVEL, breaks=False).annual
        return a.estimate, a.lo, a.hi

    def elasticity(rng):
        e = P.price_elasticity(sim_elasticity(rng), alpha=1 - LEVEL).fixed_effects
        return e.estimate, e.lo, e.hi

    def competition(rng, vcov=None):
        e = P.competition_price_effect(sim_competition(rng), alpha=1 - LEVEL, vcov=vcov).log1p_competitors
        return e.estimate, e.lo, e.hi

    return {
        "trend": trend,
        "elasticity": elasticity,
        "competition": competition,
        "competition_crv1": lambda rng: competition(rng, "CRV1"),
    }


def coverage(kind: str, draws: int = 100, seed: int = 0) -> dict[str, float]:
    """Share of `draws` nominal-95% intervals of estimator `kind` that cover the truth, with the mean
    estimate and mean interval width."""
    fit = _estimators()[kind]
    truth = TRUTH[kind.removesuffix("_crv1")]
    rng = np.random.default_rng(seed)
    est, hit, width = [], 0, []
    for _ in range(draws):
        b, lo, hi = fit(rng)
        est.append(b)
        hit += lo <= truth <= hi
        width.append(hi - lo)
    return {
        "kind": kind,
        "truth": truth,
        "draws": draws,
        "coverage": hit / draws,
        "mean_estimate": float(np.mean(est)),
        "mean_width": float(np.mean(width)),
    }


def run(quick: bool = False) -> dict:
    from _common import comparison

    draws = 20 if quick else 200
    rows, comps, figures = [], [], {}
    for kind in ("trend", "elasticity", "competition", "competition_crv1"):
        t0 = time.perf_counter()
        c = coverage(kind, draws, seed=17)
        secs = time.perf_counter() - t0
        rows.append(
            [
                kind,
                c["truth"],
                round(c["mean_estimate"], 4),
                round(c["mean_width"], 4),
                c["coverage"],
                draws,
                round(secs, 1),
            ]
        )
        figures[f"coverage {kind}"] = c["coverage"]
        if not kind.endswith("_crv1"):
            ok = BAND[0] <= c["coverage"] <= BAND[1]
            comps.append(
                comparison(
                    f"95% coverage, {kind} ({draws} draws)",
                    c["coverage"],
                    LEVEL,
                    round(c["coverage"] / LEVEL, 3),
                    "0.90-0.98",
                    ok,
                    "",
                    "nominal",
                )
            )
    return {
        "title": "Calibration of pricing intervals (nominal 95%)",
        "figures": figures,
        "comparisons": comps,
        "tables": [
            {
                "title": "Coverage of nominal 95% intervals on simulations with known truth",
                "columns": [
                    "estimator",
                    "truth",
                    "mean estimate",
                    "mean width",
                    "coverage",
                    "draws",
                    "seconds",
                ],
                "rows": rows,
            }
        ],
        "notes": [
            "competition_crv1 is the same fit with CRV1 (ordinary cluster-robust) errors instead of CRV3, for "
            "comparison; the report uses CRV3 when there are fewer than 50 municipalities."
        ],
    }


if __name__ == "__main__":
    for kind in ("trend", "elasticity", "competition", "competition_crv1"):
        print(coverage(kind, int(sys.argv[1]) if len(sys.argv) > 1 else 100, seed=17))
