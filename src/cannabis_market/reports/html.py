"""Offline HTML: reports that open from an e-mail attachment with no network, charts included.

Three parts:

* **Charts** (``charts_html``, re-exported here). ``enable_offline_renderer()`` registers an altair renderer whose output is a ``<div>`` plus a
  few lines of JavaScript calling ``vegaEmbed`` with the chart's spec (data inlined, ``<`` escaped). It
  does *not* carry the Vega libraries: ``make_offline`` puts the bundle shipped by vl-convert-python
  (Vega + Vega-Lite + Vega-Embed, ~0.9 MB) into the page's ``<head>`` exactly once, and only when the page
  has a chart. Charts stay interactive (tooltips, SVG/PNG export). ``mode="svg"`` (or ``CM_CHART_MODE=svg``)
  renders static SVG with vl-convert instead -- no JavaScript at all, no tooltips. Outside the report runner
  (JupyterLab, plain papermill/nbconvert) ``nb.setup()`` enables ``mode="notebook"``: a Vega spec that
  JupyterLab draws with its own Vega, so no chart ever loads a script from a CDN.
* **Tables.** ``table(df)`` / ``show(obj)`` display polars frames as HTML with every string escaped, and
  refuse frames that are not safe to share (``safe.assert_safe``: store-level rows, a ``max_share``
  column, unsuppressed cells); suppressed cells read "suppressed". ``chart`` applies the same check.
* **Export.** ``export_notebook(nb)`` turns an executed notebook into one self-contained page: nbconvert's
  ``lab`` template with require.js, MathJax, Mermaid and the widget loader removed, a compact stylesheet
  instead of JupyterLab's 250 kB one, images embedded, code and prompts hidden unless ``show_code``.
  ``make_offline`` then strips any remaining remote script/style/font/image reference and
  ``external_refs`` lists what would still load from the network (the runner checks it is empty).
  Hyperlinks (``<a href="https://...">``) in narrative text are kept: they load nothing.
  Math in markdown is shown as typed (MathJax needs the network).
"""

from __future__ import annotations

import copy
import datetime as dt
import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# the chart renderers live in charts_html; names marked F401 are re-exported for callers of html
from cannabis_market.reports.charts_html import (
    BUNDLE_ATTR,  # noqa: F401
    CHART_CLASS,  # noqa: F401
    RENDERER_NOTEBOOK,  # noqa: F401
    add_vega_bundle,
    chart_html,  # noqa: F401
    check_spec,
    enable_offline_renderer,  # noqa: F401
    notebook_renderer,  # noqa: F401
    offline_renderer,  # noqa: F401
    svg_renderer,  # noqa: F401
)
from cannabis_market.reports.publish import round_sig, round_text
from cannabis_market.reports.safe import (
    FLAG_COLUMN,
    assert_safe,
    has_store_rows,
    policy,
)

NUM_ATTR = ' class="cm-num"'

# ------------------------------------------------------------------------------------------ charts


def _chart_frames(chart: Any):
    data = getattr(chart, "data", None)
    if data is not None and not isinstance(data, str | dict) and hasattr(data, "columns"):
        yield data
    for attr in ("layer", "hconcat", "vconcat", "concat"):
        for sub in getattr(chart, attr, None) or []:
            if not isinstance(sub, str | dict):
                yield from _chart_frames(sub)
    spec = getattr(chart, "spec", None)
    if spec is not None and not isinstance(spec, str | dict):
        yield from _chart_frames(spec)


def chart(obj: Any) -> None:
    """Display an altair chart after checking its data is safe to share (raises DisclosureError if not:
    store-level rows, a max_share column, or unsuppressed cells built from too few stores)."""
    for frame in _chart_frames(obj):
        assert_safe(frame, "chart's data")
    if hasattr(obj, "to_dict"):
        check_spec(obj.to_dict())
    _display(obj)
    note = _suppressed_note(obj)
    if note:
        _display(
            {"text/html": f'<p class="cm-table-note">{html.escape(note)}</p>', "text/plain": note}, raw=True
        )


