"""`cannabis-market` command line: one front door, subcommands per layer.

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
from collections.abc import Sequence

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
    from cannabis_market import cli_data, cli_impact, cli_report

    parser = argparse.ArgumentParser(
        prog="cannabis-market",
        description="Analytics for Ontario's legal cannabis retail market: datasets, outage impact, reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (cli_data, cli_impact, cli_report):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
