"""The publish boundary: the one disclosure step between a report's computations and a shared artefact.

Everything that reaches the output folder passes through here:

* **In the kernel** (``nb`` calls these): ``guard_selection`` checks that the selection a notebook runs on
  (region, category, municipality, window) has at least ``min_stores`` stores and is not dominated; if not,
  the report becomes a "suppressed" page with no figures (``SuppressedSelection``). ``qualify`` decides
  whether a model output or headline figure may be published from its contributors (``Contributors``:
  store count, largest and two largest stores' shares). ``round_sig`` / ``round_text`` / ``round_spec``
  round every published number (results.json figures, table cells, numbers in text, chart data) to
  ``SIG_DIGITS`` significant digits; ``leaks_store`` spots store identifiers in free-form output.
* **In the runner**: ``publish_figures`` rounds and screens results.json figures once more,
  ``run_status`` reads the kernel's ``suppressed`` status, ``for_export`` trims a suppressed run's notebook
  to its suppression notice, and ``keep_private`` moves ``executed.ipynb`` (raw outputs, code) out of the
  shared folder into ``<out>/.cannabis-market/private/<report>/<run>/``, which the index never links.

The rules themselves (primary and secondary suppression) live in ``data.disclosure``; the thresholds in
force in ``reports.safe.policy()``.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market import format as F
from cannabis_market.data.aggregate import collect_by_period
from cannabis_market.data.disclosure import FLAG_COLUMN as FLAG
from cannabis_market.data.disclosure import MAX_SHARE_COLUMN as MAX_SHARE
from cannabis_market.data.disclosure import N_STORES_COLUMN as N_STORES
from cannabis_market.data.disclosure import TOP2_COLUMN as TOP2
from cannabis_market.data.disclosure import cell_is_safe, cell_stats, secondary_flags, suppress_cells
from cannabis_market.data.memo import FrameMemo
from cannabis_market.errors import InputError

SIG_DIGITS = 3
SUPPRESSED = "suppressed"
STATUS_KEY = "status"
GUARD_TAG = "cm-suppressed-selection"


class SuppressedSelection(Exception):
    """The selection a report runs on has too few stores (or is dominated): publish nothing."""


@dataclass(frozen=True)
class Contributors:
    """Who built a figure: how many stores, and the largest and two largest stores' shares of it."""

    n_stores: int | None
    top_share: float | None
    top2_share: float | None = None

    def safe(self) -> bool:
        """True when a figure built by these stores may be published under the policy in force."""
        from cannabis_market.reports.safe import policy

        pol = policy()
        return cell_is_safe(
            self.n_stores, self.top_share, self.top2_share, pol.min_stores, pol.dominance, pol.dominance2
        )


def worst_of(stats: pl.DataFrame | None) -> Contributors | None:
    """One ``Contributors`` for a figure resting on several cells (e.g. every day of two charted series):
    the fewest stores and the largest shares among them. None when ``stats`` is None (aggregate data)."""
    if stats is None:
        return None
    if stats.height == 0:
        return Contributors(0, None, None)
    return Contributors(
        stats[N_STORES].min() if stats[N_STORES].null_count() == 0 else None,
        stats[MAX_SHARE].max() if stats[MAX_SHARE].null_count() == 0 else None,
        stats[TOP2].max() if stats[TOP2].null_count() == 0 else None,
    )


def contributors_of(
    rows: pl.LazyFrame | pl.DataFrame, value: str = "revenue", store_col: str = "store_id"
) -> Contributors:
    """Contributors of a figure computed from these store-level rows (value summed per store)."""
    stats = cell_stats(rows, [], value, store_col)
    if stats.height == 0 or not stats[N_STORES][0]:
        return Contributors(0, None, None)
    row = stats.row(0, named=True)
    return Contributors(int(row[N_STORES]), row[MAX_SHARE], row[TOP2])