def _suppressed_note(obj: Any) -> str | None:
    """Say how many points of a chart are suppressed (a null bar is invisible; the reader must know)."""
    n = total = 0
    for frame in _chart_frames(obj):
        if FLAG_COLUMN in getattr(frame, "columns", []):
            flags = list(frame[FLAG_COLUMN])
            n += sum(bool(f) for f in flags if f is not None)
            total += len(flags)
    if not n:
        return None
    pol = policy()
    return (
        f"{n} of {total} values not drawn: suppressed because built from fewer than {pol.min_stores} "
        f"stores or one store makes more than {pol.dominance:.0%} of the value (confidential)."
    )


# ------------------------------------------------------------------------------------------ tables


def _display(obj: Any, raw: bool = False) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python: just print
        print(obj.get("text/plain", obj) if raw and isinstance(obj, dict) else obj)
        return
    display(obj, raw=raw)


def _fmt_cell(value: Any, fmt: Callable[[Any], str] | str | None) -> str:
    """One table cell as published: numbers rounded to 3 significant digits (``publish.round_sig``)."""
    if value is None:
        return "\u2013"
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = round_sig(value)
    if fmt is not None:
        return fmt(value) if callable(fmt) else format(value, fmt)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "\u2013"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_fmt_cell(v, None) for v in value)
    return round_text(str(value))


