"""`cannabis-market data import-*` / `fetch-statcan`: real public files and retailer exports -> datasets.

Each action converts one source layout into the data contract (data/README.md), validates the result
with the same checks as `data validate`, and writes it atomically (temporary folder, then rename). An
existing output folder is replaced only when it holds a previous import of the same kind. Bad input
(a missing column, a bad date, an unreadable file, a wrong sheet) exits with status 2 and a message naming
the source file, column, rule and rows; nothing is written. See docs/real-data.md.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

FMT = argparse.RawDescriptionHelpFormatter
OUT_HELP = "output dataset folder (created; a previous import of the same kind is replaced, anything else is refused)"


def progress(msg: str) -> None:
    """Progress lines of a long import or generation go to stderr, so stdout stays the result."""
    print(msg, file=sys.stderr, flush=True)


def import_handler(
    name: str, call: Callable[[Callable[..., Any], argparse.Namespace], tuple[Any, ...]]
) -> Callable[[argparse.Namespace], int]:
    """The handler of one import subcommand: import ``cannabis_market.data.<name>`` only when it runs (keeps
    ``--help`` fast), ``call`` its ``import_*``/``fetch_*`` function with the arguments, report warnings and
    what was written. ``name`` is ``module:function``."""
    module, function = name.split(":")

    def handler(args: argparse.Namespace) -> int:
        fn = getattr(importlib.import_module(f"cannabis_market.data.{module}"), function)
        out, info, *warnings = call(fn, args)
        for line in warnings[0] if warnings else []:
            print(f"warning: {line}", file=sys.stderr)
        print(f"wrote {out}: {info}")
        return 0

    return handler


def register(dsub: argparse._SubParsersAction) -> None:
    """Add the real-data importers to the `data` subcommand group."""
    w = dsub.add_parser(
        "import-washington",
        help="Washington LCB sales-by-licence workbook -> stores + monthly sales (USD)",
        description="Convert the Washington State LCB 'MJ Sales Activity by License Number' workbook (sheet "
        "'Retailers': License Number, Reporting Period, Total Sales, Excise Tax Due) into stores + monthly "
        "sales + a statewide series.\n\n"
        "- store_id = licence (text and number cells normalized, 6 digits); municipality 'unknown', region WA\n"
        "- sales: one row per licence-month, category 'other' = total sales across categories (no grams)\n"
        "- opened_on = first reporting month; closed_on = end of the last reporting month when a licence\n"
        "  stopped reporting more than --grace-months before the last kept month\n"
        "- the final months are checked for late reports: a month among the last 3 with fewer reporting\n"
        "  licences than --threshold x the median of the 12 before is flagged and trimmed",
        formatter_class=FMT,
    )
    w.add_argument("xlsx", help="the LCB workbook (.xlsx)")
    w.add_argument("--out", required=True, help=OUT_HELP)
    w.add_argument("--sheet", default=None, help="worksheet name (default 'Retailers')")
    w.add_argument(
        "--keep-incomplete", action="store_true", help="keep the final months flagged as incomplete"
    )
    w.add_argument("--threshold", type=float, default=0.97, help="incomplete-month threshold (default 0.97)")
    w.add_argument(
        "--grace-months",
        type=int,
        default=1,
        help="months of silence before a licence counts as closed (default 1)",
    )
    w.set_defaults(
        func=import_handler(
            "adapters.washington:import_washington",
            lambda f, a: f(
                a.xlsx,
                a.out,
                sheet=a.sheet,
                keep_incomplete=a.keep_incomplete,
                threshold=a.threshold,
                grace_months=a.grace_months,
            ),
        )
    )

    o = dsub.add_parser(
        "import-oregon",
        help="Oregon OLCC monthly market workbook -> series (sales, prices per gram, USD)",
        description="Convert the OLCC monthly market data workbook (sheet 'data': date, total_sales, "
        "flower_sales, concentrate_sales, retail_flower_price, retail_concentrate_price, "
        "wholesale_flower_price, wholesale_concentrate_price) into a series dataset, geo Oregon.\n\n"
        "Metrics: sales, flower_sales, concentrate_sales (USD); price_per_g, concentrate_price_per_g (USD/g);\n"
        "wholesale_flower_price_per_g, wholesale_concentrate_price_per_g (USD per pound / 453.592).\n"
        "Empty cells are missing values, never zeros.",
        formatter_class=FMT,
    )
    o.add_argument("xlsx", help="the OLCC workbook (.xlsx)")
    o.add_argument("--out", required=True, help=OUT_HELP)
    o.add_argument("--sheet", default=None, help="worksheet name (default 'data')")
    o.set_defaults(
        func=import_handler("adapters.oregon:import_oregon", lambda f, a: f(a.xlsx, a.out, sheet=a.sheet))
    )

    c = dsub.add_parser(
        "import-colorado",
        help="Colorado revenue/stores workbooks and county sales CSV -> series (USD)",
        description="Convert any of three Colorado files into one series dataset (give at least one):\n\n"
        "  --monthly-revenue  CDOR monthly workbook -> Colorado sales, retail_sales, medical_sales\n"
        "  --stores           MED 'Analysis' workbook -> stores, store_entries, store_exits,\n"
        "                     medical_centers, retail_sales_est (the workbook's tax-derived revenue)\n"
        "  --county           CDOR county CSV -> '<County> County, CO' retail_sales, medical_sales;\n"
        "                     NR/NL blank codes are missing values (counted), thousands separators parsed,\n"
        "                     the 'Sum of NR Counties' row is dropped",
        formatter_class=FMT,
    )
    c.add_argument("--out", required=True, help=OUT_HELP)
    c.add_argument("--monthly-revenue", metavar="XLSX", default=None, help="CDOR monthly revenue workbook")
    c.add_argument("--stores", metavar="XLSX", default=None, help="MED monthly stores workbook")
    c.add_argument("--county", metavar="CSV", default=None, help="CDOR county monthly sales CSV")
    c.set_defaults(
        func=import_handler(
            "adapters.colorado:import_colorado",
            lambda f, a: f(a.out, monthly_revenue=a.monthly_revenue, stores=a.stores, county=a.county),
        )
    )

    a = dsub.add_parser(
        "import-agco",
        help="AGCO Ontario cannabis store list -> stores snapshot + stores per municipality",
        description="Convert the AGCO cannabis retail store list (License Number, Municipality or First "
        "Nation, Store Name, Address, Store Application Status, Website) into a snapshot dataset:\n\n"
        "- stores: authorized stores; municipality with amalgamated communities folded in (Scarborough ->\n"
        "  Toronto, Nepean -> Ottawa, ...), region from a small map (others 'unassigned'), chain empty\n"
        "- series at the snapshot month: stores_authorized per municipality; for Ontario also\n"
        "  licences_cancelled, applications_in_progress, applications_public_notice, cancelled_share\n"
        "- agco_licences.csv: every row with its status (authorized, cancelled, in_progress, public_notice)\n\n"
        "THE LIST HAS NO DATES. Without --dates, opened_on is a placeholder (the snapshot date) and the\n"
        "manifest says dates: unknown: fine for cross-sectional counts, not for entry/exit timing.",
        formatter_class=FMT,
    )
    a.add_argument("csv", help="the AGCO store list (.csv)")
    a.add_argument("--out", required=True, help=OUT_HELP)
    a.add_argument(
        "--snapshot",
        default=None,
        metavar="YYYY-MM-DD",
        help="date the list was taken (default: latest 'Public Notice Period: Ended' date in it, a lower bound)",
    )
    a.add_argument(
        "--dates",
        default=None,
        metavar="CSV",
        help="optional CSV with licence, opened_on, closed_on (YYYY-MM-DD) giving real store dates",
    )
    a.set_defaults(
        func=import_handler(
            "adapters.agco:import_agco", lambda f, a: f(a.csv, a.out, snapshot=a.snapshot, dates=a.dates)
        )
    )

    p = dsub.add_parser(
        "import-pos",
        help="a retailer point-of-sale CSV export + YAML mapping -> stores + sales",
        description="Convert a retailer point-of-sale export (any CSV layout) into stores + sales, using a YAML "
        "mapping file that names the source columns (date, store, category, revenue, grams, store attributes),\n"
        "the date format (strftime), currency, decimal/thousands separators, a category mapping (with an\n"
        "optional default), an optional tax rate to strip and an optional separate stores CSV.\n\n"
        "Rows sharing (date, store, category) are summed. Errors name the source file, column and rows.\n"
        "Large exports are streamed (memory follows the number of day x store x category rows).\n"
        "Example: data/examples/pos_mapping.example.yml with data/examples/pos_export.example.csv",
        formatter_class=FMT,
    )
    p.add_argument(
        "csv",
        nargs="+",
        help="the POS export (.csv); a split export: several files, a folder of .csv files or a quoted glob "
        "such as 'exports/*.csv' (all summed as one export)",
    )
    p.add_argument(
        "--mapping", required=True, metavar="MAPPING.yml", help="YAML mapping file (see the example)"
    )
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help="Dask scheduler address (tcp://host:8786): each file is aggregated on a worker, which must see "
        "the same paths; results are combined here",
    )
    p.set_defaults(
        func=import_handler(
            "adapters.pos:import_pos", lambda f, a: f(a.csv, a.mapping, a.out, scheduler=a.scheduler)
        )
    )

    f = dsub.add_parser(
        "fetch-statcan",
        help="download a Statistics Canada table (web data service) into a series dataset",
        description="Download a table from Statistics Canada's Web Data Service (full-table CSV zip), keep the "
        "relevant rows and convert them into a series dataset (values in dollars):\n\n"
        "  20100056      20-10-0056-01 monthly retail sales, cannabis retailers (metric sales)\n"
        "  retail-total  20-10-0056-01 monthly retail sales, total retail trade (metric retail_sales)\n"
        "  10100164      10-10-0164-01 cannabis sales by type, fiscal years dated April 1\n"
        "                (manifest period: fiscal_year)\n\n"
        "Offline: exits with status 2 and says how to download the file by hand; use --file with it.\n"
        "StatCan revises earlier months (first releases differ by up to ~10%); the manifest records the vintage.",
        formatter_class=FMT,
    )
    f.add_argument("--out", required=True, help=OUT_HELP)
    f.add_argument(
        "--table",
        choices=["20100056", "10100164", "retail-total"],
        default="20100056",
        help="which table (default 20100056)",
    )
    f.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="network timeout in seconds (default 60)"
    )
    f.add_argument(
        "--file",
        default=None,
        metavar="ZIP_OR_CSV",
        help="use a table zip/CSV downloaded by hand instead of the network",
    )
    f.add_argument(
        "--adjustment",
        choices=["unadjusted", "seasonally_adjusted", "both"],
        default="unadjusted",
        help="20-10-0056 rows to keep (default unadjusted)",
    )
    f.set_defaults(
        func=import_handler(
            "adapters.statcan_fetch:fetch_statcan",
            lambda f, a: f(
                a.out,
                table=a.table,
                timeout=a.timeout,
                file=a.file,
                adjustment=a.adjustment,
                progress=progress,
            ),
        )
    )
