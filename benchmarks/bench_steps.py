"""Benchmark: heavy report steps before/after, side by side, on the default dataset.

"Before" is the package as of commit ``BEFORE_REV`` (extracted with ``git archive`` into a temporary
folder), "after" is the working tree; each measurement runs in a fresh process with that tree first on
``PYTHONPATH``: the outage event study (by cover bin and by region, as the outage report runs it),
``market_overview``, importing ``analysis.overview`` (time, and whether altair / pandera were loaded),
and ``cannabis-market impact`` on a 100-row CSV against the bare import floor
``python -c "import polars, statsmodels.api"``. Figures of both trees must agree to 1e-9 (relative).

The polars-heavy steps of the report notebooks (issue #16) are measured against ``STEPS_BEFORE_REV``
(main before that work), each in a fresh process on the selection the notebooks default to: the store
panel as the growth notebook asks for it (saturation, then cannibalization), the three contributor
breakdowns of ``publish.protect_saturation``, ``price_inputs`` and ``price_table``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import REPO, BenchError, comparison
from _synth import DATA_DIR as DATA

BEFORE_REV = "78e5158"  # main before this work (alternating projections, eager altair theme)
STEPS_BEFORE_REV = "008de17"  # main before issue #16 (store panel computed per step, rescans per breakdown)
HEAVY = {  # child step -> budget in seconds (None: reported only)
    "store_panel_twice": 1.0,
    "protect_saturation_stats": None,
    "price_inputs": None,
    "price_table": None,
}
REPS = 3  # fresh processes per CLI timing (1 in quick mode)

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
what, path = sys.argv[1], sys.argv[2]
HEAVY = ("store_panel_twice", "protect_saturation_stats", "price_inputs", "price_table")
out = {}
if what == "import":
    import cannabis_market.analysis.overview  # noqa: F401
    out = {"seconds": time.perf_counter() - t0, "altair": "altair" in sys.modules,
           "pandera": "pandera" in sys.modules}
else:
    from cannabis_market.data.loader import load_dataset
    ds = load_dataset(path)
    t, c = time.perf_counter(), cpu()
    if what == "event_study":
        from cannabis_market.analysis import outage
        t, c = time.perf_counter(), cpu()
        figs = []
        for by in ("cover_bin", "region"):
            s = outage.outage_event_study(ds, by=by)
            # point figures only: issue #17 re-derived the interval (realized-loss vcov) after BEFORE_REV
            figs += [s.lost_sales, s.lost_share]
            figs += s.effects["estimate"].to_list() + s.by_group["lost_sales"].to_list()
    elif what in HEAVY:
        from cannabis_market.analysis import growth, pricing
        from cannabis_market.reports import publish
        sel = {"region": "all", "start": "2019-04-01", "end": "2024-12-31"}
        sub = ds.subset(**sel)
        t, c = time.perf_counter(), cpu()
        if what == "store_panel_twice":  # saturation, then cannibalization, ask for the same panel
            p = [growth.store_month_panel(sub) for _ in range(2)][-1]
            figs = [p.height] + [float(p[k].sum()) for k in ("revenue", "competitors", "log1p_competitors")]
        elif what == "protect_saturation_stats":
            figs = []
            for by, freq in ((["region"], None), (["region"], "month"), (["municipality"], None)):
                st = publish.selection_stats(ds, by, freq=freq, **sel)
                figs += [st.height] + [float(st[k].sum()) for k in ("n_stores", "max_share", "top2_share")]
        elif what == "price_inputs":
            inp = pricing.price_inputs(ds, category="dried_flower", **sel)
            figs = inp.prices["price_per_g"].to_list() + [float(inp.panel["competitors"].sum())]
        else:
            figs = pricing.price_table(sub.sales)["price_per_g"].to_list()
    else:
        from cannabis_market.analysis.overview import market_overview
        t, c = time.perf_counter(), cpu()
        o = market_overview(ds)
        figs = [o.total_sales, o.stores_open_latest, o.sales_per_store_latest]
        figs += o.monthly["revenue"].to_list()
    out = {"seconds": time.perf_counter() - t, "cpu_seconds": cpu() - c, "figures": figs}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _tree(rev: str, dest: Path) -> Path:
    """`src/` of commit `rev` extracted under `dest`; returns the folder to put on PYTHONPATH."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    dest.mkdir(parents=True, exist_ok=True)
    tar = dest / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    return dest / "src"