def table_html(
    df: Any,
    *,
    caption: str | None = None,
    max_rows: int = 200,
    formats: Mapping[str, Callable[[Any], str] | str] | None = None,
    columns: Sequence[str] | None = None,
) -> str:
    """Escaped HTML table for a polars (or pandas) frame; refuses unsafe frames (``safe.assert_safe``).

    ``formats`` maps a column to a function (e.g. ``cannabis_market.format.fmt_cad``) or a format spec
    (``",.1%"``). Rows flagged ``suppressed`` show "suppressed" in their emptied cells and the flag column
    itself is not shown; a note under the table states the rule. At most ``max_rows`` rows are shown.
    """
    import polars as pl

    assert_safe(df, "table")
    if isinstance(df, pl.LazyFrame):
        df = df.head(max_rows + 1).collect()
    elif not isinstance(df, pl.DataFrame):
        df = pl.from_pandas(df) if hasattr(df, "to_numpy") else pl.DataFrame(df)
    formats = dict(formats or {})
    n_total = df.height
    flags = df[FLAG_COLUMN].fill_null(False).to_list() if FLAG_COLUMN in df.columns else None
    cols = (
        list(columns) if columns else [c for c in df.columns if not (flags is not None and c == FLAG_COLUMN)]
    )
    shown = df.head(max_rows)
    numeric = {c for c in cols if shown.schema[c].is_numeric()}
    parts = ['<div class="cm-table-wrap"><table class="cm-table">']
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append(
        "<thead><tr>"
        + "".join(f"<th{NUM_ATTR if c in numeric else ''}>{html.escape(str(c))}</th>" for c in cols)
        + "</tr></thead><tbody>"
    )
    any_suppressed = False
    for i, row in enumerate(shown.select(cols).iter_rows()):
        cells = []
        row_flag = bool(flags[i]) if flags is not None else False
        for c, v in zip(cols, row, strict=True):
            cls = ["cm-num"] if c in numeric else []
            if v is None and row_flag:
                any_suppressed = True
                text = "suppressed"
                cls.append("cm-suppressed")
            else:
                text = _fmt_cell(v, formats.get(c))
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{html.escape(text)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    notes = []
    if n_total > max_rows:
        notes.append(f"Showing the first {max_rows:,} of {n_total:,} rows.")
    if any_suppressed or (flags is not None and any(flags)):
        pol = policy()
        notes.append(
            f"\u201csuppressed\u201d: built from fewer than {pol.min_stores} stores or one store makes more "
            f"than {pol.dominance:.0%} of the value (confidential)."
        )
    if notes:
        parts.append(f'<p class="cm-table-note">{html.escape(" ".join(notes))}</p>')
    parts.append("</div>")
    return "".join(parts)


def table(df: Any, **kwargs: Any) -> None:
    """Display a frame as an escaped HTML table (see ``table_html`` for the options)."""
    body = table_html(df, **kwargs)
    shape = getattr(df, "shape", None)
    plain = f"<table {shape[0]} rows x {shape[1]} columns>" if shape else "<table>"
    _display({"text/html": body, "text/plain": plain}, raw=True)


# MathJax (JupyterLab, classic Notebook) skips elements with these classes: "CA$8.0B ... CA$118.0k" is
# two amounts, not inline LaTeX. The report export has no MathJax, so the text reads the same there.
NO_MATH = "tex2jax_ignore mathjax_ignore"


def text(message: str) -> None:
    """Display a string as an escaped paragraph (safe for text built from data; ``$`` is never math)."""
    paras = [p for p in re.split(r"\n\s*\n", str(message).strip()) if p.strip()]
    body = "".join(f'<p class="cm-text {NO_MATH}">{html.escape(p)}</p>' for p in paras)
    _display({"text/html": body, "text/plain": str(message)}, raw=True)


def _rounded_text(message: str) -> None:
    """``text`` with money amounts and long numbers rounded (``publish.round_text``)."""
    text(round_text(message))


def show(obj: Any, **kwargs: Any) -> None:
    """Display anything safely: frames as tables, altair charts via ``chart``, strings as escaped text,
    analysis results (objects with ``report()``/``summary()``/``chart()``) as text + table + chart."""
    import polars as pl

    if obj is None:
        return
    if isinstance(obj, pl.DataFrame | pl.LazyFrame) or type(obj).__name__ == "DataFrame":
        table(obj, **kwargs)
        return
    if isinstance(obj, str):
        _rounded_text(obj)
        return
    if type(obj).__module__.startswith("altair"):
        chart(obj)
        return
    handled = False
    for attr, fn in (("report", _rounded_text), ("summary", table), ("chart", chart)):
        method = getattr(obj, attr, None)
        if callable(method):
            fn(method())
            handled = True
    if not handled:
        if has_store_rows(obj):
            assert_safe(obj, "object")
        _display(obj)


# ------------------------------------------------------------------------------------------ export

REPORT_CSS = """
:root{--fg:#1d2125;--muted:#5f6b73;--line:#dfe3e6;--accent:#1b6e5a;--bad:#b0413e}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;font:15px/1.55 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
main{max-width:1000px;margin:0 auto;padding:24px 28px 48px}
h1,h2,h3,h4{line-height:1.25;margin:1.4em 0 .5em}h1{font-size:1.7em;margin-top:.4em}h2{font-size:1.35em}
h3{font-size:1.15em}p,ul,ol{margin:.5em 0 .9em}a{color:var(--accent)}
code{font:13px/1.4 Menlo,Consolas,monospace;background:#f4f6f7;padding:0 3px;border-radius:3px}
pre{font:12.5px/1.45 Menlo,Consolas,"DejaVu Sans Mono",monospace;overflow-x:auto;white-space:pre-wrap;margin:.3em 0}
blockquote{margin:.6em 0;padding:.1em 1em;border-left:3px solid var(--line);color:var(--muted)}
img,svg{max-width:100%;height:auto}
.jp-Cell{margin:0 0 .4em}a.anchor-link{display:none}.jp-mod-noOutputs.jp-mod-noInput{display:none}
.jp-Collapser,.jp-InputPrompt,.jp-OutputPrompt{display:none}
.cm-show-code .jp-InputPrompt,.cm-show-code .jp-OutputPrompt{display:block;color:var(--muted);font:12px monospace}
.jp-InputArea-editor{background:#f6f8f9;border:1px solid var(--line);border-radius:4px;padding:4px 8px;margin:.8em 0 .3em}
.jp-InputArea-editor pre{margin:0}
.jp-OutputArea-output{overflow-x:auto}
[data-mime-type="application/vnd.jupyter.stderr"]{background:#fdf0ef;padding:2px 6px}
.jp-RenderedText pre{margin:.2em 0}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:13.5px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{border-bottom:2px solid #b9c1c6;font-weight:600}
tbody tr:nth-child(even){background:#fafbfb}
.cm-table-wrap{overflow-x:auto}.cm-table caption{text-align:left;font-weight:600;padding:4px 0}
.cm-num{text-align:right;font-variant-numeric:tabular-nums}
.cm-suppressed{color:var(--muted);font-style:italic}
.cm-table-note{color:var(--muted);font-size:12.5px;margin-top:-.6em}
.cm-chart{margin:.4em 0 1em}.cm-chart-error,.cm-chart-refused{color:var(--bad);font-weight:600}
.cm-banner{border:2px solid var(--bad);background:#fdf0ef;color:#5a1d1b;border-radius:6px;padding:10px 14px;margin:0 0 18px}
.cm-banner pre{white-space:pre-wrap}
.cm-meta{margin-top:40px;padding-top:10px;border-top:1px solid var(--line);color:var(--muted);font-size:12.5px}
.cm-meta dt{font-weight:600;float:left;clear:left;width:150px}.cm-meta dd{margin:0 0 2px 160px;word-break:break-all}
.ansi-red-fg{color:#b22b31}.ansi-green-fg{color:#007427}.ansi-yellow-fg{color:#b27d12}.ansi-blue-fg{color:#0065ca}
.ansi-magenta-fg{color:#a03196}.ansi-cyan-fg{color:#0e8a91}.ansi-bold{font-weight:700}
.ansi-red-intense-fg{color:#b22b31}.ansi-green-intense-fg{color:#007427}.ansi-cyan-intense-fg{color:#258f8f}
.ansi-blue-intense-fg{color:#0065ca}.ansi-yellow-intense-fg{color:#b27d12}
@media print{main{max-width:none;padding:0}.vega-actions{display:none}}
"""

_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block notebook_css -%}
<style type="text/css">{{ resources.cm_css }}</style>
{%- endblock notebook_css -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
_TEMPLATE_NAME = "cm_report.html.j2"
_REMOVE_CELL_TAGS = {"remove-cell", "remove_cell", "hide-cell"}
_REMOVE_INPUT_TAGS = {"remove-input", "remove_input", "hide-input"}
_REMOVE_OUTPUT_TAGS = {"remove-output", "remove_output", "hide-output"}


def _prepare(nb: Any, show_code: bool) -> Any:
    nb = copy.deepcopy(nb)
    if not show_code:
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                cell["outputs"] = [
                    o
                    for o in cell.get("outputs", [])
                    if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                ]
    return nb


def export_notebook(
    nb: Any,
    *,
    show_code: bool = False,
    title: str | None = None,
    banner: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """Executed notebook (nbformat node) -> one self-contained offline HTML page.

    Code cells' input and prompts are hidden unless ``show_code`` (stderr streams too: library warnings
    are for developers; errors always show). Cells tagged ``remove-cell``/``remove-input``/``remove-output``
    are honoured. ``banner`` (e.g. the error of a failed run) is shown in a red box at the top, ``meta``
    (parameters, dataset fingerprint, ...) as a small table at the bottom; both escaped.
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_cell_tags = _REMOVE_CELL_TAGS
    cfg.TagRemovePreprocessor.remove_input_tags = _REMOVE_INPUT_TAGS
    cfg.TagRemovePreprocessor.remove_all_outputs_tags = _REMOVE_OUTPUT_TAGS
    exporter = HTMLExporter(
        config=cfg,
        template_name="lab",
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
        template_file=_TEMPLATE_NAME,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(config=cfg), enabled=True)
    exporter.exclude_input = not show_code
    exporter.exclude_input_prompt = not show_code
    exporter.exclude_output_prompt = not show_code
    exporter.embed_images = True
    exporter.require_js_url = ""
    exporter.mathjax_url = ""
    exporter.mermaid_js_url = ""
    exporter.mermaid_layout_elk_js_url = ""
    name = title or (nb.metadata.get("title") if hasattr(nb, "metadata") else None) or "report"
    resources = {"metadata": {"name": name}, "cm_css": REPORT_CSS}
    body, _ = exporter.from_notebook_node(_prepare(nb, show_code), resources=resources)
    if not show_code:  # the pygments stylesheet is only needed for code
        body = re.sub(
            r'<style type="text/css">\s*pre \{ line-height: 125%; \}.*?</style>', "", body, flags=re.S
        )
    else:
        body = body.replace('<body class="jp-Notebook"', '<body class="jp-Notebook cm-show-code"', 1)
    top = f'<div class="cm-banner" role="alert"><pre>{html.escape(banner)}</pre></div>\n' if banner else ""
    bottom = _meta_html(meta) if meta else ""
    body = re.sub(r"<main>", lambda m: "<main>\n" + top, body, count=1)
    body = re.sub(r"</main>", lambda m: bottom + "\n</main>", body, count=1)
    return make_offline(body)


def _meta_html(meta: Mapping[str, Any]) -> str:
    rows = []
    for key, value in meta.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "defaults"
        rows.append(f"<dt>{html.escape(str(key))}</dt><dd>{html.escape(str(value))}</dd>")
    return f'<footer class="cm-meta"><dl>{"".join(rows)}</dl></footer>'


# ------------------------------------------------------------------------------------------ offline

_REMOTE = r"""(?:https?:)?//"""
_SCRIPT_SRC_RE = re.compile(
    r"""<script\b[^>]*\bsrc\s*=\s*["']?\s*""" + _REMOTE + r"""[^>]*>.*?</script\s*>""", re.I | re.S
)
_LINK_RE = re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']?\s*""" + _REMOTE + r"""[^>]*>""", re.I)
_IMPORT_RE = re.compile(r"""@import\s+(?:url\(\s*)?["']?\s*""" + _REMOTE + r"""[^;]*;?""", re.I)
_CSS_URL_RE = re.compile(r"""url\(\s*(["']?)\s*""" + _REMOTE + r"""[^)]*\)""", re.I)
_ATTR_RE = re.compile(
    r"""(\s(?:src|srcset|poster|background|data-src)\s*=\s*)(["'])\s*""" + _REMOTE + r"""[^"']*\2""", re.I
)
_ATTR_BARE_RE = re.compile(
    r"""(\s(?:src|srcset|poster|background)\s*=\s*)""" + _REMOTE + r"""[^\s>]*""", re.I
)


def external_refs(page: str) -> list[str]:
    """Every remote script/style/font/image reference a browser would try to fetch (should be empty)."""
    found: list[str] = []
    for rx in (_SCRIPT_SRC_RE, _LINK_RE, _IMPORT_RE, _CSS_URL_RE, _ATTR_RE, _ATTR_BARE_RE):
        found.extend(m.group(0)[:200] for m in rx.finditer(page))
    return found


def make_offline(page: str) -> str:
    """Strip remote script/style/font/image references, then add the Vega bundle once if there are charts.

    Runs on the page *before* the bundle goes in, so the bundle's own code is never rewritten.
    """
    page = _SCRIPT_SRC_RE.sub("", page)
    page = _LINK_RE.sub("", page)
    page = _IMPORT_RE.sub("", page)
    page = _CSS_URL_RE.sub("url(data:,)", page)
    page = _ATTR_RE.sub(lambda m: f'{m.group(1)}"" data-cm-offline="remote reference removed"', page)
    page = _ATTR_BARE_RE.sub(lambda m: f'{m.group(1)}"" data-cm-offline="remote reference removed"', page)
    return add_vega_bundle(page)
