"""`cannabis-market` command line: one front door, subcommands per layer (`data`, `impact`, `report`).

Submodules: `data` (generate/validate/import-statcan), `importers` (real-data and POS importers under
`data`), `impact` (one-series intervention analysis), `report` (notebooks -> offline HTML). Each has
`register(subparsers)`; `main` here is the one place where an exception becomes an exit status.

Exit status: 0 success, 1 a run failed (e.g. a report notebook raised) or an internal error (a bug: the
message says so and how to see the traceback), 2 bad input (only ``InputError`` and its subclass
``DataValidationError``: the message names the file, column or parameter and the rule; nothing is
written). Any other exception -- a ValueError from deep inside a library included -- is an internal
error, never reported as bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from cannabis_market import __version__
from cannabis_market.errors import DataValidationError, InputError

DEBUG_ENV = "CM_DEBUG"

EPILOG = """exit status:
  0  success
  1  a run failed (reports: at least one notebook failed; the others were still built), or an
     internal error (a bug; set CM_DEBUG=1 to see the traceback)
  2  bad input: the message names the file, column or parameter and the rule; nothing was written
"""


def build_parser() -> argparse.ArgumentParser:
    """The full parser; each subcommand module registers itself."""
    from cannabis_market.cli import data, impact, report

    parser = argparse.ArgumentParser(
        prog="cannabis-market",
        description="Analytics for Ontario's legal cannabis retail market: datasets, outage impact, reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (data, impact, report):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run one subcommand and turn its outcome into the exit status: ``InputError`` (and its subclass
    ``DataValidationError``) -> 2 with the message; anything else unexpected -> 1 "internal error"."""
    try:
        return int(func(args) or 0)
    except (InputError, DataValidationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: say so without a wall of traceback
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"internal error: {type(e).__name__}: {e}\n"
            f"This is a bug, not a problem with your input; set {DEBUG_ENV}=1 to see the traceback.",
            file=sys.stderr,
        )
        return 1
