"""What a report notebook imports: one module, a handful of one-line helpers.

    from cannabis_market.reports import nb
    nb.setup(min_stores=min_stores, dominance=dominance)   # first code cell after the parameters
    nb.show(df)            # table (escaped, store rows refused) -- or nb.table(df, caption=..., formats=...)
    nb.chart(my_chart)     # altair chart, offline + interactive in the report
    nb.record("lost_revenue_cad", lost)   # headline figure -> results.json
    safe = nb.aggregate_safely(ds.sales, by=["region"], value="revenue")

Interactively (JupyterLab) ``setup`` leaves altair's normal renderer alone and ``record`` is a no-op with a
note, so the same notebook runs in both places.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from typing import Any

import yaml

from cannabis_market.errors import InputError
from cannabis_market.reports.html import chart, enable_offline_renderer, show, table, text
from cannabis_market.reports.paths import dataset_path
from cannabis_market.reports.results import RESULTS_ENV, record, record_many
from cannabis_market.reports.safe import (
    aggregate_safely,
    assert_no_store_rows,
    assert_safe,
    has_store_rows,
    policy,
    set_policy,
    suppress,
)

REPORT_ENV = "CM_REPORT"

__all__ = [
    "aggregate_safely",
    "as_list",
    "assert_no_store_rows",
    "assert_safe",
    "chart",
    "current_policy",
    "dataset_path",
    "in_report",
    "record",
    "record_many",
    "set_policy",
    "setup",
    "show",
    "suppress",
    "table",
    "text",
]


def in_report() -> bool:
    """True when the notebook is being executed by ``cannabis-market report``."""
    return os.environ.get(REPORT_ENV) == "1" or bool(os.environ.get(RESULTS_ENV))


def setup(
    *, min_stores: int | None = None, dominance: float | None = None, charts: str | None = None
) -> None:
    """Prepare a notebook for reporting; call once, right after the parameters cell.

    * applies the package's altair theme;
    * sets the suppression thresholds for this run (None keeps the default 3 stores / 0.5 share);
    * when run by the report runner (or ``charts="interactive"``/``"svg"``): switches altair to the offline
      renderer and makes plain polars frames shown as a cell's last expression go through the escaped
      table renderer, which withholds frames that are not safe to share.
    Returns None (so it prints nothing as a cell's last line); ``current_policy()`` shows the thresholds.
    """
    from cannabis_market import theme

    theme.enable()
    set_policy(min_stores, dominance)
    if charts is not None or in_report():
        enable_offline_renderer(charts)
        _install_frame_formatters()
    else:  # JupyterLab / plain papermill: charts drawn by JupyterLab's own Vega, no CDN
        enable_offline_renderer("notebook")


def _install_frame_formatters() -> None:
    """In reports, polars frames displayed implicitly are escaped and store-level ones withheld."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    import polars as pl

    from cannabis_market.reports.html import table_html
    from cannabis_market.reports.safe import DisclosureError

    withheld = "store-level rows withheld from the report (column store_id); aggregate them first"
    withheld_plain = "<table withheld: not safe to share>"

    def as_html(df: pl.DataFrame) -> str:
        if has_store_rows(df):
            return f'<p class="cm-chart-refused">{withheld}</p>'
        try:
            return table_html(df, max_rows=50)
        except DisclosureError as exc:
            return f'<p class="cm-chart-refused">{html.escape(f"Table withheld: {exc}")}</p>'

    def as_text(df: pl.DataFrame, p: Any, cycle: bool) -> None:
        try:
            safe = not has_store_rows(df) and assert_safe(df) is None
        except DisclosureError:
            safe = False
        p.text(f"<table {df.height} rows x {df.width} columns>" if safe else withheld_plain)

    formatters = ip.display_formatter.formatters
    formatters["text/html"].for_type(pl.DataFrame, as_html)
    formatters["text/plain"].for_type(pl.DataFrame, as_text)


def current_policy() -> dict[str, float]:
    """The suppression thresholds in force, e.g. to quote them in the report text."""
    pol = policy()
    return {"min_stores": pol.min_stores, "dominance": pol.dominance}


def as_list(value: Any, item: Callable[[Any], Any] | None = None) -> list[Any]:
    """A list parameter given as one value still works: ``-p controls none`` gives ``["none"]``, not letters.

    papermill (and ``-p K=V``) pass a single value as a scalar where the notebook declares a list; ``list()``
    of a string splits it into characters. Strings split on commas (``"3,7,14"``; ``"[a, b]"`` is read as
    YAML), other scalars become a one-item list, None an empty one; `item` converts each element
    (``as_list(stop_days_list, int)``). Raises InputError when an element cannot be converted.
    """
    if value is None:
        items: list[Any] = []
    elif isinstance(value, str) and value.strip().startswith("["):  # a list written as text: "[a, b]"
        try:
            items = as_list(yaml.safe_load(value))
        except yaml.YAMLError as exc:
            raise InputError(f"list parameter {value!r}: not a readable list ({exc})") from None
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        items = [value]
    if item is None:
        return items
    try:
        return [item(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise InputError(f"list parameter {value!r}: an element cannot be converted ({exc})") from None
