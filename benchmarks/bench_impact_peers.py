"""Benchmark: our impact model against bsts-causalimpact on five simulated cases, plus the StatCan case.

Cases (``cannabis_market.analysis.impact.cases``, known truth): clean daily, placebo (no effect),
monthly (44 pre + 1-3 post months, 6 noisy seasonal controls, -4%), daily AR(1) noise (phi 0.6, -8%),
misleading control (a pre-period level shift in one control, -10%); 200 seeds each (2 with --quick):
with AR(1) noise both models sit at the noise floor and the median error of 30-60 seeds flips between
them from one seed range to the next.
Both models see the same frame, periods and seed; both report the relative effect of the post-period
average with a 95% interval. bsts-causalimpact (the `bench` extra, never a runtime dependency) runs with
its defaults (local level, spike-and-slab, 1,000 iterations after 500 warm-up).

Per case and model: coverage of the true relative effect by the 95% interval, median absolute error
(percentage points), median interval width, detection rate (interval excludes zero and p < 0.05; on the
placebo case this is the false-positive rate), median time per fit. Speed: median fit on the clean case
(194 daily points, 3 controls), first fit in a fresh process, 50,000 rows with 2 controls. Real data:
Ontario against 7 other provinces, pre-period 2020-10..2022-07, post-period 2022-08 (the outage month).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, comparison, median

N_SEEDS = 200
QUICK_SEEDS = 2
STATCAN_CSV = REPO.parent / "shared/data/real/statcan_20100056_cannabis_retailers_monthly_by_province.csv"
PROVINCES = [
    "Alberta",
    "British Columbia",
    "Manitoba",
    "New Brunswick",
    "Nova Scotia",
    "Quebec",
    "Saskatchewan",
]


def _ours(case, seed: int) -> dict:
    import polars as pl

    from cannabis_market.analysis.impact import estimate_impact

    t = time.perf_counter()
    r = estimate_impact(case.frame, "y", case.pre_period, case.post_period, controls=case.controls, seed=seed)
    secs = time.perf_counter() - t
    a = r.summary().filter(pl.col("row") == "average").row(0, named=True)
    return {
        "rel": a["rel_effect"],
        "lo": a["rel_effect_lo"],
        "hi": a["rel_effect_hi"],
        "sig": r.significant,
        "secs": secs,
        "model": r.model,
    }


def _bsts(case, seed: int) -> dict | None:
    try:
        from causal_impact import CausalImpact
    except ImportError:
        return None
    frame = case.frame.drop("date").to_pandas()
    n_pre = case.frame.filter(case.frame["date"] <= case.pre_period[1]).height
    t = time.perf_counter()
    ci = CausalImpact(frame, [0, n_pre - 1], [n_pre, case.frame.height - 1], model_args={"seed": seed})
    secs = time.perf_counter() - t
    res = ci._results  # the relative-effect interval is only exposed on the results object
    lo, hi = res.relative_effect_lower, res.relative_effect_upper
    return {
        "rel": res.relative_effect_mean,
        "lo": lo,
        "hi": hi,
        "sig": (lo > 0 or hi < 0) and res.p_value < 0.05,
        "secs": secs,
        "model": "bsts",
    }


def _aggregate(runs: list[dict], effect: float) -> dict:
    return {
        "coverage": sum(r["lo"] <= effect <= r["hi"] for r in runs) / len(runs),
        "median_error_pp": 100 * median([abs(r["rel"] - effect) for r in runs]),
        "mean_error_pp": 100 * sum(abs(r["rel"] - effect) for r in runs) / len(runs),
        "width_pp": 100 * median([r["hi"] - r["lo"] for r in runs]),
        "detect": sum(bool(r["sig"]) for r in runs) / len(runs),
        "secs": median([r["secs"] for r in runs]),
    }


def _fresh_process_first_fit() -> float:
    code = (
        "import time\n"
        "from cannabis_market.analysis.impact import estimate_impact\n"
        "from cannabis_market.analysis.impact.cases import simulate_case\n"
        "c = simulate_case('clean', 0)\n"
        "t = time.perf_counter()\n"
        "estimate_impact(c.frame, 'y', c.pre_period, c.post_period, controls=c.controls)\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _long_series() -> tuple[float, str]:
    import numpy as np
    import polars as pl

    from cannabis_market.analysis.impact import estimate_impact

    rng = np.random.default_rng(0)
    n = 50_000
    x1 = 100 + np.cumsum(rng.normal(size=n)) * 0.1
    x2 = 50 + rng.normal(size=n)
    y = 3 + 0.8 * x1 + 0.5 * x2 + rng.normal(size=n)
    y[-500:] -= 5
    with tempfile.TemporaryDirectory() as td:
        path = Path(td, "long.csv")
        pl.DataFrame({"t": np.arange(n), "y": y, "x1": x1, "x2": x2}).write_csv(path)
        t = time.perf_counter()
        frame = pl.read_csv(path)
        r = estimate_impact(frame, "y", (0, n - 501), (n - 500, n - 1), controls=["x1", "x2"], date_col="t")
        secs = time.perf_counter() - t
    return secs, f"{r.average.point:.2f} [{r.average.lo:.2f}, {r.average.hi:.2f}] (true -5), {r.model}"


def _statcan() -> dict:
    from cannabis_market.analysis.outage import estimate_series_impact
    from cannabis_market.data.loader import load_dataset
    from cannabis_market.data.statcan import import_statcan

    with tempfile.TemporaryDirectory() as td:
        import_statcan(STATCAN_CSV, Path(td, "statcan"))
        ds = load_dataset(Path(td, "statcan"))
        r = estimate_series_impact(ds, "Ontario", PROVINCES, "2022-08-01", start="2020-10-01", seed=1)
        placebo = r.placebo()
    avg = r.summary().row(0, named=True)
    incl = r.summary("controls")
    return {
        "StatCan Ontario 2022-08, relative effect [95%]": (
            f"{100 * avg['rel_effect']:+.1f}% [{100 * avg['rel_effect_lo']:+.1f}%, {100 * avg['rel_effect_hi']:+.1f}%]"
        ),
        "StatCan pre-period": f"{r.pre_period[0]}..{r.pre_period[1]} ({r.series.height - 1} months), 7 controls",
        "StatCan model": f"{r.model} ({r.model_choice})",
        "StatCan inclusion probabilities": ", ".join(
            f"{c} {p:.2f}" for c, p in zip(incl["control"], incl["inclusion_prob"], strict=True)
        ),
        "StatCan in-time placebo": placebo.report(),
    }


def run(quick: bool = False) -> dict:
    from cannabis_market.analysis.impact.cases import CASES, simulate_case

    seeds = range(QUICK_SEEDS if quick else N_SEEDS)
    rows, comparisons, figures = [], [], {}
    have_peer = True
    for name in CASES:
        ours, peer = [], []
        effect = None
        for s in seeds:
            case = simulate_case(name, s)
            effect = case.effect
            ours.append(_ours(case, s))
            b = _bsts(case, s)
            have_peer = have_peer and b is not None
            if b is not None:
                peer.append(b)
        a = _aggregate(ours, effect)
        models = sorted({r["model"] for r in ours})
        rows.append(
            [
                name,
                "ours",
                a["coverage"],
                a["median_error_pp"],
                a["mean_error_pp"],
                a["width_pp"],
                a["detect"],
                a["secs"],
            ]
        )
        figures[f"{name}: models used"] = ", ".join(
            f"{m} {sum(r['model'] == m for r in ours)}" for m in models
        )
        comparisons.append(
            comparison(
                f"{name}: 95% coverage (ours)",
                a["coverage"],
                None,
                a["coverage"],
                ">= 0.9",
                a["coverage"] >= 0.9,
            )
        )
        if name == "placebo":
            comparisons.append(
                comparison(
                    "placebo: false-positive rate (ours)",
                    a["detect"],
                    None,
                    a["detect"],
                    "<= 0.1",
                    a["detect"] <= 0.1,
                )
            )
        if peer:
            b = _aggregate(peer, effect)
            rows.append(
                [
                    name,
                    "bsts",
                    b["coverage"],
                    b["median_error_pp"],
                    b["mean_error_pp"],
                    b["width_pp"],
                    b["detect"],
                    b["secs"],
                ]
            )
            ratio = a["median_error_pp"] / b["median_error_pp"] if b["median_error_pp"] > 0 else float("nan")
            comparisons.append(
                comparison(
                    f"{name}: median error, ours / bsts-causalimpact",
                    round(a["median_error_pp"], 3),
                    round(b["median_error_pp"], 3),
                    round(ratio, 3),
                    "<= 1",
                    ratio <= 1,
                    "pp",
                    "bsts",
                )
            )
    clean = next(r for r in rows if r[0] == "clean" and r[1] == "ours")
    comparisons.append(
        comparison(
            "median fit, 194 daily points, 3 controls",
            round(clean[7], 4),
            0.1,
            round(clean[7] / 0.1, 3),
            "<= 1",
            clean[7] <= 0.1,
            "s",
            "budget",
        )
    )
    if not quick:
        first = _fresh_process_first_fit()
        comparisons.append(
            comparison(
                "first fit in a fresh process",
                round(first, 3),
                0.5,
                round(first / 0.5, 3),
                "<= 1",
                first <= 0.5,
                "s",
                "budget",
            )
        )
        secs, est = _long_series()
        comparisons.append(
            comparison(
                "50,000 rows, 2 controls (CSV read + fit)",
                round(secs, 2),
                10.0,
                round(secs / 10, 3),
                "<= 1",
                secs <= 10,
                "s",
                "budget",
            )
        )
        figures["50,000 rows: average effect [95%]"] = est
    if STATCAN_CSV.exists():
        figures.update(_statcan())
    notes = [
        f"{len(seeds)} seeds per case; the same simulated frame, periods and seed go to both models.",
        "Detection = interval excludes zero and p < 0.05; on the placebo case it is the false-positive rate.",
    ]
    if not have_peer:
        notes.append(
            "bsts-causalimpact is not installed (pip install '.[bench]'): only our figures are shown."
        )
    return {
        "title": "impact model vs bsts-causalimpact",
        "figures": figures,
        "comparisons": comparisons,
        "tables": [
            {
                "title": "Side by side (relative effect of the post-period average; errors and widths in pp)",
                "columns": [
                    "case",
                    "model",
                    "coverage",
                    "median error",
                    "mean error",
                    "width",
                    "detect / FP",
                    "s per fit",
                ],
                "rows": [
                    [
                        r[0],
                        r[1],
                        round(r[2], 2),
                        round(r[3], 2),
                        round(r[4], 2),
                        round(r[5], 2),
                        round(r[6], 2),
                        round(r[7], 4),
                    ]
                    for r in rows
                ],
            }
        ],
        "notes": notes,
    }
