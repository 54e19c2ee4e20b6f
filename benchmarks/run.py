"""Run the benchmarks and write benchmarks/RESULTS.md.

    python benchmarks/run.py [--quick] [--only NAME ...] [--out benchmarks/RESULTS.md]

Every ``benchmarks/bench_*.py`` module is a benchmark: it exposes ``run(quick: bool = False) -> dict``
(``run()`` without arguments is accepted too) returning ``figures`` (name -> value), ``comparisons``
(rows of the ratios table: name, ours, baseline, ratio, target, passed), and optionally ``tables``,
``notes`` and ``title``. A module returning a flat dict instead is reported as figures, and given
targets from ``TARGETS`` below when it has any. Each benchmark runs in a fresh subprocess, so its peak
memory is its own; comparisons are made inside one benchmark run, side by side, and reported as ratios
because the machines these run on are shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, REPO, BenchError, comparison, run_isolated  # noqa: E402

DEFAULT_OUT = HERE / "RESULTS.md"
VERSIONS = ("polars", "pandas", "numpy", "pyarrow", "statsmodels")

# Targets for benchmarks that return bare figures (they predate the comparisons interface).
# name -> list of (label, figure key or "_peak_rss_mb", limit, unit)
TARGETS: dict[str, list[tuple[str, str, float, str]]] = {
    "event_study": [
        ("wall time, 1,800 stores x 730 days (ours s / 10 s budget)", "seconds", 10.0, "s"),
        ("peak memory, 1,800 stores x 730 days (ours MB / 2,000 MB budget)", "_peak_rss_mb", 2000.0, "MB"),
    ],
}

# Sections reserved for benchmarks still to be written; shown until a module of that name reports.
PLACEHOLDERS: dict[str, list[tuple[str, str]]] = {
    "reports": [
        (
            "Report build",
            "To be measured by `benchmarks/bench_reports.py` (same `run(quick)` interface; the harness "
            "picks it up automatically): a cold `cannabis-market report --jobs 2` against plain papermill "
            "+ nbconvert over the same notebooks (ratio), a no-op rebuild (nothing changed), and a rebuild "
            "after one changed parameter.",
        ),
        (
            "HTML report sizes",
            "To be measured by `benchmarks/bench_reports.py`: the size of each built HTML report and of "
            "the index, against the size budget the lead sets.",
        ),
    ],
}


# ------------------------------------------------------------------------------------ discovery


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def select(available: list[str], only: list[str] | None) -> list[str]:
    if not only:
        return available
    wanted = [n.removeprefix("bench_").removesuffix(".py") for n in only]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise SystemExit(
            f"run.py: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}"
        )
    return [n for n in available if n in wanted]


# -------------------------------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """Cores, RAM, CPU model, OS, Python and library versions of this machine."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in _read("/proc/cpuinfo").splitlines()
            if ln.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    mem = next(
        (ln.split()[1] for ln in _read("/proc/meminfo").splitlines() if ln.startswith("MemTotal")), None
    )
    ram = f"{int(mem) / 2**20:.1f} GiB RAM" if mem else "RAM unknown"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    os_name = next(
        (
            ln.split("=", 1)[1].strip().strip('"')
            for ln in _read("/etc/os-release").splitlines()
            if ln.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    libs = []
    for name in VERSIONS:
        try:
            libs.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            libs.append(f"{name} (not installed)")
    return {
        "cores": f"{usable} cores usable ({os.cpu_count()} online)",
        "ram": ram,
        "cpu": cpu,
        "os": f"{os_name}, {platform.system()} {platform.release()} {platform.machine()}",
        "python": f"Python {platform.python_version()}",
        "libs": ", ".join(libs),
    }


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes" if dirty else "")


def command_line() -> str:
    exe = Path(sys.executable)
    try:
        exe_text = str(exe.relative_to(Path.cwd()))
    except ValueError:
        exe_text = str(exe)
    script = Path(sys.argv[0])
    try:
        script_text = str(script.resolve().relative_to(Path.cwd()))
    except ValueError:
        script_text = str(script)
    return shlex.join([exe_text, script_text, *sys.argv[1:]])


# -------------------------------------------------------------------------------------- running


def normalize(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Bring a benchmark's dict to the harness shape; apply TARGETS to flat legacy results."""
    proc = raw.pop("_proc", {})
    if "comparisons" in raw or "figures" in raw:
        out = {
            k: raw.get(k, d) for k, d in (("figures", {}), ("comparisons", []), ("tables", []), ("notes", []))
        }
        out["title"] = raw.get("title")
    else:
        out = {"figures": dict(raw), "comparisons": [], "tables": [], "notes": [], "title": None}
    for label, key, limit, unit in TARGETS.get(name, []):
        value = proc.get("peak_rss_mb") if key == "_peak_rss_mb" else out["figures"].get(key)
        if value is None:
            continue
        out["comparisons"].append(
            comparison(label, value, limit, round(value / limit, 3), "<= 1", value <= limit, unit, "budget")
        )
    if name in TARGETS:
        out["notes"].append(
            "Peak memory is the benchmark process's peak RSS (VmHWM): imports, building the panel and the "
            "estimate together."
        )
    out["proc"] = proc
    return out


def run_one(name: str, quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        raw = run_isolated("_common:call_bench", {"module": f"bench_{name}", "quick": quick})
        res = normalize(name, raw)
        res["error"] = None
    except BenchError as e:
        res = {"figures": {}, "comparisons": [], "tables": [], "notes": [], "title": None, "proc": {}}
        res["error"] = str(e)
    res["seconds"] = time.perf_counter() - t0
    return res


# ------------------------------------------------------------------------------------ rendering


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "—" if v is None else ("yes" if v else "no")
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _cell(v: Any) -> str:
    return _num(v).replace("|", "\\|").replace("\n", " ")


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _verdict(passed: bool | None) -> str:
    return "info" if passed is None else ("**PASS**" if passed else "**MISS**")


def render(results: dict[str, dict], info: dict[str, Any]) -> str:
    m = info["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py` (`make bench`); rerun it rather than editing this file. Targets come",
        'from the "Scale and speed" issue. Each comparison is measured side by side in one run and reported',
        "as a ratio, since absolute times on shared machines drift; the raw numbers follow below.",
        "",
        f"- Date: {info['date']}",
        f"- Command: `{info['command']}` (from the repository root; `make bench` runs "
        "`.venv/bin/python benchmarks/run.py`)",
        f"- Mode: {'quick (small sizes, for the smoke test)' if info['quick'] else 'full sizes'}",
        f"- Machine: {m['cores']}, {m['ram']}, {m['cpu']}; {m['os']}; {m['python']}; {m['libs']}",
        f"- Load average (1 min) at start / end: {info['load_start']} / {info['load_end']} "
        "(other jobs share this machine)",
        f"- Revision: {info['git']}",
        f"- Total runtime: {info['total_seconds']:.0f} s",
        "",
        "## Ratios against targets",
        "",
    ]
    rows = []
    for name, res in results.items():
        for c in res["comparisons"]:
            unit = f" {c['unit']}" if c.get("unit") else ""
            base = "—" if c["baseline"] is None else f"{_num(c['baseline'])}{unit}"
            if c.get("baseline_label") and c["baseline"] is not None:
                base += f" ({c['baseline_label']})"
            rows.append(
                [
                    name,
                    c["name"],
                    f"{_num(c['ours'])}{unit}",
                    base,
                    _num(c["ratio"]),
                    c["target"],
                    _verdict(c["passed"]),
                ]
            )
        if res["error"]:
            rows.append([name, "benchmark failed (see its section)", "—", "—", "—", "—", "**ERROR**"])
    lines += _table(["Benchmark", "Comparison", "Ours", "Baseline", "Ratio", "Target", "Result"], rows)
    judged = [c["passed"] for r in results.values() for c in r["comparisons"] if c["passed"] is not None]
    lines += ["", f"{sum(judged)} of {len(judged)} targets met." if judged else "No targets were judged.", ""]
    for name, res in results.items():
        lines += [f"## {res.get('title') or name}", ""]
        proc = res.get("proc") or {}
        where = f"`benchmarks/bench_{name}.py`, {res['seconds']:.1f} s"
        if proc.get("tree_peak_rss_mb") is not None:
            where += f", peak RSS of the benchmark's processes {_num(proc['tree_peak_rss_mb'])} MB"
        lines += [where, ""]
        if res["error"]:
            lines += ["**Failed:**", "", "```", res["error"], "```", ""]
            continue
        if res["figures"]:
            lines += _table(["Figure", "Value"], [[k, v] for k, v in res["figures"].items()]) + [""]
        for t in res["tables"]:
            lines += [f"**{t['title']}**", ""] + _table(t["columns"], t["rows"]) + [""]
        lines += [f"- {n}" for n in res["notes"]] + ([""] if res["notes"] else [])
    for bench, sections in PLACEHOLDERS.items():
        if bench in results and not results[bench]["error"]:
            continue
        if bench in results:
            state = "its benchmark failed"
        elif bench in info["available"]:
            state = "not run in this invocation"
        else:
            state = f"`bench_{bench}.py` not written yet"
        for title, text in sections:
            lines += [
                f"## {title} (placeholder: {state})",
                "",
                f"<!-- placeholder: {bench}: {title} -->",
                text,
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the cannabis_market benchmarks; write RESULTS.md.")
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds, for the smoke test)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (e.g. dataprep)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the results (Markdown)")
    ap.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="leave these benchmarks out")
    args = ap.parse_args(argv)
    available = discover()
    names = [n for n in select(available, args.only) if n not in args.skip]
    t0 = time.perf_counter()
    load_start = f"{os.getloadavg()[0]:.2f}"
    results: dict[str, dict] = {}
    width = max(len(n) for n in names)
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name:<{width}} ...", end=" ", flush=True)
        res = run_one(name, args.quick)
        results[name] = res
        judged = [c["passed"] for c in res["comparisons"] if c["passed"] is not None]
        peak = (res.get("proc") or {}).get("tree_peak_rss_mb")
        status = (
            "ERROR"
            if res["error"]
            else (f"{sum(judged)}/{len(judged)} targets met" if judged else "done (no targets)")
        )
        peak_text = f", peak RSS {peak:,.0f} MB" if peak is not None else ""
        print(f"{status}, {res['seconds']:.1f} s{peak_text}", flush=True)
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(),
        "quick": args.quick,
        "machine": machine(),
        "load_start": load_start,
        "load_end": f"{os.getloadavg()[0]:.2f}",
        "git": git_revision(),
        "total_seconds": time.perf_counter() - t0,
        "available": available,
    }
    write_atomic(args.out, render(results, info))
    print(f"wrote {args.out} ({info['total_seconds']:.0f} s)")
    for name, res in results.items():
        if res["error"]:
            print(f"\n{name} failed:\n{res['error']}", file=sys.stderr)
    return 1 if any(r["error"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
