"""Experiment (not a harness benchmark: `run.py` only runs `bench_*.py`): interval rules for the demand forecast,
scored on identical rolling-origin errors (issue #17).

`bench_forecast.py` calls `forecast_demand` as report 02 does, which refits every backtest origin for every
evaluation origin. Here the combined model is fitted once per (series, training length) and its log
forecasts are cached (pickle under `$FORECAST_ORIGIN_CACHE`, default `<tmp>/cm-forecast-origins-<uid>`),
so that many interval rules can be compared on exactly the errors `forecast_demand` would see: for an
evaluation origin n, the errors at horizon h come from the last 12 origins with an outcome before n.

Series: the StatCan provinces, Washington and Colorado of `bench_forecast.py` (same origins), then as a
hold-out not used to choose the rule the StatCan census metropolitan areas with a gap-free series (same
origins) and Oregon (12 last origins), then simulations with a known truth (`--sims`, one evaluation
origin after 60 months, 12 outcomes): S1 seasonal naive on a seasonal series with i.i.d. normal noise,
S2 the same with Student-t(3) noise (heavy tails, the case issue #17 describes), S3 seasonal naive on
`bench_calibration.sim_sales` (random-walk level: serially dependent errors), S4 naive on a random walk,
S5 the combined model on `sim_sales` (`--sims-combined N` draws; slow).

Printed per rule and source: min-max and mean over horizons 1-12 of 80% and 95% coverage, and the mean
interval score (Gneiting & Raftery 2007, on log sales: width + 2/alpha x distance outside; lower is
better), which rewards narrow intervals and penalises misses, so it ranks rules by both levels at once.
Run: `cd benchmarks && PYTHONPATH=../src:. python study_forecast_intervals.py [--sims] [--sims-combined 80]`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import pickle
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import bench_forecast as BF
import numpy as np
from scipy import stats

H, W = 12, 12
LEVELS = (0.2, 0.05)


# ---------------------------------------------------------------------------------------------- data


def _cache_dir() -> Path:
    d = (
        os.environ.get("FORECAST_ORIGIN_CACHE")
        or Path(tempfile.gettempdir()) / f"cm-forecast-origins-{os.getuid()}"
    )
    Path(d).mkdir(parents=True, exist_ok=True)
    return Path(d)


def _seasonal(n: int) -> bool:
    return n - (2 * 12 + 4) - 3 + 1 >= 12  # forecast_demand's rule for horizon 12


def _fit_all(Y: np.ndarray, start: dt.date, outer: list[int], model: str, first: int | None = None) -> dict:
    """Log forecasts 1..H of `model` from every training length an evaluation origin's backtest uses."""
    # import statsmodels before silencing warnings: its modules install "always" filters on import
    import statsmodels.tsa.exponential_smoothing.ets  # noqa: F401
    import statsmodels.tsa.statespace.sarimax  # noqa: F401

    from cannabis_market.analysis.growth import demand as D
    from cannabis_market.analysis.growth._common import _blas_single_thread

    y, fc = np.log(Y), {}
    need = set()
    for n in outer:
        seas = _seasonal(n)
        lo = first if first is not None else (28 if seas else 8)
        need |= {(o, seas) for o in range(lo, n + 1)}
    with _blas_single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for o, seas in sorted(need):
            fc[(o, seas)] = D._forecast_all(y[:o], H, 12, seas, start, [model])[model]
    return fc


def _real_series(holdout: bool) -> dict[str, list[tuple[str, Any, Any]]]:
    import polars as pl

    out: dict[str, list] = {}
    if not holdout:
        for source, spec in BF.load_series().items():
            out[source] = [(name, f, spec["origins"]) for name, f in spec["series"].items()]
        return out
    from cannabis_market.data.adapters.oregon import read_oregon
    from cannabis_market.data.statcan import read_statcan

    real = BF._real_dir()
    if (real / BF.STATCAN).is_file():
        df, _ = read_statcan(real / BF.STATCAN)
        cmas = []
        for g in sorted(g for g in df["geo"].unique().to_list() if "," in g):
            s = (
                df.filter((pl.col("geo") == g) & (pl.col("metric") == "sales"))
                .sort("date")
                .drop_nulls("value")
            )
            d = s["date"].to_list()
            if all(
                (b.year * 12 + b.month) - (a.year * 12 + a.month) == 1 for a, b in zip(d, d[1:], strict=False)
            ):
                cmas.append((g, s.select(period="date", sales="value"), ("2022-12-01", "2024-08-01", None)))
        out["StatCan CMAs (hold-out)"] = cmas
    orf = real / "oregon_olcc_monthly_sales_prices_2016-2021.xlsx"
    if orf.is_file():
        od, _ = read_oregon(orf)
        s = od.filter(pl.col("metric") == "sales").sort("date").drop_nulls("value")
        out["Oregon (hold-out)"] = [("Oregon", s.select(period="date", sales="value"), None)]
    return out