def _child(src: Path, what: str, dataset: Path) -> dict:
    env = os.environ | {"PYTHONPATH": str(src)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, what, str(dataset)], capture_output=True, text=True, env=env
    )
    if proc.returncode:
        raise BenchError(f"steps: {what} with {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _wall(cmd: list[str], env: dict[str, str], reps: int = REPS) -> float:
    """Median wall time of `cmd` over `reps` fresh processes."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        if proc.returncode:
            raise BenchError(f"steps: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return statistics.median(times)


def _dataset(quick: bool) -> Path:
    path = DATA / ("steps_ds_quick" if quick else "steps_ds_default")
    if not (path / "manifest.yml").is_file():
        args = ["--stores", "60"] if quick else []
        subprocess.run(
            [sys.executable, "-m", "cannabis_market.cli", "data", "generate", "--out", str(path), *args],
            check=True,
            capture_output=True,
        )
    return path


def _impact_csv(dest: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(3)
    x = 100 + np.cumsum(rng.normal(0, 1, 100))
    y = 1.2 * x + rng.normal(0, 1, 100)
    y[70:] -= 10
    import datetime as dt

    day0 = dt.date(2022, 1, 1)
    lines = ["date,y,x1"] + [
        f"{day0 + dt.timedelta(days=i)},{a:.4f},{b:.4f}" for i, (a, b) in enumerate(zip(y, x, strict=True))
    ]
    path = dest / "impact.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _agree(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1e-300)
        for x, y in zip(a, b, strict=True)
    )


def run(quick: bool = False) -> dict:
    DATA.mkdir(parents=True, exist_ok=True)
    dataset = _dataset(quick)
    after = REPO / "src"
    rows, comps, figures = [], [], {}
    with tempfile.TemporaryDirectory(prefix="cm-bench-steps-") as td:
        # quick mode (the harness smoke test) runs the working tree only and reports it as both sides
        before = _tree(BEFORE_REV, Path(td)) if not quick else after
        for what, target in (("event_study", 2.0), ("overview", 1.0)):
            a = _child(after, what, dataset)
            b = _child(before, what, dataset) if not quick else a
            if not _agree(b["figures"], a["figures"]):
                raise BenchError(f"steps: {what} figures differ between {BEFORE_REV} and the working tree")
            rows.append([what, b["seconds"], a["seconds"], b["cpu_seconds"], a["cpu_seconds"]])
            comps.append(
                comparison(
                    f"{what}: after / before (wall)",
                    a["seconds"],
                    b["seconds"],
                    round(a["seconds"] / b["seconds"], 3),
                    "(info)",
                    None,
                    unit="s",
                    baseline_label="before",
                )
            )
            comps.append(
                comparison(
                    f"{what}: after vs {target:g} s budget",
                    a["seconds"],
                    target,
                    round(a["seconds"] / target, 3),
                    "<= 1" if not quick else "(info: quick size)",
                    a["seconds"] <= target if not quick else None,
                    unit="s",
                    baseline_label="budget",
                )
            )
        steps_before = _tree(STEPS_BEFORE_REV, Path(td) / "steps") if not quick else after
        for what, target in HEAVY.items():
            a = _child(after, what, dataset)
            b = _child(steps_before, what, dataset) if not quick else a
            if not _agree(b["figures"], a["figures"]):
                raise BenchError(
                    f"steps: {what} figures differ between {STEPS_BEFORE_REV} and the working tree"
                )
            rows.append([what, b["seconds"], a["seconds"], b["cpu_seconds"], a["cpu_seconds"]])
            comps.append(
                comparison(
                    f"{what}: after / before {STEPS_BEFORE_REV} (CPU)",
                    a["cpu_seconds"],
                    b["cpu_seconds"],
                    round(a["cpu_seconds"] / b["cpu_seconds"], 3),
                    "(info)",
                    None,
                    unit="s",
                    baseline_label="before",
                )
            )
            if target is not None:
                comps.append(
                    comparison(
                        f"{what}: after vs {target:g} s budget",
                        a["seconds"],
                        target,
                        round(a["seconds"] / target, 3),
                        "<= 1" if not quick else "(info: quick size)",
                        a["seconds"] <= target if not quick else None,
                        unit="s",
                        baseline_label="budget",
                    )
                )
        imp_a = _child(after, "import", dataset)
        imp_b = _child(before, "import", dataset) if not quick else imp_a
        figures["import analysis.overview loads altair (before / after)"] = (
            f"{imp_b['altair']} / {imp_a['altair']}"
        )
        figures["import analysis.overview loads pandera (before / after)"] = (
            f"{imp_b['pandera']} / {imp_a['pandera']}"
        )
        rows.append(["import analysis.overview", imp_b["seconds"], imp_a["seconds"], None, None])
        csv = _impact_csv(Path(td))
        cli = ["-m", "cannabis_market.cli", "impact", str(csv), "--y", "y", "--controls", "x1"]
        cli += ["--pre", "2022-01-01:2022-03-11", "--post", "2022-03-12:2022-04-10"]
        reps = 1 if quick else REPS
        floor = _wall([sys.executable, "-c", "import polars, statsmodels.api"], dict(os.environ), reps)
        walls = {"after": _wall([sys.executable, *cli], os.environ | {"PYTHONPATH": str(after)}, reps)}
        walls["before"] = (
            _wall([sys.executable, *cli], os.environ | {"PYTHONPATH": str(before)}, reps)
            if not quick
            else walls["after"]
        )
        rows.append(["impact CLI, 100 rows", walls["before"], walls["after"], None, None])
        figures["import floor: python -c 'import polars, statsmodels.api' (s, median of 3)"] = round(floor, 2)
        comps.append(
            comparison(
                "impact CLI on 100 rows / import floor",
                round(walls["after"], 2),
                round(floor, 2),
                round(walls["after"] / floor, 2),
                "<= 1.5" if not quick else "(info: quick mode)",
                walls["after"] / floor <= 1.5 if not quick else None,
                unit="s",
                baseline_label="import floor",
            )
        )
        comps.append(
            comparison(
                "impact CLI on 100 rows, before / import floor",
                round(walls["before"], 2),
                round(floor, 2),
                round(walls["before"] / floor, 2),
                "(info)",
                None,
                unit="s",
                baseline_label="import floor",
            )
        )
    figures["dataset"] = f"{dataset.name} (`cannabis-market data generate`{' --stores 60' if quick else ''})"
    return {
        "figures": figures,
        "comparisons": comps,
        "tables": [
            {
                "title": (
                    f"Before ({BEFORE_REV}; the heavy report steps: {STEPS_BEFORE_REV}) and after, each in a "
                    "fresh process (seconds of the step itself)"
                ),
                "columns": ["step", "before s", "after s", "before CPU s", "after CPU s"],
                "rows": [[r[0], *[None if v is None else round(v, 2) for v in r[1:]]] for r in rows],
            }
        ],
        "notes": [
            "Event study figures (totals, intervals, daily effects, by-region totals) and overview figures "
            "of both trees agree to 1e-9 relative (checked); so do the heavy steps' figures (panel sums, "
            "contributor counts and shares, price series).",
            "Wall times on a shared 2-core machine drift with the load; CPU seconds are steadier.",
        ],
    }