def selection_rows(
    ds: Any,
    region: str | None = "all",
    category: str | None = None,
    start: Any = None,
    end: Any = None,
    municipality: str | None = None,
) -> pl.LazyFrame | None:
    """The store-level sales rows a selection covers (None for aggregate `series` datasets)."""
    sales = getattr(ds, "sales", None)
    if sales is None:
        return None
    lf = sales.lazy()
    stores = getattr(ds, "stores", None)
    for col, want in (("region", region), ("municipality", municipality)):
        if want in (None, "", "all"):
            continue
        if stores is None:
            raise InputError(f"selecting a {col} needs the dataset's stores table")
        ids = stores.lazy().filter(pl.col(col) == want).select("store_id")
        lf = lf.join(ids, on="store_id", how="semi")
    if category not in (None, "", "all") and "category" in lf.collect_schema().names():
        lf = lf.filter(pl.col("category") == category)
    lo, hi = _date(start), _date(end)
    if lo is not None:
        lf = lf.filter(pl.col("date") >= lo)
    if hi is not None:
        lf = lf.filter(pl.col("date") <= hi)
    return lf


def _date(x: Any) -> Any:
    import datetime as dt

    if x in (None, ""):
        return None
    return x if isinstance(x, dt.date) else dt.date.fromisoformat(str(x)[:10])


def check_selection(ds: Any, **selection: Any) -> Contributors | None:
    """Contributors of the selection; raises SuppressedSelection when they may not be published.

    Aggregate datasets (no store rows) return None: their figures are already published aggregates."""
    rows = selection_rows(ds, **selection)
    if rows is None:
        return None
    who = contributors_of(rows)
    if not who.safe():
        raise SuppressedSelection(suppressed_message(selection))
    return who


def suppressed_message(selection: Mapping[str, Any] | None = None) -> str:
    """The sentence a suppressed page shows."""
    from cannabis_market.reports.safe import policy

    pol = policy()
    chosen = ", ".join(f"{k}={v}" for k, v in (selection or {}).items() if v not in (None, "", "all"))
    what = f" ({chosen})" if chosen else ""
    return (
        f"Suppressed: this selection{what} has fewer than {pol.min_stores} stores, or one store makes more "
        f"than {pol.dominance:.0%} of its sales (two stores more than {pol.dominance2:.0%}). Publishing any "
        "figure from it could disclose a single store's confidential sales, so this report shows none."
    )


# ------------------------------------------------------------------------------------------ rounding