def load(holdout: bool = False) -> dict[str, list[dict]]:
    """{source: [{Y, outer, fc, first}]} with the cached forecasts of the combined model."""
    path = _cache_dir() / ("holdout.pkl" if holdout else "bench.pkl")
    if path.is_file():
        return pickle.loads(path.read_bytes())
    out: dict[str, list[dict]] = {}
    for source, items in _real_series(holdout).items():
        for _name, frame, spec in items:
            periods = frame["period"].to_list()
            Y = frame["sales"].to_numpy().astype(float)
            outer = BF._origin_index(periods, spec)
            fc = _fit_all(Y, periods[0], outer, "combined")
            out.setdefault(source, []).append({"Y": Y, "outer": outer, "fc": fc, "first": None})
    path.write_bytes(pickle.dumps(out))
    return out


def sim_iid(seed: int, df: float | None, n: int = 72, sd: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    e = rng.normal(0, sd, n) if df is None else rng.standard_t(df, n) * sd / math.sqrt(df / (df - 2))
    return np.exp(np.log(5e7) + 0.12 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi)) + e)


def load_sims(combined_draws: int = 0, draws: int = 300) -> dict[str, list[dict]]:
    import bench_calibration as BC

    def sales(s: int, rw: bool = False) -> np.ndarray:
        df, fut = BC.sim_sales(s, random_walk=rw)
        return np.concatenate([df["sales"].to_numpy(), fut])

    gens = {
        "S1 snaive, iid normal noise": (lambda s: sim_iid(s, None), "snaive", 5000, draws),
        "S2 snaive, iid t(3) noise": (lambda s: sim_iid(s, 3.0), "snaive", 6000, draws),
        "S3 snaive, sim_sales": (lambda s: sales(s), "snaive", 7000, draws),
        "S4 naive, random walk": (lambda s: sales(s, True), "naive", 8000, draws),
        "S5 combined, sim_sales": (lambda s: sales(s), "combined", 9000, combined_draws),
    }
    out: dict[str, list[dict]] = {}
    for name, (gen, model, seed0, n_draws) in gens.items():
        if n_draws <= 0:
            continue
        path = _cache_dir() / f"sim-{name.split()[0]}-{n_draws}.pkl"
        if path.is_file():
            out[name] = pickle.loads(path.read_bytes())
            continue
        rows = []
        for s in range(seed0, seed0 + n_draws):
            Y = gen(s)
            rows.append(
                {"Y": Y, "outer": [60], "fc": _fit_all(Y, dt.date(2019, 1, 1), [60], model, 37), "first": 37}
            )
        path.write_bytes(pickle.dumps(rows))
        out[name] = rows
    return out


def errors(d: dict, n: int) -> list[np.ndarray]:
    """Per horizon h (0-based): rows (origin, log error) of every backtest origin with an outcome before n."""
    seas = _seasonal(n)
    first = d["first"] if d["first"] is not None else (28 if seas else 8)
    y = np.log(d["Y"])
    return [
        np.array([(o, y[o + h] - d["fc"][(o, seas)][h]) for o in range(first, n - h)]).reshape(-1, 2)
        for h in range(H)
    ]


# --------------------------------------------------------------------------------------------- rules


def _last(errs: list[np.ndarray], k: int = W) -> list[np.ndarray]:
    return [e[-k:, 1] for e in errs]


def _rms(e: np.ndarray) -> float:
    return math.sqrt(float(np.mean(e**2)))


def _conformal(x: np.ndarray, alpha: float) -> float:
    """The ceil((k + 1)(1 - alpha))-th smallest |x|; the largest when k is too small for the level."""
    x = np.sort(np.abs(x))
    r = math.ceil((x.size + 1) * (1 - alpha) - 1e-9)
    return float(x[min(r, x.size) - 1])


def rule_t(errs: list[np.ndarray], alpha: float, k: int = W, smooth: bool = False) -> np.ndarray:
    e = _last(errs, k)
    n = np.array([x.size for x in e], float)
    s = np.array([_rms(x) for x in e])
    if smooth:  # log RMS linear in log h
        lh = np.log(np.arange(1, H + 1))
        b, a = np.polyfit(lh, np.log(s), 1)
        s = np.exp(a + b * lh)
    return stats.t.ppf(1 - alpha / 2, n - 1) * s * np.sqrt(1 + 1 / n)


def rule_conformal_h(errs: list[np.ndarray], alpha: float, k: int = W) -> np.ndarray:
    return np.array([_conformal(x, alpha) for x in _last(errs, k)])


def rule_conformal_nb(errs: list[np.ndarray], alpha: float) -> np.ndarray:
    e = _last(errs)
    return np.array([_conformal(np.concatenate(e[max(h - 1, 0) : h + 2]), alpha) for h in range(H)])


def rule_pooled_insample(errs: list[np.ndarray], alpha: float) -> np.ndarray:
    e = _last(errs)
    s = np.array([_rms(x) for x in e])
    return _conformal(np.concatenate([x / s[h] for h, x in enumerate(e)]), alpha) * s


