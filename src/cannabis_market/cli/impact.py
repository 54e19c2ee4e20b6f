"""`cannabis-market impact CSV ...`: CausalImpact-style intervention analysis of one series."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import polars as pl

from cannabis_market.data.csvio import check_text_file, short
from cannabis_market.errors import InputError

MAX_SIMS = 100_000
"""Most simulated paths accepted; 1,000 already puts the Monte Carlo error of a 95% bound near 0.5%."""
MAX_CELLS = 50_000_000
"""Most path values (rows x sims) simulated at once: 50M doubles is 400 MB per copy."""
MAX_CSV_BYTES = 50 << 20
MAX_ROWS = 100_000
MAX_CONTROLS = 50
MAX_INDEX = 10**9
MODELS = ("auto", "regression", "state_space")

DESCRIPTION = """\
Estimate the effect of an intervention (an outage, a policy change, a store opening) on one series.

A structural time-series model (local level, day-of-week or month-of-year seasonality when the data
support it, and a regression on the control series) is fitted on the pre-period only. It is then
simulated forward over the post-period to give the counterfactual -- what the series would have done
without the intervention -- and the effect is actual minus counterfactual, with intervals from the
simulated paths. Controls must be series the intervention did not affect (e.g. sales in unaffected
regions); without controls the counterfactual is a flat-ish extrapolation and intervals widen fast.

The CSV needs one row per date: a date column (YYYY-MM-DD; daily, weekly or month-start monthly,
without gaps) or an integer time index (1, 2, 3, ...), the response column and any controls.
Nothing is written to disk."""

EPILOG = """\
examples:
  cannabis-market impact sales.csv --y revenue --controls quebec,alberta \\
      --pre 2022-01-01:2022-07-31 --post 2022-08-05:2022-09-30
  cannabis-market impact series.csv --date-col t --y y --controls x1 --pre 1:70 --post 71:100 --json

output:
  a table (average and cumulative: actual, prediction, absolute and relative effect, each with an
  interval), the tail-area probability and a plain-language paragraph; with --json one JSON object
  {"average": {...}, "cumulative": {...}, "p_value": ..., "alpha": ..., "n_sims": ..., "model": ...,
  "model_choice": "why that model", "controls_table": [{"control", "inclusion_prob", "coefficient",
  "weight"}, ...]}.

exit status:
  0  success
  1  internal error (a bug; CM_DEBUG=1 shows the traceback)
  2  bad input (unreadable CSV, unknown column, bad window, missing values, ...): message on stderr
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `impact` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "impact",
        help="intervention analysis of one series against controls (CausalImpact-style)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "csv", metavar="CSV", help="CSV file with a date (or integer index) column, y and controls"
    )
    p.add_argument("--y", required=True, metavar="COL", help="response column to analyse")
    p.add_argument(
        "--date-col", default="date", metavar="COL", help="date or integer time-index column (default: date)"
    )
    p.add_argument(
        "--controls",
        default="",
        metavar="A,B",
        help="comma-separated control columns, unaffected by the intervention (default: none)",
    )
    p.add_argument(
        "--pre",
        required=True,
        metavar="START:END",
        help="pre-period, inclusive: ISO dates (2022-01-01:2022-07-31) or integers (1:70)",
    )
    p.add_argument(
        "--post", required=True, metavar="START:END", help="post-period, inclusive, after the pre-period"
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="1 - interval level and significance threshold (default 0.05 = 95%% intervals)",
    )
    p.add_argument(
        "--seasonality",
        default="auto",
        metavar="auto|none|N",
        help="seasonal period: auto (7 for daily, 12 for monthly, if the pre-period has 2 cycles), none, or "
        "an integer (default auto)",
    )
    p.add_argument(
        "--model",
        choices=MODELS,
        default="auto",
        help="counterfactual model: auto (chosen on a pre-period holdout), regression (spike-and-slab on the "
        "controls with AR(1)/local-level errors) or state_space (local level + seasonality + controls); "
        "default auto",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default 0)")
    p.add_argument(
        "--sims",
        type=int,
        default=1000,
        metavar="N",
        help="simulated counterfactual paths, >= 100 (default 1000)",
    )
    p.add_argument("--money", action="store_true", help="format amounts as CAD in the text output")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table and text")
    p.set_defaults(func=run)


def _split_period(text: str, flag: str) -> tuple[str, str]:
    parts = text.split(":")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise InputError(
            f"{flag} must look like START:END (e.g. 2022-01-01:2022-07-31 or 1:70), got {short(text)}"
        )
    for end in parts:
        v = end.strip()
        if v.lstrip("+-").isdigit() and abs(int(v)) > MAX_INDEX:
            raise InputError(f"{flag}: time index {short(v, 30)} is out of range (at most {MAX_INDEX:,})")
    return parts[0].strip(), parts[1].strip()


