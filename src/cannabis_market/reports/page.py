"""Page furniture of a shared report: contents, CSV downloads of shown tables, banners, print, PDF.

All of it works on the exported HTML page, after the publish step: a CSV download carries exactly the
cells the table shows (suppressed cells stay "suppressed"), so it can reveal nothing the page does not.
Nothing here loads from the network; the PDF is printed by a local headless Chromium when one exists.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from cannabis_market.errors import InputError

PAGE_CSS = """
.cm-toc{border:1px solid var(--line);border-radius:6px;padding:8px 14px;margin:0 0 18px;background:#fafbfb}
.cm-toc ol{margin:.2em 0 .2em .4em;padding:0;list-style:none}.cm-toc li{margin:.1em 0}
.cm-toc-title{font-weight:600}
.cm-download{font-size:12.5px;margin:-.6em 0 1em}.cm-download a{text-decoration:none}
.cm-synthetic{border:2px solid #c4a000;background:#fff9db;color:#4d3f00;border-radius:6px;padding:8px 14px;
  margin:0 0 16px;font-weight:600;letter-spacing:.02em}
.cm-findings{border-left:4px solid var(--accent);background:#f3f8f6;padding:8px 16px;margin:0 0 18px}
.cm-findings h2{margin:.3em 0 .4em;font-size:1.15em}
.cm-params{font-size:12.5px;color:var(--muted);margin:0 0 16px}
details.cm-appendix{border-top:1px solid var(--line);margin-top:28px;padding-top:6px}
details.cm-appendix>summary{cursor:pointer;font-weight:600}
@media print{.cm-toc,.cm-download{display:none}details.cm-appendix>*{display:block}
  .cm-chart,.cm-table-wrap,table,figure{break-inside:avoid}h2,h3{break-after:avoid}
  body{font-size:11pt}a{color:inherit;text-decoration:none}}
"""

_H2_RE = re.compile(r"<h2\b([^>]*)>(.*?)</h2>", re.S | re.I)
_ID_RE = re.compile(r"""\bid\s*=\s*["']([^"']+)["']""")
_TAG_RE = re.compile(r"<[^>]+>")


_SCRIPT_RE = re.compile(r"<script\b.*?</script\s*>", re.S | re.I)


def _sub_outside_scripts(pattern: re.Pattern, repl: Any, page: str, count: int = 0) -> str:
    """``pattern.sub`` on the page's markup only: script bodies (the Vega bundle holds '<h2>', '</head>',
    '</table>' in its strings) are left byte for byte."""
    out, pos, done = [], 0, 0
    for m in [*_SCRIPT_RE.finditer(page), None]:
        end = m.start() if m else len(page)
        left = 0 if not count else count - done
        if count and left <= 0:
            out.append(page[pos:end])
        else:
            seg, n = pattern.subn(repl, page[pos:end], count=left)
            done += n
            out.append(seg)
        if m:
            out.append(m.group(0))
            pos = m.end()
    return "".join(out)


def _insert_after(page: str, marker: str, text: str, fallback: str = "<main>") -> str:
    """Insert `text` after the first `marker` (else after `fallback`) outside scripts; unchanged if neither."""
    for tag in (marker, fallback):
        pattern = re.compile(re.escape(tag))
        if _sub_outside_scripts(pattern, "", page, count=1) != page:
            return _sub_outside_scripts(pattern, lambda m: m.group(0) + text, page, count=1)
    return page


def _plain(fragment: str) -> str:
    return html.unescape(_TAG_RE.sub("", fragment)).replace("\u00b6", "").strip()


def add_toc(page: str, min_sections: int = 3) -> str:
    """Insert a table of contents (the page's h2 sections) after the first h1 when there are enough."""
    sections: list[tuple[str, str]] = []

    def number(match: re.Match) -> str:
        attrs, inner = match.group(1), match.group(2)
        found = _ID_RE.search(attrs)
        anchor = found.group(1) if found else f"cm-section-{len(sections) + 1}"
        sections.append((anchor, _plain(inner)))
        if found:
            return match.group(0)
        return f'<h2{attrs} id="{anchor}">{inner}</h2>'

    page = _sub_outside_scripts(_H2_RE, number, page)
    if len(sections) < min_sections or 'class="cm-toc"' in page:
        return page
    items = "".join(
        f'<li><a href="#{html.escape(a, quote=True)}">{html.escape(t)}</a></li>' for a, t in sections
    )
    toc = f'<nav class="cm-toc" aria-label="Contents"><span class="cm-toc-title">Contents</span><ol>{items}</ol></nav>'
    if 'class="cm-params"' in page:  # after the title, key findings and parameter line
        return _sub_outside_scripts(
            re.compile(r'<p class="cm-params">.*?</p>', re.S),
            lambda m: m.group(0) + "\n" + toc,
            page,
            count=1,
        )
    return _insert_after(page, "</h1>", "\n" + toc)


class _TableCells(HTMLParser):
    """Collect the visible text of every cm-table, row by row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._depth = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table":
            if "cm-table" in classes and self._depth == 0:
                self.tables.append([])
                self._depth = 1
            elif self._depth:
                self._depth += 1
        elif self._depth == 1:
            if tag == "tr":
                self._row = []
            elif tag in ("td", "th") and self._row is not None:
                self._cell = []
            elif tag == "caption":
                self._in_caption = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1
        elif self._depth == 1:
            if tag in ("td", "th") and self._cell is not None and self._row is not None:
                self._row.append("".join(self._cell).strip())
                self._cell = None
            elif tag == "tr" and self._row is not None:
                self.tables[-1].append(self._row)
                self._row = None
            elif tag == "caption":
                self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._in_caption:
            self._cell.append(data)


def _csv(rows: list[list[str]]) -> str:
    def quote(value: str) -> str:
        if any(ch in value for ch in ',"\n\r') or value[:1] in "=+-@":
            value = value if value[:1] not in "=+@" else "'" + value  # no spreadsheet formulas
            return '"' + value.replace('"', '""') + '"'
        return value

    return "\r\n".join(",".join(quote(c) for c in row) for row in rows) + "\r\n"


def add_csv_downloads(page: str, stem: str = "table") -> str:
    """Put a 'Download CSV' link under every shown table, carrying exactly the cells the table shows."""
    parser = _TableCells()
    parser.feed(page)
    tables = iter(parser.tables)
    counter = iter(range(1, 10_000))
    safe_stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "table"

    def link(match: re.Match) -> str:
        rows = next(tables, None)
        if not rows:
            return match.group(0)
        uri = "data:text/csv;charset=utf-8," + urllib.parse.quote(_csv(rows))
        name = f"{safe_stem}-{next(counter)}.csv"
        return (
            match.group(0)
            + f'<p class="cm-download"><a download="{html.escape(name, quote=True)}" href="{uri}">'
            + "Download this table as CSV</a></p>"
        )

    return _sub_outside_scripts(re.compile(r"</table>(?!\s*<p class=\"cm-download\")"), link, page)


def is_synthetic(manifest: Mapping[str, Any] | None) -> bool:
    """True when the dataset's manifest says it is generated, not real."""
    return bool(manifest) and str(manifest.get("source", "")).lower() == "synthetic"


def synthetic_banner(manifest: Mapping[str, Any] | None) -> str:
    """The banner every report on generated data carries at the top ('' for real data)."""
    if not is_synthetic(manifest):
        return ""
    name = html.escape(str(manifest.get("name", "generated")))  # type: ignore[union-attr]
    return (
        f'<div class="cm-synthetic" role="note">SYNTHETIC DATA — the dataset “{name}” is generated with known '
        "ground truth for testing and illustration. No figure on this page is a real store's or market's.</div>"
    )


def add_furniture(page: str, *, manifest: Mapping[str, Any] | None = None, stem: str = "table") -> str:
    """Stylesheet, synthetic-data banner, contents and CSV downloads, in one pass over an exported page."""
    if "cm-page-css" not in page:
        style = f'<style type="text/css" id="cm-page-css">{PAGE_CSS}</style>\n'
        head_end = re.compile(r"</head>", re.I)
        with_style = _sub_outside_scripts(head_end, lambda m: style + m.group(0), page, count=1)
        page = with_style if with_style != page else style + page
    banner = synthetic_banner(manifest)
    if banner and 'class="cm-synthetic"' not in page:
        page = _insert_after(page, "<main>", "\n" + banner)
    return add_csv_downloads(add_toc(page), stem=stem)


_FINDINGS_RE = re.compile(r'<div class="cm-findings\b[^"]*"[^>]*>.*?</ul></div>', re.S)


def lift_top(body: str, params_html: str) -> str:
    """Move the key-findings box (and put the parameter line) right after the page's title."""
    found = _FINDINGS_RE.search(body, max(0, body.find("<main>")))
    findings = ""
    if found:
        findings = found.group(0)
        body = body[: found.start()] + body[found.end() :]
    top = findings + params_html
    if not top:
        return body
    end_h1 = body.find("</h1>", max(0, body.find("<main>")))
    if end_h1 < 0:
        return re.sub(r"<main>\n?", lambda m: m.group(0) + top, body, count=1)
    end_h1 += len("</h1>")
    return body[:end_h1] + "\n" + top + body[end_h1:]


def _param_value(key: str, value: Any) -> str:
    """A parameter value in a few characters: a dataset folder by its name, lists comma-separated."""
    if key == "dataset" and isinstance(value, str):
        return value.rstrip("/").rsplit("/", 1)[-1] or value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    if value in ("", None):
        return "none"
    return str(value)


def params_html(params: Mapping[str, Any]) -> str:
    """The values a report ran with, as one compact line for the top of the page (escaped)."""
    items = "; ".join(
        f"<span><code>{html.escape(str(k))}</code>\u00a0{html.escape(_param_value(str(k), v))}</span>"
        for k, v in params.items()
    )
    return f'<p class="cm-params">Run with: {items}</p>'


def chromium() -> str | None:
    """Path of a headless-capable Chromium, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html_path: str | Path, pdf_path: str | Path, timeout: float = 120.0) -> Path:
    """Print a report page to PDF with local headless Chromium (no network); InputError if none is installed."""
    exe = chromium()
    if exe is None:
        raise InputError(
            "--pdf: no Chromium found on PATH (looked for chromium, chromium-browser, google-chrome); "
            "install it (Debian: apt-get install chromium, or `make browser`) or leave out --pdf"
        )
    src, dest = Path(html_path).resolve(), Path(pdf_path)
    tmp = dest.with_name(f".{dest.name}.partial")
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-pdf-header-footer",
        f"--print-to-pdf={tmp}",
        "--virtual-time-budget=10000",
        src.as_uri(),
    ]
    try:
        subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"Chromium did not finish printing {src} within {timeout:.0f} s") from exc
    if not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"Chromium printed no PDF for {src}")
    tmp.replace(dest)
    return dest
