"""``reports/index.html``: one offline page listing every run found under the output folder."""

from __future__ import annotations

import datetime as dt
import html
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

INDEX_FILE = "index.html"

_CSS = """
body{margin:0;font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2125}
main{max-width:1100px;margin:0 auto;padding:24px 28px 40px}h1{font-size:1.6em;margin:.2em 0 .3em}
p.sub{color:#5f6b73;margin:0 0 1.2em}table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 10px;border-bottom:1px solid #dfe3e6;text-align:left;vertical-align:top}
th{border-bottom:2px solid #b9c1c6}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed{background:#fdf0ef}.status{font-weight:600}.ok .status{color:#1b6e5a}.failed .status{color:#b0413e}
.err{color:#5a1d1b;font-size:12.5px;white-space:pre-wrap}.figs{color:#5f6b73;font-size:12.5px}
a{color:#1b6e5a}
"""


def _params_text(given: Any) -> str:
    if not given:
        return "defaults"
    if isinstance(given, dict):
        return ", ".join(f"{k}={v}" for k, v in given.items())
    return str(given)


def _figures_text(figures: Any, limit: int = 4) -> str:
    if not isinstance(figures, dict) or not figures:
        return ""
    items = list(figures.items())
    parts = []
    for k, v in items[:limit]:
        if isinstance(v, float):
            v = f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"
        parts.append(f"{k}={v}")
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(parts) + more


def _when(stamp: Any) -> str:
    try:
        return dt.datetime.fromisoformat(str(stamp)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(stamp or "")


def render_index(out_root: str | Path) -> str:
    """HTML of the index page (no scripts, no external references, every text escaped)."""
    from cannabis_market.reports.runner import HTML_FILE, iter_results

    root = Path(out_root)
    rows = []
    n_ok = n_failed = 0
    for run_dir, data in iter_results(root):
        status = str(data.get("status", "?"))
        failed = status not in ("ok", "suppressed")
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
            f"<td>{html.escape(str(data.get('report', run_dir.parent.name)))}</td>"
            f"<td>{html.escape(_params_text(data.get('given')))}</td>"
            f'<td class="status">{html.escape("FAILED" if failed else status)}{err}</td>'
            f'<td class="num">{html.escape(dur_text)}</td>'
            f"<td>{html.escape(_when(data.get('finished_at')))}</td>"
            f'<td class="figs">{html.escape(_figures_text(data.get("figures")))}</td>'
            f"<td>{link}</td></tr>"
        )
    generated = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    summary = f"{n_ok} ok, {n_failed} failed \u00b7 index generated {generated}"
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


def write_index(out_root: str | Path) -> Path:
    """Write ``<out_root>/index.html`` atomically and return its path."""
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    page = render_index(root)
    target = root / INDEX_FILE
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import (os.umask can only be read by setting it)