def round_sig(value: Any, digits: int = SIG_DIGITS) -> Any:
    """Round a published number to `digits` significant digits (floats always; integers from 1,000 up,
    so small counts stay exact). Other values are returned unchanged; lists/dicts are rounded inside."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isnan(value) else F.round_sig(value, digits)
    if isinstance(value, int):
        return value if abs(value) < 10**digits else int(F.round_sig(value, digits))
    if isinstance(value, Mapping):
        return {k: round_sig(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_sig(v, digits) for v in value]
    return value


_MONEY_RE = re.compile(r"(?P<pre>(?:CA|US)?\$\s?)(?P<num>\d[\d,]*(?:\.\d+)?)(?P<suf>\s?[kKMB]\b)?")
_LONG_RE = re.compile(r"(?<![\w.\-/:])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{5,}(?:\.\d+)?)(?![\w\-/:])")


_DEC_RE = re.compile(r"(?<![\w.,])\d+\.\d+(?![\w.]|,\d)")


def _sig_text(num: str, digits: int) -> str:
    raw = num.replace(",", "")
    x = float(raw)
    if x == 0:
        return num
    r = float(f"{x:.{digits}g}")
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(r)))))
    if "." not in raw:
        decimals = 0
    text = f"{r:,.{decimals}f}" if "," in num or r >= 1e4 else f"{r:.{decimals}f}"
    return text


def round_text(text: str, digits: int = SIG_DIGITS) -> str:
    """Round money amounts (``CA$1,234,567``, ``$12.34M``), long numbers (``1,234,567``) and decimals
    (``16.8214``) in text to `digits` significant digits. Years, dates and versions are left alone."""
    text = _MONEY_RE.sub(
        lambda m: m.group("pre") + _sig_text(m.group("num"), digits) + (m.group("suf") or ""), text
    )
    text = _LONG_RE.sub(lambda m: _sig_text(m.group("num"), digits), text)
    return _DEC_RE.sub(lambda m: _sig_dec(m.group(0), digits), text)


def _sig_dec(num: str, digits: int) -> str:
    if len(num.replace(".", "").lstrip("0")) <= digits:
        return num
    return f"{float(num):.{digits}g}" if "e" not in f"{float(num):.{digits}g}" else num


def round_spec(spec: Any, digits: int = SIG_DIGITS) -> Any:
    """A chart spec with every number in its inline data rounded (axes and encodings untouched)."""
    if not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    if isinstance(out.get("datasets"), Mapping):
        out["datasets"] = {k: _round_records(v, digits) for k, v in out["datasets"].items()}
    data = out.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("values"), list):
        out["data"] = {**data, "values": _round_records(data["values"], digits)}
    for key in ("layer", "hconcat", "vconcat", "concat"):
        if isinstance(out.get(key), list):
            out[key] = [round_spec(s, digits) for s in out[key]]
    if isinstance(out.get("spec"), Mapping):
        out["spec"] = round_spec(out["spec"], digits)
    return out


def _round_records(records: Any, digits: int) -> Any:
    if not isinstance(records, list):
        return records
    return [
        {k: round_sig(v, digits) for k, v in r.items()} if isinstance(r, Mapping) else round_sig(r, digits)
        for r in records
    ]


# ------------------------------------------------------------------------------------------ free-form


def leaks_store(obj: Any, store_ids: Iterable[str] = ()) -> bool:
    """True when a free-form output names a store: a ``store_id`` field/column, or a known store id."""
    from cannabis_market.reports.safe import has_store_rows

    ids = set(store_ids)
    if has_store_rows(obj):
        return True
    if isinstance(obj, Mapping):
        return any(
            str(k).lower() == "store_id" or str(k) in ids or leaks_store(v, ids) for k, v in obj.items()
        )
    if isinstance(obj, list | tuple | set | frozenset):
        return any(leaks_store(v, ids) for v in obj)
    if isinstance(obj, str):
        return "store_id" in obj.lower() or bool(ids and ids.intersection(re.findall(r"[\w\-]+", obj)))
    return False


# ------------------------------------------------------------------------------------------ runner side


def publish_figures(figures: Mapping[str, Any], store_ids: Iterable[str] = ()) -> dict[str, Any]:
    """results.json figures as published: rounded; any figure that names a store is dropped."""
    ids = list(store_ids)
    return {str(k): round_sig(v) for k, v in figures.items() if not leaks_store({k: v}, ids)}


def run_status(kernel_results: Mapping[str, Any], error: str | None) -> str:
    """``failed`` on error, ``suppressed`` when the notebook's selection was suppressed, else ``ok``."""
    if error is not None:
        return "failed"
    return SUPPRESSED if kernel_results.get(STATUS_KEY) == SUPPRESSED else "ok"


def for_export(nb: Any, status: str) -> Any:
    """The notebook as it may be exported: a suppressed run keeps only its title and the suppression
    notice (every later cell, markdown included, is dropped)."""
    if status != SUPPRESSED:
        return nb
    keep = []
    for cell in nb.cells:
        keep.append(cell)
        if any(GUARD_TAG in str(o.get("data", {}).get("text/html", "")) for o in cell.get("outputs", [])):
            break
    nb.cells = keep
    return nb


def keep_private(notebook: Path, private_dir: Path) -> Path | None:
    """Move the executed notebook out of the shared run folder into the run's private folder (the runner's
    ``layout.private_for``: under ``<out>/.cannabis-market/private/``, never linked from the index).
    Returns its new path (None if there was none)."""
    notebook = Path(notebook)
    if not notebook.is_file():
        return None
    target = Path(private_dir) / notebook.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(notebook), str(target))
    return target


# ------------------------------------------------------------------------------------------ breakdowns


_CELLS = FrameMemo("selection_stats", entries=4)


