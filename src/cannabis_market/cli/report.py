"""``cannabis-market report``: build the offline HTML reports listed in reports.yml.

``register(subparsers)`` adds the sub-command to the main CLI (it sets ``func=run`` on the parser);
``run(args) -> int`` executes it; bad input raises ``InputError`` (exit 2 via ``cli.main``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cannabis_market.errors import InputError

DESCRIPTION = """\
Execute report notebooks and render them to offline HTML (one self-contained page per run, plus
<out>/index.html). NAME is a job name from reports.yml (all its runs, grid included) or a notebook
(file stem such as 04_outage_impact, or a path to an .ipynb), which runs with its own defaults plus -p.
No NAME runs every job. Runs whose notebook, parameters, dataset and package version are unchanged
since their last successful run are skipped (--force re-runs them)."""

EPILOG = """\
parameters:
  -p KEY=VALUE is converted to the type declared in the notebook's `parameters` cell:
  dates 2022-08-05, lists a,b or ["a","b"] (a single value is a one-item list), numbers,
  booleans true/false/yes/no/1/0, null for optional parameters. -f FILE reads a YAML mapping
  (`end: 2022-12-31`). Order: notebook default < reports.yml job < -f < -p, except parameters a job
  lists under `pinned:` (a note says the override was ignored). Unknown names, bad values and path
  parameters that do not exist are refused before anything runs.

output (per run):
  <out>/<report>/<parameters>/report.html, results.json (executed notebooks: <out>/.cannabis-market/private/)
  A failed re-run never replaces the last good report: it goes to <run>/last-failure/ and the index
  lists both. --out must be new, empty, or a folder this command created (it holds a
  .cannabis-market-output marker); the command touches only folders it created there.

exit status:
  0  every run succeeded or was skipped
  1  at least one run failed (its report still shows the error; the others are unaffected)
  2  bad input: unknown NAME, bad -p, invalid reports.yml, missing notebook or kernel
  3  another `cannabis-market report` is writing to the same output folder (lock not obtained)
