"""``reports/index.html``: one offline page listing every run found under the output folder."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cannabis_market.reports.layout import FAILURE_DIR, HTML_FILE, SUCCESS, iter_results, write_text_atomic

INDEX_FILE = "index.html"

_CSS = """
body{margin:0;font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2125}
main{max-width:1100px;margin:0 auto;padding:24px 28px 40px}h1{font-size:1.6em;margin:.2em 0 .3em}
p.sub{color:#5f6b73;margin:0 0 1.2em}table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 10px;border-bottom:1px solid #dfe3e6;text-align:left;vertical-align:top}
th{border-bottom:2px solid #b9c1c6}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed{background:#fdf0ef}.status{font-weight:600}.ok .status{color:#1b6e5a}.failed .status{color:#b0413e}
.err{color:#5a1d1b;font-size:12.5px;white-space:pre-wrap}.figs{color:#5f6b73;font-size:12.5px}
a{color:#1b6e5a}.desc{color:#5f6b73;font-size:12.5px}
td.figs{min-width:250px;color:#1d2125}td.params{font-size:12.5px;color:#5f6b73;word-break:break-word;max-width:260px}tr.skipped{color:#5f6b73}
"""


def _params_text(given: Any) -> str:
    if not given:
        return "defaults"
    if isinstance(given, dict):  # a dataset folder by its name: the full path is in results.json
        return ", ".join(
            f"{k}={Path(v).name if k == 'dataset' and isinstance(v, str) else v}" for k, v in given.items()
        )
    return str(given)


# Figure names -> how a reader is told them. Units are inferred from the name (the notebooks' conventions):
# `x`, `x_lo`, `x_hi` are a point and its interval; money, shares/rates, p-values and counts by name.
_NAMES = {
    "total_sales": "Total sales",
    "sales_per_store_latest": "Sales per store (latest month)",
    "stores_open_latest": "Stores open (latest month)",
    "lost_sales": "Lost sales",
    "rel_effect": "Relative effect",
    "p_value": "p",
    "carrying_capacity": "Store ceiling",
    "stores_at_risk": "Stores below break-even",
    "cannibalization_elasticity": "Cannibalization elasticity",
    "price_per_g_latest": "Price per gram (latest)",
    "price_change_annual": "Price change per year",
    "price_elasticity": "Price elasticity",
}
_MONEY = ("sales", "revenue", "price_per_g", "cost", "_cad", "_usd", "money")
_SHARE = ("rel_effect", "share", "_change", "_pct", "rate")


def _unit(name: str) -> str:
    if name == "p_value" or name.endswith("_p"):
        return "p"
    if "elasticity" in name:
        return "number"
    if any(k in name for k in _SHARE):
        return "share"
    if any(k in name for k in _MONEY) and not name.startswith(("stores_", "n_")):
        return "money"
    if name.startswith(("stores_", "n_")) or "capacity" in name or name.endswith("_count"):
        return "count"
    return "number"


def _fmt_value(name: str, value: Any, currency: str | None) -> str:
    from cannabis_market import format as F

    if value is None:
        return "withheld"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    unit = _unit(name)
    if unit == "money":
        per = " per g" if "per_g" in name else ""
        return F.fmt_money(value, currency=currency or "CAD") + per
    if unit == "share":
        return F.fmt_pct(value, signed=True)
    if unit == "p":
        return F.fmt_p(value)
    if unit == "count":
        return F.fmt_num(value)
    return f"{value:.3g}"


def headline_figures(figures: Any, currency: str | None = None, limit: int = 4) -> list[str]:
    """Plain headline figures: 'Lost sales CA$6.65M [6.03M, 7.27M]' (interval from `x_lo`/`x_hi`)."""
    if not isinstance(figures, dict) or not figures:
        return []
    out = []
    for name, value in figures.items():
        if name.endswith(("_lo", "_hi")) and name[:-3] in figures:
            continue
        text = f"{_NAMES.get(name, name.replace('_', ' ').capitalize())} {_fmt_value(name, value, currency)}"
        lo, hi = figures.get(f"{name}_lo"), figures.get(f"{name}_hi")
        if lo is not None and hi is not None and value is not None:
            text += f" [{_fmt_value(name, lo, currency)}, {_fmt_value(name, hi, currency)}]"
        out.append(text)
    more = len(out) - limit
    return out[:limit] + ([f"+{more} more in results.json"] if more > 0 else [])


def _when(stamp: Any) -> str:
    try:
        return dt.datetime.fromisoformat(str(stamp)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(stamp or "")


JOBS_FILE = Path(".cannabis-market") / "jobs.json"


def _jobs_info(root: Path, descriptions: dict[str, str] | None, skipped: list[dict[str, str]] | None) -> dict:
    """Job descriptions and skipped jobs: as given (and then kept beside the index), else as last kept."""
    from cannabis_market.reports.results import read_json, write_json_atomic

    path = root / JOBS_FILE
    kept = read_json(path) if path.is_file() else {}
    info = {
        "descriptions": descriptions if descriptions is not None else kept.get("descriptions", {}),
        "skipped": skipped if skipped is not None else kept.get("skipped", []),
    }
    if (descriptions is not None or skipped is not None) and path.parent.is_dir():
        write_json_atomic(path, info)
    return info


def render_index(
    out_root: str | Path,
    descriptions: dict[str, str] | None = None,
    skipped: list[dict[str, str]] | None = None,
) -> str:
    """HTML of the index page (no scripts, no external references, every text escaped).

    A failed re-run kept beside its last good report gets its own row, marked as such, under it. Each
    report has its job's one-line description (``descriptions``: job name -> text); jobs skipped because
    their data are missing (``skipped``: dicts with ``report`` and ``reason``) are listed with the reason.
    """
    root = Path(out_root)
    info = _jobs_info(root, descriptions, skipped)
    desc = info["descriptions"] if isinstance(info["descriptions"], dict) else {}
    rows = []
    n_ok = n_failed = 0
    for run_dir, data in iter_results(root):
        status = str(data.get("status", "?"))
        failed = status not in SUCCESS
        n_failed += failed
        n_ok += not failed
        rel = (
            "/".join(quote(part, safe="=,+-._") for part in run_dir.relative_to(root).parts) + "/" + HTML_FILE
        )
        link = (
            f'<a href="{html.escape(rel)}">report</a>' if (run_dir / HTML_FILE).is_file() else "(no report)"
        )
        err = ""
        if failed and data.get("error"):
            err = f'<div class="err">{html.escape(str(data["error"])[:600])}</div>'
        dur = data.get("duration_s")
        dur_text = f"{float(dur):.1f} s" if isinstance(dur, int | float) else ""
        rows.append(
            f'<tr class="{"failed" if failed else "ok"}">'
            f"<td>{_report_cell(str(data.get('report', run_dir.parent.name)), desc)}</td>"
            f'<td class="params">{html.escape(_params_text(data.get("given")))}</td>'
            f'<td class="status">{html.escape(_status_text(status, failed, run_dir))}{err}</td>'
            f'<td class="num">{html.escape(dur_text)}</td>'
            f"<td>{html.escape(_when(data.get('finished_at')))}</td>"
            f'<td class="figs">{_figs_html(data)}</td>'
            f"<td>{link}</td></tr>"
        )
    skipped_rows = [
        f'<tr class="skipped"><td>{_report_cell(str(sk.get("report", "?")), desc)}</td><td></td>'
        f'<td class="status">skipped<div class="err">{html.escape(str(sk.get("reason", ""))[:600])}</div></td>'
        "<td></td><td></td><td></td><td></td></tr>"
        for sk in info["skipped"]
        if isinstance(sk, dict)
    ]
    rows += skipped_rows
    generated = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    n_skipped = f", {len(skipped_rows)} skipped" if skipped_rows else ""
    summary = f"{n_ok} ok, {n_failed} failed{n_skipped} \u00b7 index generated {generated}"
    body = (
        "<table><thead><tr><th>Report</th><th>Parameters</th><th>Status</th><th>Duration</th>"
        "<th>Finished</th><th>Headline figures</th><th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else "<p>No reports yet. Run <code>cannabis-market report</code>.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Cannabis market reports</title><style>{_CSS}</style></head>"
        f'<body><main><h1>Cannabis market reports</h1><p class="sub">{html.escape(summary)}</p>'
        f"{body}</main></body></html>\n"
    )


def _report_cell(name: str, descriptions: dict[str, str]) -> str:
    text = descriptions.get(name)
    extra = f'<div class="desc">{html.escape(str(text))}</div>' if text else ""
    return html.escape(name) + extra


def _figs_html(data: dict[str, Any]) -> str:
    items = headline_figures(data.get("figures"), data.get("currency"))
    return "<br>".join(html.escape(i) for i in items)


def _status_text(status: str, failed: bool, run_dir: Path) -> str:
    if run_dir.name == FAILURE_DIR:
        return "FAILED (last good report above kept)"
    return "FAILED" if failed else status


def write_index(
    out_root: str | Path,
    descriptions: dict[str, str] | None = None,
    skipped: list[dict[str, str]] | None = None,
) -> Path:
    """Write ``<out_root>/index.html`` atomically (temporary file in the runner's folder) and return it."""
    root = Path(out_root)
    target = root / INDEX_FILE
    write_text_atomic(target, render_index(root, descriptions, skipped), root)
    return target