def selection_stats(
    ds: Any, by: Sequence[str], freq: str | None = None, **selection: Any
) -> pl.DataFrame | None:
    """Cell statistics (``n_stores``, ``max_share``, ``top2_share``) of a selection broken down by store
    attributes ``by`` (region, municipality, category) and, with ``freq`` ("month", "year"), by period
    (column ``period``). None for aggregate datasets.

    The selection's sales are read once per process (for a loaded dataset, `Dataset.content_key`): its
    revenue per store and month (day with ``freq="day"``) and sales column of ``by``, from which every
    breakdown is summed."""
    rows = selection_rows(ds, **selection)
    if rows is None:
        return None
    names = rows.collect_schema().names()
    attrs = [b for b in by if b not in names]
    stores = getattr(ds, "stores", None)
    if attrs and stores is None:
        raise InputError(f"breaking down by {attrs} needs the dataset's stores table")
    trunc = {"month": "1mo", "year": "1y", "day": "1d"}[freq] if freq else None
    own = tuple(b for b in by if b in names)
    grain = "day" if trunc == "1d" else "month"

    def per_store() -> pl.DataFrame:
        by_grain = collect_by_period(rows, grain, [*own, "store_id"], [pl.col("revenue").sum()])
        return by_grain.rename({"period": "__grain"})

    content = getattr(ds, "content_key", None)
    content = content() if callable(content) else None
    key = None if content is None else (content, _selection_key(selection), grain, own)
    cells = _CELLS.get(key, per_store).lazy()
    if attrs:
        cells = cells.join(stores.lazy().select("store_id", *attrs), on="store_id", how="left")
    keys = list(by)
    if trunc:
        cells = cells.with_columns(pl.col("__grain").dt.truncate(trunc).alias("period"))
        keys = ["period", *keys]
    return cell_stats(cells, keys)


def _selection_key(selection: Mapping[str, Any]) -> tuple[Any, ...]:
    """The rows `selection_rows` keeps, as a key: 'all' for no filter, dates parsed."""

    def one(name: str) -> Any:
        v = selection.get(name)
        return "all" if v in (None, "", "all") else v

    return (
        one("region"),
        one("category"),
        one("municipality"),
        _date(selection.get("start")),
        _date(selection.get("end")),
    )


def protect_breakdown(
    table: pl.DataFrame,
    stats: pl.DataFrame,
    *,
    label: str,
    money: Sequence[str],
    counts: Sequence[str] = (),
    weight: str | pl.Expr | None = None,
    total_label: str | None = "All",
    groups: Sequence[str] = (),
) -> pl.DataFrame:
    """A breakdown table (rows ``label``, optionally a ``total_label`` row, per ``groups`` e.g. period)
    made safe to share with contributor ``stats`` (from ``selection_stats``, keyed like the table).

    A row whose contributors fail the rules, or whose money value is already withheld, is suppressed;
    then secondary suppression (on ``weight``, default the first money column) hides further rows so none
    can be recovered from the total row or the shown total. ``money`` and ``counts`` columns of suppressed
    rows become null; a ``suppressed`` column flags them.
    """
    from cannabis_market.reports.safe import policy

    pol = policy()
    keys = [*groups, label]
    stat_cols = [N_STORES, MAX_SHARE, TOP2]
    stats = stats.select(*keys, *stat_cols)
    is_total = pl.col(label) == total_label if total_label is not None else pl.lit(False)
    w = weight if isinstance(weight, pl.Expr) else pl.col(weight or money[0])
    t = (
        table.with_row_index("__row")
        .join(stats, on=keys, how="left")
        .with_columns(w.cast(pl.Float64).alias("__w"), is_total.alias("__total"))
    )
    withheld = pl.any_horizontal([pl.col(c).is_null() for c in money])
    t = suppress_cells(
        t.with_columns(
            pl.when(withheld).then(pl.lit(None, pl.UInt32)).otherwise(pl.col(N_STORES)).alias(N_STORES)
        ),
        [],
        pol.min_stores,
        pol.dominance,
        dominance2=pol.dominance2,
        keep_share=True,
    )
    parts = t.filter(~pl.col("__total"))
    flags = dict(zip(t["__row"].to_list(), [False] * t.height, strict=True))
    for part in parts.partition_by(list(groups), maintain_order=True) if groups else [parts]:
        new = secondary_flags(
            part["__w"].to_list(),
            part[N_STORES].to_list(),
            part[MAX_SHARE].to_list(),
            part[FLAG].to_list(),
            part[TOP2].to_list(),
            disjoint=label in ("region", "municipality", "chain", "group"),
            min_stores=pol.min_stores,
            dominance=pol.dominance,
            dominance2=pol.dominance2,
        )
        flags.update(zip(part["__row"].to_list(), new, strict=True))
    flag = pl.Series(FLAG, [flags[r] for r in t["__row"].to_list()], dtype=pl.Boolean)
    hide = [*money, *counts]
    return (
        t.with_columns(flag)
        .with_columns([pl.when(pl.col(FLAG)).then(None).otherwise(pl.col(c)).alias(c) for c in hide])
        .sort("__row")
        .drop("__row", "__w", "__total", *stat_cols)
    )