"""

EXIT_OK, EXIT_BUSY = 0, 3  # 1 (a run failed) comes from the build summary, 2 from cli.run_command


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 1e7:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds (at most 1e7), got {text!r}")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected at least 1")
    return value


def _assignment(text: str) -> str:
    """``-p`` value: must be KEY=VALUE (papermill's ``-p KEY VALUE`` gets a hint at parse time)."""
    from cannabis_market.reports.params import parse_assignments

    try:
        parse_assignments([text])
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the ``report`` command (shared by the main CLI and ``python -m``)."""
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="job name from reports.yml, or notebook stem/path"
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="jobs file (default: reports.yml here or in the nearest parent folder)",
    )
    p.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        type=_assignment,
        default=[],
        metavar="KEY=VALUE",
        help="set a notebook parameter (repeatable); applies to every selected run",
    )
    p.add_argument(
        "--jobs", "-j", type=_jobs, default=1, metavar="N", help="run N notebooks in parallel (default 1)"
    )
    p.add_argument(
        "--executor",
        choices=["local", "dask"],
        default="local",
        help="where runs execute: local (default; --jobs at a time) or dask (a Dask distributed cluster)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address for --executor dask, e.g. tcp://scheduler-host:8786 (workers must see "
        "the same notebooks, dataset and output paths, and have the cannabis-market kernel)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default: reports/ next to reports.yml)")
    p.add_argument("--force", action="store_true", help="re-run even when nothing changed")
    p.add_argument(
        "--no-warm",
        action="store_true",
        help="start every notebook in a cold kernel (default: kernels are started ahead with the imports "
        "done; also CM_REPORT_WARM=0)",
    )
    p.add_argument(
        "--show-code", action="store_true", help="include code cells, prompts and warnings in the HTML"
    )
    p.add_argument(
        "--pdf",
        action="store_true",
        help="also print each report to report.pdf beside report.html (needs a local headless Chromium)",
    )
    p.add_argument(
        "--timeout",
        type=_positive,
        metavar="S",
        help="seconds allowed per notebook (default: the job's timeout, else 900)",
    )
    p.add_argument(
        "--lock-timeout",
        type=_positive,
        default=10.0,
        metavar="S",
        help="seconds to wait for another report command writing the same folder (default 10)",
    )
    p.add_argument(
        "-f",
        "--parameters-file",
        dest="params_file",
        metavar="FILE",
        help="YAML file of parameter: value (as papermill -f); -p wins over it",
    )
    p.add_argument("--list", action="store_true", help="list jobs and notebook parameters, run nothing")
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove runs of reports that are no longer jobs in reports.yml, and failed runs older than "
        "their report's last good run that the job no longer plans; rewrite the index; runs nothing",
    )


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``report`` sub-command to the main CLI; the parser gets ``func=run``."""
    p = subparsers.add_parser(
        "report",
        help="render report notebooks to offline HTML (reports/)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _check_pdf() -> None:
    """--pdf needs a local Chromium: say so before anything runs (exit 2)."""
    from cannabis_market.reports.page import chromium

    if chromium() is None:
        raise InputError(
            "--pdf: no Chromium found on PATH (looked for chromium, chromium-browser, google-chrome); "
            "install it (Debian: apt-get install chromium, or `make browser`) or leave out --pdf"
        )


def _print_pdfs(summary: Any) -> None:
    """Print each selected report to report.pdf beside its report.html (an unchanged report whose PDF is
    up to date is left alone)."""
    from cannabis_market.reports.page import print_pdf

    for res in summary.results:
        page = Path(res.html) if res.html else None
        if page is None or not page.is_file():
            continue
        pdf = page.with_suffix(".pdf")
        if res.status == "skipped" and pdf.is_file() and pdf.stat().st_mtime >= page.stat().st_mtime:
            continue
        try:
            pdf = print_pdf(page, pdf)
            print(f"pdf     {res.label} -> {pdf}")
        except (RuntimeError, OSError) as exc:
            print(f"warning: no PDF for {res.label}: {exc}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Execute ``cannabis-market report``; returns the exit status (see EPILOG)."""
    from cannabis_market.reports import build, config, executors, plan
    from cannabis_market.reports.params import parse_assignments

    try:
        config_path = Path(args.config) if args.config else config.find_config()
        if args.config and not config_path.is_file():
            what = "not a regular file" if config_path.exists() else "file not found"
            raise InputError(f"--config {config_path}: {what}")
        cfg = config.load_config(config_path)
        if args.list:
            print(plan.describe_plan(cfg, args.names))
            return EXIT_OK
        out = Path(args.out) if args.out else cfg.root / "reports"
        if args.prune:
            build.prune_reports(cfg, out, lock_timeout=args.lock_timeout)
            return EXIT_OK
        overrides = parse_assignments(args.params)
        file_values, file_path = config.load_params_file(args.params_file) if args.params_file else ({}, None)
        planned = plan.plan(
            cfg,
            args.names,
            overrides,
            out=out,
            timeout=args.timeout,
            show_code=args.show_code,
            force=args.force,
            file_values=file_values,
            file_path=file_path,
        )
        if args.executor == "dask" and not args.scheduler:
            raise InputError("--executor dask needs --scheduler ADDRESS (e.g. tcp://scheduler-host:8786)")
        if planned.runs and args.executor == "local":
            build.check_kernel()
        executor = executors.make_executor(args.executor, jobs=args.jobs, scheduler=args.scheduler)
        for note in planned.notes:
            print(f"note: {note}", file=sys.stderr)
        if args.pdf and planned.runs:
            _check_pdf()
        descriptions = {j.name: j.description for j in cfg.jobs if j.description}
        summary = build.run_reports(
            planned,
            out,
            executor=executor,
            lock_timeout=args.lock_timeout,
            descriptions=descriptions,
            warm=False if args.no_warm else None,
        )
        if args.pdf:
            _print_pdfs(summary)
    except build.LockBusy as exc:
        _error(str(exc))
        return EXIT_BUSY
    except KeyboardInterrupt:
        _error("interrupted; finished reports are in place, unfinished ones were discarded")
        return 130
    return summary.exit_code