def _loo_scores(errs: list[np.ndarray], monotone: bool, month: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pooled scores |e| / scale without the scored error's origin (and outcome month); the scale."""
    from cannabis_market.analysis.growth import demand as D

    e = [x[-W:, 1] for x in errs]
    org = [x[-W:, 0] for x in errs]

    def scale(parts: list[np.ndarray]) -> np.ndarray:
        return D._scale(parts) if monotone else np.array([_rms(x) for x in parts])

    scores = []
    for h in range(H):
        for x, o in zip(e[h], org[h], strict=True):
            keep = [(g != o) & ((g + j != o + h) | (not month)) for j, g in enumerate(org)]
            s = scale([a[k] for a, k in zip(e, keep, strict=True)])
            scores.append(abs(x) / max(float(s[h]), 1e-12))
    return np.sort(scores), scale(e)


def rule_loo(errs: list[np.ndarray], alpha: float, monotone: bool = True, month: bool = True) -> np.ndarray:
    if monotone and month:  # the package's own rule
        from cannabis_market.analysis.growth import demand as D

        return D._calibrate([x[-W:, 1] for x in errs], [x[-W:, 0] for x in errs]).half_width(alpha)
    z, s = _loo_scores(errs, monotone, month)
    r = math.ceil((z.size + 1) * (1 - alpha) - 1e-9)
    return z[r - 1] * s if r <= z.size else rule_t(errs, alpha)


def rule_tfit(errs: list[np.ndarray], alpha: float) -> np.ndarray:
    z, s = _loo_scores(errs, True, True)
    df, _, sc = stats.t.fit(np.concatenate([z, -z]), floc=0)
    return stats.t.ppf(1 - alpha / 2, max(df, 2.1)) * sc * s


def rule_mad(errs: list[np.ndarray], alpha: float) -> np.ndarray:
    return stats.norm.ppf(1 - alpha / 2) * np.array([1.4826 * np.median(np.abs(x)) for x in _last(errs)])


RULES = {
    "A t x RMS(h) x sqrt(1+1/k), k=12 (before)": rule_t,
    "A3 same, RMS smoothed as a power of h": lambda e, a: rule_t(e, a, smooth=True),
    "B split-conformal per horizon, k=12 (95%: largest error)": rule_conformal_h,
    "C split-conformal per horizon, k=24": lambda e, a: rule_conformal_h(e, a, 24),
    "D split-conformal, horizons h-1..h+1 pooled": rule_conformal_nb,
    "E pooled |e|/RMS(h), in-sample scores": rule_pooled_insample,
    "F pooled |e|/RMS(h), leave-one-origin-out": lambda e, a: rule_loo(e, a, monotone=False, month=False),
    "F1 F with RMS made non-decreasing in h": lambda e, a: rule_loo(e, a, month=False),
    "F2 F1 leaving out the outcome month too (chosen)": rule_loo,
    "G t fitted to F2's scores": rule_tfit,
    "H normal x 1.4826 MAD(h)": rule_mad,
}


# ---------------------------------------------------------------------------------------------- score


def evaluate(rule: Any, data: dict[str, list[dict]]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for source, items in data.items():
        acc: dict[str, list[list[float]]] = {
            k: [[] for _ in range(H)] for k in ("c80", "c95", "is80", "is95", "mase")
        }
        for d in items:
            Y = d["Y"]
            for n in d["outer"]:
                errs = errors(d, n)
                f = d["fc"][(n, _seasonal(n))]
                scale = float(np.mean(np.abs(Y[12:n] - Y[: n - 12])))
                m = min(H, Y.size - n)
                for alpha in LEVELS:
                    lvl = round(100 * (1 - alpha))
                    hw = rule(errs, alpha)
                    for h in range(m):
                        yy, lo, hi = math.log(Y[n + h]), f[h] - hw[h], f[h] + hw[h]
                        acc[f"c{lvl}"][h].append(lo <= yy <= hi)
                        acc[f"is{lvl}"][h].append(hi - lo + 2 / alpha * (max(lo - yy, 0) + max(yy - hi, 0)))
                for h in range(m):
                    acc["mase"][h].append(abs(Y[n + h] - math.exp(f[h])) / scale)
        out[source] = {k: np.array([np.mean(x) for x in v]) for k, v in acc.items()}
    return out


def _line(source: str, r: dict[str, np.ndarray]) -> str:
    c80, c95 = r["c80"], r["c95"]
    return (
        f"  {source:28s} 80% {c80.min():.3f}-{c80.max():.3f} (mean {c80.mean():.3f})  "
        f"95% {c95.min():.3f}-{c95.max():.3f} (mean {c95.mean():.3f})  "
        f"IS {r['is80'].mean():.4f} / {r['is95'].mean():.4f}"
    )


def main(argv: list[str]) -> None:
    data = load()
    data |= load(holdout=True)
    if "--sims" in argv or "--sims-combined" in argv:
        n5 = int(argv[argv.index("--sims-combined") + 1]) if "--sims-combined" in argv else 0
        data |= load_sims(n5)
    for name, rule in RULES.items():
        r = evaluate(rule, data)
        sc = r.get("StatCan provinces")
        mase = (
            ("  MASE h1/3/6/12 " + " / ".join(f"{sc['mase'][h - 1]:.3f}" for h in (1, 3, 6, 12)))
            if sc
            else ""
        )
        print(name + mase)
        for source, v in r.items():
            print(_line(source, v))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
