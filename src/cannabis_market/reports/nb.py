"""What a report notebook imports: one module, a handful of one-line helpers.

    from cannabis_market.reports import nb
    nb.setup(min_stores=min_stores, dominance=dominance, dominance2=dominance2)   # after the parameters
    ds = load_dataset(dataset)
    nb.guard_selection(ds, region=region)   # too few stores: a "suppressed" page, later cells skipped
    nb.show(df)            # table (escaped, store rows refused) -- or nb.table(df, caption=..., formats=...)
    nb.chart(my_chart)     # altair chart, offline + interactive in the report
    nb.record("lost_revenue_cad", lost, who=treated)   # headline figure -> results.json, if publishable
    safe = nb.aggregate_safely(ds.sales, by=["region"], value="revenue", margin=True)

Everything shown or recorded passes the publish boundary (``reports.publish``): numbers are rounded to
3 significant digits, figures whose contributors fail the rules are withheld, and in report runs free-form
output that names a store (frames, lists, dicts, ``print``) is replaced by a visible refusal.
Interactively (JupyterLab) ``setup`` leaves altair's normal renderer alone and ``record`` is a no-op with a
note, so the same notebook runs in both places.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from cannabis_market.errors import InputError
from cannabis_market.reports import publish as P
from cannabis_market.reports import results as R
from cannabis_market.reports.html import chart, enable_offline_renderer, show, table
from cannabis_market.reports.html import text as _html_text
from cannabis_market.reports.paths import dataset_path
from cannabis_market.reports.results import RESULTS_ENV
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
    "about",
    "aggregate_safely",
    "appendix",
    "findings",
    "market_name",
    "as_list",
    "assert_no_store_rows",
    "assert_safe",
    "chart",
    "current_policy",
    "contributors",
    "dataset_path",
    "guard_selection",
    "in_report",
    "record",
    "record_many",
    "set_policy",
    "setup",
    "show",
    "show_step",
    "suppress",
    "table",
    "text",
    "withheld",
]


def in_report() -> bool:
    """True when the notebook is being executed by ``cannabis-market report``."""
    return os.environ.get(REPORT_ENV) == "1" or bool(os.environ.get(RESULTS_ENV))


def setup(
    *,
    min_stores: int | None = None,
    dominance: float | None = None,
    dominance2: float | None = None,
    charts: str | None = None,
) -> None:
    """Prepare a notebook for reporting; call once, right after the parameters cell.

    * applies the package's altair theme;
    * sets the suppression thresholds for this run (None keeps the defaults 3 stores / 0.5 / 0.75 shares);
    * when run by the report runner (or ``charts="interactive"``/``"svg"``): switches altair to the offline
      renderer, makes frames, lists and dicts shown as a cell's last expression go through the publish
      boundary (store-level ones withheld), and withholds printed text that names a store.
    Returns None (so it prints nothing as a cell's last line); ``current_policy()`` shows the thresholds.
    """
    from cannabis_market import theme

    theme.enable()
    set_policy(min_stores, dominance, dominance2)
    _STATE.update(selection=None, guarded=False, store_ids=frozenset())
    if charts is not None or in_report():
        enable_offline_renderer(charts)
        _install_frame_formatters()
        _guard_stdout()
    else:  # JupyterLab / plain papermill: charts drawn by JupyterLab's own Vega, no CDN
        enable_offline_renderer("notebook")


_STATE: dict[str, Any] = {"selection": None, "guarded": False, "store_ids": frozenset()}
_WITHHELD = "output withheld from the shared report: it names a store or holds store-level rows"


def guard_selection(ds: Any, **selection: Any) -> None:
    """Check the selection the notebook runs on (``region=``, ``category=``, ``municipality=``, ``start=``,
    ``end=``) before anything is computed from it.

    Enough stores and no dominance: figures recorded later default to its contributors (returns None, so
    nothing about them is displayed).
    Otherwise the report shows one clear "suppressed" notice, results.json gets status ``suppressed``,
    and in a report run every later cell is skipped (the run still succeeds). Put it last in its cell.
    """
    stores = getattr(ds, "stores", None)
    if stores is not None:
        ids = stores.lazy().select("store_id").collect()["store_id"].to_list()
        _STATE["store_ids"] = frozenset(str(i) for i in ids)
    try:
        who = P.check_selection(ds, **selection)
    except P.SuppressedSelection as exc:
        _STATE["guarded"] = True
        _suppress_rest(str(exc))
        return
    _STATE.update(selection=who, guarded=who is not None)  # aggregate datasets: published aggregates


def contributors(ds: Any, **selection: Any) -> P.Contributors | None:
    """Contributors of a narrower cell of the data (e.g. the latest month: ``start=...``), to pass as
    ``record(..., who=...)``; None for aggregate datasets."""
    rows = P.selection_rows(ds, **selection)
    return None if rows is None else P.contributors_of(rows)


def withheld(what: str) -> None:
    """Say in the report that a section's figures are not published (too few stores, or dominated)."""
    pol = policy()
    text(
        f"{what} suppressed: built from fewer than {pol.min_stores} stores, or one store makes more than "
        f"{pol.dominance:.0%} of the sales it rests on (two stores more than {pol.dominance2:.0%})."
    )


def _suppress_rest(message: str) -> None:
    body = f'<div class="cm-banner {P.GUARD_TAG}" role="status"><p>{html.escape(message)}</p></div>'
    _display_raw({"text/html": body, "text/plain": message})
    R.set_status(P.SUPPRESSED)
    if not in_report():
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None:
        ip.input_transformers_post.append(lambda lines: ["pass\n"])


def _display_raw(bundle: dict[str, str]) -> None:
    try:
        from IPython.display import display
    except ImportError:
        print(bundle["text/plain"])
        return
    display(bundle, raw=True)


def _refuse(what: str) -> None:
    msg = f"{what}: {_WITHHELD}."
    _display_raw({"text/html": f'<p class="cm-chart-refused">{html.escape(msg)}</p>', "text/plain": msg})


def text(message: str) -> None:
    """Display a string as an escaped paragraph, its money amounts and long numbers rounded."""
    if in_report() and P.leaks_store(str(message), _STATE["store_ids"]):
        _refuse("Text")
        return
    _html_text(P.round_text(str(message)))


def record(
    name: str,
    value: Any,
    *,
    who: P.Contributors | None = None,
    stores: int | None = None,
    top_share: float | None = None,
    top2_share: float | None = None,
) -> None:
    """Record one headline figure (rounded) under ``name`` if it may be published.

    Its contributors are ``who`` (or ``stores``/``top_share``/``top2_share``), by default the guarded
    selection's. A figure whose contributors fail the rules is recorded as null; a figure that names a store
    or holds store-level rows is refused with a visible note. After ``guard_selection`` a figure with no
    known contributors is refused (DisclosureError): every published figure is a cell.
    """
    if stores is not None:
        who = P.Contributors(stores, top_share, top2_share)
    record_many({name: value}, who=who)


def record_many(figures: Mapping[str, Any], *, who: P.Contributors | None = None) -> None:
    """Record several figures at once, all built by the same contributors (see ``record``)."""
    from cannabis_market.reports.safe import DisclosureError

    who = who or _STATE["selection"]
    if who is None and _STATE["guarded"] and any(v is not None for v in figures.values()):
        raise DisclosureError(
            f"figures {', '.join(map(str, figures))}: no contributors known; pass who=/stores= to record()"
        )
    out: dict[str, Any] = {}
    for name, value in figures.items():
        if (
            P.leaks_store(value, _STATE["store_ids"])
            or P.leaks_store({name: None}, _STATE["store_ids"])
            or _per_store(value)
        ):
            _refuse(f"Figure {name!r}")
            continue
        out[name] = None if who is not None and not who.safe() else P.round_sig(R.jsonable(value))
    R.record_many(out)


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

    def other_html(obj: Any) -> str:
        if P.leaks_store(obj, _STATE["store_ids"]):
            return f'<p class="cm-chart-refused">{html.escape(_WITHHELD)}</p>'
        try:
            frame = pl.from_pandas(obj) if hasattr(obj, "to_numpy") else pl.DataFrame(obj)
            frame = frame.to_frame() if isinstance(frame, pl.Series) else frame
            return table_html(frame, max_rows=50)
        except (DisclosureError, TypeError, ValueError) as exc:
            return f'<p class="cm-chart-refused">{html.escape(f"Table withheld: {exc}")}</p>'

    def other_text(obj: Any, p: Any, cycle: bool) -> None:
        p.text(f"<{_WITHHELD}>" if P.leaks_store(obj, _STATE["store_ids"]) else P.round_text(repr(obj)))

    for type_name in ("pandas.core.frame.DataFrame", "pandas.core.series.Series"):
        module, _, name = type_name.rpartition(".")
        formatters["text/html"].for_type_by_name(module, name, other_html)
        formatters["text/plain"].for_type_by_name(module, name, other_text)
    formatters["text/html"].for_type(pl.Series, lambda s: other_html(s.to_frame()))
    for kind in (pl.Series, list, tuple, dict, set):
        formatters["text/plain"].for_type(kind, other_text)


def _per_store(value: Any) -> bool:
    """A list of as many values as the selection (or the dataset) has stores: taken for a per-store list."""
    n = (
        len(value)
        if isinstance(value, list | tuple) or hasattr(value, "__len__") and hasattr(value, "dtype")
        else 0
    )
    sizes = {len(_STATE["store_ids"])}
    who = _STATE["selection"]
    if who is not None and who.n_stores:
        sizes.add(who.n_stores)
    return n > 2 and n in sizes


class _GuardedStream:
    """sys.stdout in a report run: a write that names a store is replaced by a refusal."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, s: str) -> int:
        if P.leaks_store(str(s), _STATE["store_ids"]):
            s = f"[{_WITHHELD}]\n"
        return self._inner.write(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _guard_stdout() -> None:
    if not isinstance(sys.stdout, _GuardedStream):
        sys.stdout = _GuardedStream(sys.stdout)


def current_policy() -> dict[str, float]:
    """The suppression thresholds in force, e.g. to quote them in the report text."""
    pol = policy()
    return {"min_stores": pol.min_stores, "dominance": pol.dominance, "dominance2": pol.dominance2}


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


# ------------------------------------------------------------------ presentation (findings, about, appendix)

FINDINGS_CLASS = "cm-findings"
APPENDIX_CLASS = "cm-appendix"
_SOURCES = {"synthetic": "synthetic (generated) data", "statcan": "Statistics Canada"}


def market_name(ds: Any, region: str | None = "all") -> str:
    """The market a report is about, from the selection and the dataset's manifest ('Oregon', 'Toronto')."""
    if region not in (None, "", "all"):
        return str(region)
    manifest = getattr(ds, "manifest", None) or {}
    return str(manifest.get("region") or manifest.get("name") or "the market")


def _span(ds: Any, start: Any = None, end: Any = None) -> tuple[Any, Any]:
    """First and last date of the dataset's dated table inside [start, end] (None when unknown)."""
    import polars as pl

    from cannabis_market.dates import to_date

    lo, hi = to_date(start, "start"), to_date(end, "end")
    for name in ("sales", "series"):
        lf = getattr(ds, name, None)
        if lf is None:
            continue
        if lo is not None:
            lf = lf.filter(pl.col("date") >= lo)
        if hi is not None:
            lf = lf.filter(pl.col("date") <= hi)
        row = lf.select(pl.col("date").min().alias("a"), pl.col("date").max().alias("b")).collect()
        return row["a"][0], row["b"][0]
    return lo, hi


def about(ds: Any, *, region: str | None = "all", start: Any = None, end: Any = None) -> None:
    """Say in one line which market, source, span and currency the report covers, and make money print in
    the dataset's currency from here on (``format.set_currency(ds.manifest)``). Call right after loading."""
    from cannabis_market import format as F

    manifest = getattr(ds, "manifest", None) or {}
    F.set_currency(manifest)
    _STATE["manifest"] = dict(manifest)
    first, last = _span(ds, start, end)
    source = _SOURCES.get(
        str(manifest.get("source", "")).lower(), f"the dataset “{manifest.get('name', '?')}”"
    )
    span = f", {F.fmt_month(first)} to {F.fmt_month(last)}" if first is not None and last is not None else ""
    code = F.currency_code(manifest)
    text(
        f"Market: {market_name(ds, region)}. Data: {source}{span}. Amounts in {code} ({F.currency_symbol(code)})."
    )


def findings(sentences: Any) -> None:
    """The report's key findings (3-5 sentences, with intervals), shown in a box at the top of the page.

    Put the cell anywhere (usually last, when every figure is known): the export moves the box after the
    title. Sentences pass the same rounding and store check as ``text``; None or empty ones are dropped.
    """
    items = [str(s).strip() for s in as_list(sentences) if s is not None and str(s).strip()]
    if not items:
        return
    if in_report() and any(P.leaks_store(s, _STATE["store_ids"]) for s in items):
        _refuse("Key findings")
        return
    items = [P.round_text(s) for s in items]
    from cannabis_market.reports.html import NO_MATH

    body = "".join(f"<li>{html.escape(s)}</li>" for s in items)
    box = (
        f'<div class="{FINDINGS_CLASS} {NO_MATH}" role="note"><p class="cm-findings-title"><strong>'
        f"Key findings</strong></p><ul>{body}</ul></div>"
    )
    _display_raw({"text/html": box, "text/plain": "Key findings:\n" + "\n".join(f"- {s}" for s in items)})


def appendix(title: str, *items: Any, caption: str | None = None) -> None:
    """Diagnostics (backtests, AIC tables, ...) in a collapsed ``<details>`` block: frames become tables
    (checked like ``table``), strings paragraphs. ``caption`` titles the first table."""
    from cannabis_market.reports.html import table_html

    parts = []
    for i, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, str):
            parts.append(f'<p class="cm-text">{html.escape(P.round_text(item))}</p>')
        else:
            parts.append(table_html(item, caption=caption if i == 0 else None))
    if not parts:
        return
    block = (
        f'<details class="{APPENDIX_CLASS}"><summary>{html.escape(title)}</summary>{"".join(parts)}</details>'
    )
    _display_raw({"text/html": block, "text/plain": f"{title} (appendix)"})


def show_step(step: Any, *, who: P.Contributors | None = None) -> None:
    """Show one report step (`analysis.steps.Step`): record its figures (as ``record_many``, contributors
    ``who`` or the guarded selection's), then its report text, tables (with captions) and charts in order;
    a skipped step shows only its one-sentence reason. Protect the step's result first where it needs it
    (``step.apply(lambda r: publish.protect_saturation(r, ...))``)."""
    from cannabis_market.analysis.steps.base import Table

    figures = step.figures()
    if figures:
        record_many(figures, who=who)
    message = step.report()
    if message:
        text(message)
    for view in step.shown():
        if isinstance(view, Table) and view.diagnostic:  # backtests, AIC tables: a collapsed appendix
            appendix(f"Diagnostics: {view.caption}", view.frame, caption=view.caption)
        elif isinstance(view, Table):
            table(view.frame, caption=view.caption)
        else:
            chart(view)
