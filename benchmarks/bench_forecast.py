"""Benchmark: demand-forecast accuracy and interval coverage at rolling origins on real monthly series.

Series: Statistics Canada 20-10-0056 cannabis retail sales (Canada + the nine provinces with a gap-free
series), rolling origins 2022-12..2024-08 (last month of training data), and the Washington and
Colorado market totals (the 12 last origins that leave 12 months to check). From each origin every
method forecasts 1..12 months; we record, per horizon, the share of outcomes inside the 80% and 95%
intervals and MASE (absolute error / mean absolute seasonal difference of the training data).

Methods: ours (`forecast_demand(train, horizon=12)`, exactly as report 02 calls it, with 80% intervals
from `at_level(0.2)`), ours before issue #17 (the function at commit 78e5158, when git can show it;
`FORECAST_BEFORE=0` leaves it out, halving the run time),
seasonal naive and naive (normal intervals from in-sample differences), and statsforecast AutoETS /
AutoARIMA (season length 12) when a Python with statsforecast is found: `$STATSFORECAST_PYTHON`, else
`.venv-bench/bin/python` in the repository. statsforecast 2.1.1 requires pandas < 3 while the project
runs pandas 3, so it lives in its own environment (`python3.11 -m venv .venv-bench &&
.venv-bench/bin/pip install statsforecast==2.1.1`) and never in the project's.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from _common import REPO, comparison

SHARED_REAL = REPO.parent / "shared" / "data" / "real"
# the source copies beside the checkout when present, else the snapshot committed in data/public (offline)
REAL = (
    SHARED_REAL
    if (SHARED_REAL / "statcan_20100056_cannabis_retailers_monthly_by_province.csv").is_file()
    else REPO / "data" / "public"
)
STATCAN = "statcan_20100056_cannabis_retailers_monthly_by_province.csv"
WA = "washington_lcb_retail_sales_by_license_monthly_2017-2021.xlsx"
CO = "colorado_monthly_revenue_2014-2021.xlsx"
GEOS = (
    "Canada",
    "Alberta",
    "British Columbia",
    "Manitoba",
    "New Brunswick",
    "Newfoundland and Labrador",
    "Nova Scotia",
    "Ontario",
    "Quebec",
    "Saskatchewan",
)
H = 12
HS = (1, 3, 6, 12)
BEFORE_COMMIT = "78e5158"
# Issue #17's measurement of the function before the change (StatCan, same origins): MASE at h1/h3/h6.
TODAY_MASE = {1: 0.26, 3: 0.34, 6: 0.42}


def _real_dir() -> Path:
    return Path(os.environ.get("CANNABIS_REAL_DATA", REAL))


def load_series(quick: bool = False) -> dict[str, dict[str, Any]]:
    """{source: {name: (periods, sales), origins: [...]}} for the sources whose files exist."""
    import polars as pl

    from cannabis_market.analysis.growth import market_sales
    from cannabis_market.data.statcan import read_statcan

    out: dict[str, dict[str, Any]] = {}
    real = _real_dir()
    if (real / STATCAN).is_file():
        df, _ = read_statcan(real / STATCAN)
        geos = GEOS[:1] if quick else GEOS
        series = {}
        for g in geos:
            s = df.filter((pl.col("geo") == g) & (pl.col("metric") == "sales")).sort("date")
            series[g] = s.select(period="date", sales="value")
        last = [dt.date(2024, 8, 1)] if quick else None
        out["StatCan provinces"] = {"series": series, "origins": ("2022-12-01", "2024-08-01", last)}
    if not quick and (real / WA).is_file():
        from cannabis_market.data.adapters.washington import read_washington

        tables, _ = read_washington(real / WA)
        out["Washington"] = {"series": {"Washington": market_sales(tables["sales"])}, "origins": None}
    if not quick and (real / CO).is_file():
        from cannabis_market.data.adapters.colorado import read_monthly_revenue

        df, _ = read_monthly_revenue(real / CO)
        s = df.filter(pl.col("metric") == "sales").sort("date").select(period="date", sales="value")
        out["Colorado"] = {"series": {"Colorado": s}, "origins": None}
    return out


def _origin_index(periods: list[dt.date], spec: Any) -> list[int]:
    """Training lengths o (train = first o months) for the origin spec of a source."""
    n = len(periods)
    if spec is None:  # the 12 last origins that leave H months to check
        return list(range(n - H - 11, n - H + 1))
    first, last, only = spec
    days = [dt.date.fromisoformat(first), dt.date.fromisoformat(last)]
    keep = only or [p for p in periods if days[0] <= p <= days[1]]
    return [periods.index(p) + 1 for p in keep]


def _naive_intervals(train: Any, lag: int) -> dict[str, Any]:
    """(Seasonal) naive forecast on the level with normal intervals from in-sample differences."""
    import numpy as np
    from scipy import stats

    y = np.asarray(train, float)
    steps = np.arange(H)
    mean = y[y.size - lag + (steps % lag)] if lag > 1 else np.full(H, y[-1])
    sd = float(np.std(y[lag:] - y[:-lag], ddof=1))
    k = steps // lag + 1 if lag > 1 else steps + 1
    out = {"mean": mean}
    for lvl in (80, 95):
        half = stats.norm.ppf(0.5 + lvl / 200) * sd * np.sqrt(k)
        out[f"lo{lvl}"], out[f"hi{lvl}"] = mean - half, mean + half
    return out


def _ours(train: Any) -> dict[str, Any]:
    from cannabis_market.analysis.growth import forecast_demand

    res = forecast_demand(train, horizon=H, alpha=0.05)
    s95, s80 = res.summary(), res.at_level(0.2)
    return {
        "mean": s95["forecast"].to_numpy(),
        "lo95": s95["lo"].to_numpy(),
        "hi95": s95["hi"].to_numpy(),
        "lo80": s80["lo"].to_numpy(),
        "hi80": s80["hi"].to_numpy(),
        "model": res.chosen_model,
    }


def _before_module() -> Any | None:
    """The growth module as it was before issue #17, loaded from git (None when git cannot show it)."""
    try:
        text = subprocess.run(
            ["git", "show", f"{BEFORE_COMMIT}:src/cannabis_market/analysis/growth.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp(prefix="cm-before-")) / "growth_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("growth_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _before(mod: Any) -> Any:
    def run(train: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for alpha, lvl in ((0.05, 95), (0.2, 80)):
            s = mod.forecast_demand(train, horizon=H, alpha=alpha).summary()
            out["mean"], out[f"lo{lvl}"], out[f"hi{lvl}"] = (
                s[c].to_numpy() for c in ("forecast", "lo", "hi")
            )
        return out

    return run


def _statsforecast_python() -> str | None:
    for cand in (os.environ.get("STATSFORECAST_PYTHON"), str(REPO / ".venv-bench" / "bin" / "python")):
        if cand and Path(cand).is_file():
            return cand
    return None


_SF_SCRIPT = """
import json, sys, warnings
import numpy as np
from statsforecast.models import AutoARIMA, AutoETS
warnings.simplefilter("ignore")
jobs = json.load(open(sys.argv[1]))
out = []
for y in jobs["series"]:
    row = {}
    for name, mk in (("AutoETS", lambda: AutoETS(season_length=12)), ("AutoARIMA", lambda: AutoARIMA(season_length=12))):
        try:
            f = mk().forecast(y=np.asarray(y, float), h=jobs["h"], level=[80, 95])
            row[name] = {k: np.asarray(f[k], float).tolist() for k in ("mean", "lo-80", "hi-80", "lo-95", "hi-95")}
        except Exception as e:
            row[name] = {"error": str(e)}
    out.append(row)
json.dump(out, open(sys.argv[2], "w"))
"""


def _statsforecast(trains: list[list[float]], python: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="cm-sf-") as td:
        src, dst, script = Path(td, "in.json"), Path(td, "out.json"), Path(td, "sf.py")
        src.write_text(json.dumps({"series": trains, "h": H}))
        script.write_text(_SF_SCRIPT)
        subprocess.run([python, str(script), str(src), str(dst)], check=True, capture_output=True)
        return json.loads(dst.read_text())


def evaluate(quick: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (source, method, horizon, n, coverage80, coverage95, mase, width95) and notes."""
    import numpy as np

    notes: list[str] = []
    methods: dict[str, Any] = {
        "ours": _ours,
        "seasonal naive": lambda tr: _naive_intervals(tr["sales"].to_numpy(), 12),
        "naive": lambda tr: _naive_intervals(tr["sales"].to_numpy(), 1),
    }
    if not quick and os.environ.get("FORECAST_BEFORE", "1") != "0":
        mod = _before_module()
        if mod is None:
            notes.append(
                f"The pre-#17 function could not be loaded from git ({BEFORE_COMMIT}); no 'before' rows."
            )
        else:
            methods["ours before #17"] = _before(mod)
    sf_python = None if quick else _statsforecast_python()
    if not quick and sf_python is None:
        notes.append(
            "statsforecast rows left out: set STATSFORECAST_PYTHON or create .venv-bench (see module doc)."
        )
    rows: list[dict[str, Any]] = []
    for source, spec in load_series(quick).items():
        acc: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
        models_used: dict[str, int] = {}
        sf_jobs: list[tuple[np.ndarray, np.ndarray, float]] = []
        sf_trains: list[list[float]] = []
        for _name, frame in spec["series"].items():
            periods = frame["period"].to_list()
            Y = frame["sales"].to_numpy().astype(float)
            for o in _origin_index(periods, spec["origins"]):
                train, actual = frame.head(o), Y[o : o + H]
                scale = float(np.mean(np.abs(Y[12:o] - Y[: o - 12])))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for meth, fn in methods.items():
                        f = fn(train)
                        if "model" in f:
                            models_used[f["model"]] = models_used.get(f["model"], 0) + 1
                        _score(acc, meth, f, actual, scale)
                if sf_python:
                    sf_trains.append(Y[:o].tolist())
                    sf_jobs.append((actual, scale))
        if sf_python and sf_trains:
            for res, (actual, scale) in zip(_statsforecast(sf_trains, sf_python), sf_jobs, strict=True):
                for name, f in res.items():
                    if "error" in f:
                        continue
                    g = {
                        "mean": f["mean"],
                        "lo80": f["lo-80"],
                        "hi80": f["hi-80"],
                        "lo95": f["lo-95"],
                        "hi95": f["hi-95"],
                    }
                    _score(acc, f"statsforecast {name}", g, actual, scale)
        for (meth, h), v in sorted(acc.items()):
            a = np.asarray(v)
            rows.append(
                {
                    "source": source,
                    "method": meth,
                    "horizon": h,
                    "n": int(a.shape[0]),
                    "coverage80": float(a[:, 0].mean()),
                    "coverage95": float(a[:, 1].mean()),
                    "mase": float(a[:, 2].mean()),
                    "width95": float(np.median(a[:, 3])),
                }
            )
        if models_used:
            notes.append(
                f"{source}: model used by ours: " + ", ".join(f"{k} {v}x" for k, v in models_used.items())
            )
    return rows, notes


def _score(acc: dict, meth: str, f: dict[str, Any], actual: Any, scale: float) -> None:
    import numpy as np

    for h in range(1, min(len(f["mean"]), len(actual)) + 1):
        a, m = float(actual[h - 1]), float(f["mean"][h - 1])
        c80 = float(f["lo80"][h - 1]) <= a <= float(f["hi80"][h - 1])
        c95 = float(f["lo95"][h - 1]) <= a <= float(f["hi95"][h - 1])
        width = (float(f["hi95"][h - 1]) - float(f["lo95"][h - 1])) / m if m else math.nan
        if np.isfinite(m):
            acc.setdefault((meth, h), []).append((c80, c95, abs(a - m) / scale, width))


def run(quick: bool = False) -> dict[str, Any]:
    rows, notes = evaluate(quick)
    by = {(r["source"], r["method"], r["horizon"]): r for r in rows}
    comps = []
    sc = "StatCan provinces"
    ours = [r for r in rows if r["source"] == sc and r["method"] == "ours"]
    if ours and not quick:
        for lvl, lo, hi in ((95, 0.88, 0.98), (80, 0.72, 0.88)):
            cov = [r[f"coverage{lvl}"] for r in ours]
            for label, v in (("lowest", min(cov)), ("highest", max(cov))):
                comps.append(
                    comparison(
                        f"StatCan {lvl}% coverage, {label} over horizons 1-12",
                        v,
                        lvl / 100,
                        round(v / (lvl / 100), 3),
                        f"coverage in {lo}-{hi}",
                        lo <= v <= hi,
                        baseline_label="nominal",
                    )
                )
        m12, s12 = by[(sc, "ours", 12)]["mase"], by[(sc, "seasonal naive", 12)]["mase"]
        comps.append(
            comparison(
                "StatCan 12-month MASE vs seasonal naive", m12, s12, round(m12 / s12, 3), "<= 1", m12 <= s12
            )
        )
        for h, today in TODAY_MASE.items():
            m = by[(sc, "ours", h)]["mase"]
            comps.append(
                comparison(
                    f"StatCan {h}-month MASE vs before #17",
                    m,
                    today,
                    round(m / today, 3),
                    "<= 1 (+0.005)",
                    m <= today + 0.005,
                    baseline_label="issue #17",
                )
            )
    tables = []
    for source in dict.fromkeys(r["source"] for r in rows):
        methods = list(dict.fromkeys(r["method"] for r in rows if r["source"] == source))
        table_rows = []
        for meth in methods:
            for h in HS:
                r = by.get((source, meth, h))
                if r:
                    table_rows.append(
                        [meth, h, r["n"], r["coverage80"], r["coverage95"], r["mase"], r["width95"]]
                    )
        tables.append(
            {
                "title": f"Forecasts at rolling origins: {source}",
                "columns": [
                    "method",
                    "months ahead",
                    "forecasts",
                    "80% coverage",
                    "95% coverage",
                    "MASE",
                    "95% width / forecast (median)",
                ],
                "rows": table_rows,
            }
        )
    figures = {
        f"{r['source']} {r['method']} h{r['horizon']} {k}": round(r[k], 4)
        for r in rows
        if r["horizon"] in HS
        for k in ("coverage80", "coverage95", "mase")
    }
    return {
        "title": "Demand forecast: rolling-origin accuracy and interval coverage (issue #17)",
        "figures": figures if quick else {},
        "comparisons": comps,
        "tables": tables,
        "notes": notes
        + [
            "Coverage: share of outcomes inside the interval over all series and origins; target 0.80 / 0.95.",
            "MASE divides each absolute error by the mean absolute 12-month difference of that origin's training data.",
        ],
    }


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    res = run(quick="--quick" in sys.argv)
    out = Path(sys.argv[sys.argv.index("--json") + 1]) if "--json" in sys.argv else None
    text = json.dumps(res, indent=1, default=str)
    if out:
        out.write_text(text)
    print(text[:20000])