def _seasonality(text: str) -> int | None | str:
    t = text.strip().lower()
    if t == "auto":
        return "auto"
    if t in ("none", "0", "1", ""):
        return None
    try:
        period = int(t)
    except ValueError:
        raise InputError(f"--seasonality must be auto, none or an integer, got {short(text)}") from None
    if not 2 <= period <= 366:
        raise InputError(f"--seasonality must be a period between 2 and 366, got {period}")
    return period


def check_numbers(args: argparse.Namespace) -> None:
    """Bounds on the numeric options, checked before any file is read or memory allocated."""
    sims = args.sims
    if not 100 <= sims <= MAX_SIMS:
        raise InputError(
            f"--sims (n_sims) must be between 100 and {MAX_SIMS:,} simulated paths, got {sims:,}"
        )
    if not (math.isfinite(args.alpha) and 0 < args.alpha <= 0.5):
        raise InputError(f"--alpha must be in (0, 0.5] (0.05 gives 95% intervals), got {args.alpha!r}")
    if not 0 <= args.seed < 2**32:
        raise InputError(f"--seed must be between 0 and 2**32 - 1, got {args.seed}")


def _read_csv(path: str) -> pl.DataFrame:
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {path}")
    if not p.is_file():
        raise InputError(f"not a file: {path}")
    if p.stat().st_size > MAX_CSV_BYTES:
        raise InputError(
            f"{path}: {p.stat().st_size:,} bytes is larger than the {MAX_CSV_BYTES:,} bytes accepted; "
            "the impact CSV holds one row per date"
        )
    text = check_text_file(p)
    if text.problem:
        raise InputError(f"cannot read CSV {path}: {text.problem}")
    try:
        frame = pl.read_csv(p, try_parse_dates=True, infer_schema_length=10000)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot read CSV {path}: {short(first, 150)}") from None
    if frame.height == 0:
        raise InputError(f"CSV {path} has no data rows")
    if frame.height > MAX_ROWS:
        raise InputError(
            f"CSV {path} has {frame.height:,} rows, more than the {MAX_ROWS:,} accepted (one per date)"
        )
    return frame


def _clean(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _jsonable(v: object) -> int | str:
    return v if isinstance(v, int) else str(v)


def run(args: argparse.Namespace) -> int:
    """Run the `impact` subcommand. Bad input raises ``InputError`` (exit 2 via ``cli.main``); any
    other exception is a bug and stays one (exit 1, "internal error")."""
    check_numbers(args)
    season = _seasonality(getattr(args, "seasonality", "auto"))
    frame = _read_csv(args.csv)
    if frame.height * args.sims > MAX_CELLS:
        raise InputError(
            f"--sims {args.sims:,} x {frame.height:,} rows of {args.csv} is more than {MAX_CELLS:,} simulated "
            f"values; use at most --sims {max(100, MAX_CELLS // frame.height):,}"
        )
    controls = [c.strip() for c in (args.controls or "").split(",") if c.strip()]
    if len(controls) > MAX_CONTROLS:
        raise InputError(f"--controls: {len(controls)} control series, more than the {MAX_CONTROLS} accepted")
    pre = _split_period(args.pre, "--pre")
    post = _split_period(args.post, "--post")
    from cannabis_market.analysis.impact import estimate_impact

    result = estimate_impact(
        frame,
        y=args.y,
        pre_period=pre,
        post_period=post,
        controls=controls,
        date_col=args.date_col,
        alpha=args.alpha,
        seasonality=season,
        n_sims=args.sims,
        seed=args.seed,
        model=getattr(args, "model", "auto"),
    )

    summary = result.summary()
    if args.json:
        rows = {
            r["row"]: {k: _clean(v) for k, v in r.items() if k != "row"}
            for r in summary.iter_rows(named=True)
        }
        out = {
            "y": result.y,
            "controls": result.controls,
            "pre_period": [_jsonable(v) for v in result.pre_period],
            "post_period": [_jsonable(v) for v in result.post_period],
            "average": rows["average"],
            "cumulative": rows["cumulative"],
            "p_value": result.p_value,
            "alpha": result.alpha,
            "n_sims": result.n_sims,
            "seed": result.seed,
            "seasonality": result.seasonality,
            "model": result.model,
            "model_choice": result.model_choice,
            "controls_table": [
                {k: _clean(v) if isinstance(v, float) else v for k, v in row.items()}
                for row in result.summary("controls").to_dicts()
            ],
        }
        print(json.dumps(out))
        return 0
    money = bool(getattr(args, "money", False))
    print(result.text_table(money=money))
    print()
    print(result.report(money=money, width=100))
    return 0