def protect_prices(inputs: Any, ds: Any, **selection: Any) -> Any:
    """Price inputs with every period whose sellers fail the rules dropped from the price series (each
    period of the charted series is a cell), and the latest price taken from the last published period.
    Aggregate datasets are returned unchanged."""
    import dataclasses

    stats = selection_stats(ds, [], freq="month", **selection)
    if stats is None or "period" not in inputs.prices.columns:
        return inputs
    pol_ok = [Contributors(r[N_STORES], r[MAX_SHARE], r[TOP2]).safe() for r in stats.iter_rows(named=True)]
    ok = stats.select("period").filter(pl.Series(pol_ok, dtype=pl.Boolean))
    prices = inputs.prices.join(ok, on="period", how="semi").sort("period")
    if prices.height == 0:
        raise SuppressedSelection(suppressed_message(selection))
    return dataclasses.replace(inputs, prices=prices, latest_price=float(prices["price_per_g"][-1]))


def protect_saturation(sat: Any, ds: Any, **selection: Any) -> Any:
    """A growth saturation result with its region (group) table, its sales-per-store series and its
    municipality density table made safe to share: primary rules from the stores' sales in the selection,
    secondary suppression against the 'All' row (and, for municipalities, against their region)."""
    import dataclasses

    by = getattr(sat, "by", "region")
    stats = selection_stats(ds, [by], **selection)
    if stats is None:
        return sat
    stats = stats.rename({by: "group"})
    money = [c for c in ("sales_per_store", "sales") if c in sat.at_risk.columns]
    counts = [c for c in ("stores_at_risk", "share_at_risk") if c in sat.at_risk.columns]
    at_risk = protect_breakdown(
        sat.at_risk,
        stats,
        label="group",
        money=money,
        counts=counts,
        weight=pl.col("sales_per_store") * pl.col("stores_open"),
    )
    monthly = selection_stats(ds, [by], freq="month", **selection).rename({by: "group"})
    ot = sat.over_time.with_columns(pl.col("period").cast(pl.Date))
    over_time = protect_breakdown(
        ot,
        monthly,
        label="group",
        money=[c for c in ("sales", "sales_per_store") if c in ot.columns],
        weight="sales" if "sales" in ot.columns else None,
        groups=["period"],
    )
    density = sat.density
    if density is not None and "municipality" in density.columns and getattr(ds, "stores", None) is not None:
        regions = ds.stores.lazy().select("municipality", "region").unique("municipality").collect()
        mstats = selection_stats(ds, ["municipality"], **selection)
        dens = density.join(regions, on="municipality", how="left")
        w = pl.col("sales_per_store") * pl.col("stores_open")
        density = protect_breakdown(
            dens,
            mstats.join(regions, on="municipality", how="left"),
            label="municipality",
            money=["sales_per_store"],
            weight=w,
            total_label=None,
            groups=["region"],
        ).drop("region")
    return dataclasses.replace(sat, at_risk=at_risk, over_time=over_time, density=density)
