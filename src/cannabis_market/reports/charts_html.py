"""Chart renderers for offline reports: altair renderers (interactive, SVG, notebook) and the Vega bundle.

``enable_offline_renderer()`` registers altair renderers whose output loads nothing from the network:
``"interactive"`` writes a ``<div>`` plus a call to ``vegaEmbed`` with the chart's spec inlined, and
``add_vega_bundle`` puts the Vega + Vega-Lite + Vega-Embed JavaScript shipped by vl-convert-python into
the page's ``<head>`` once; ``"svg"`` draws static SVG with vl-convert; ``"notebook"`` gives JupyterLab a
Vega spec it draws with its own runtime. Every renderer first checks the spec's data is safe to share
(``check_spec``) and shows a refusal instead of a chart that is not. ``reports.html`` re-exports these
names; altair and vl-convert are imported only when a chart is drawn or a bundle built.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import os
import re
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cannabis_market.reports.publish import round_spec
from cannabis_market.reports.safe import (
    FLAG_COLUMN,
    MAX_SHARE_COLUMN,
    N_STORES_COLUMN,
    DisclosureError,
    assert_safe,
)

RENDERER_INTERACTIVE = "cannabis_market_offline"
RENDERER_SVG = "cannabis_market_svg"
RENDERER_NOTEBOOK = "cannabis_market_notebook"
CHART_MODE_ENV = "CM_CHART_MODE"
CHART_CLASS = "cm-chart"
BUNDLE_ATTR = "data-cm-vega-bundle"

# ------------------------------------------------------------------------------------------ vega bundle


@functools.lru_cache(maxsize=1)
def _vl_version() -> str | None:
    """Vega-Lite major.minor matching the installed altair, if vl-convert ships it (else its latest)."""
    import altair as alt
    import vl_convert as vlc

    m = re.match(r"v?(\d+)\.(\d+)", getattr(alt, "SCHEMA_VERSION", ""))
    if not m:
        return None
    want = f"{m.group(1)}.{m.group(2)}"
    return want if want in vlc.get_vegalite_versions() else None


_BUNDLE_LOCK = threading.Lock()


def _bundle_cache() -> Path:
    """Where the built bundle and its label are kept, keyed by the vl-convert and altair versions."""
    from importlib.metadata import version

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    key = f"vl-convert-{version('vl-convert-python')}-altair-{version('altair')}"
    return Path(base) / "cannabis_market" / "vega" / key


_BUNDLE: tuple[str, str] | None = None  # (bundle JavaScript, label), once per process


def _read_cached() -> tuple[str, str] | None:
    folder = _bundle_cache()
    try:
        label = (folder / "label.txt").read_text(encoding="utf-8")
        js = (folder / "bundle.js").read_text(encoding="utf-8")
    except OSError:
        return None
    return (js, label) if label and js else None


def _cached_bundle() -> tuple[str, str]:
    """(bundle JavaScript, label): from the user cache when an earlier process built them (building takes
    ~1.7 s of CPU in every process otherwise), else built now and saved (atomically; a failed save is
    harmless). Call with ``_BUNDLE_LOCK`` held."""
    global _BUNDLE
    if _BUNDLE is None:
        _BUNDLE = _read_cached()
    if _BUNDLE is None:
        js, label = _build_bundle(), _label()
        folder = _bundle_cache()
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in (("bundle.js", js), ("label.txt", label)):
                tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, folder / name)
        _BUNDLE = (js, label)
    return _BUNDLE


def preload_bundle() -> bool:
    """Read the cached bundle into this process if one is saved (never builds: building starts
    vl-convert's JavaScript runtime, which a fork server must not have running)."""
    global _BUNDLE
    with _BUNDLE_LOCK:
        if _BUNDLE is None:
            _BUNDLE = _read_cached()
        return _BUNDLE is not None


def vega_bundle() -> str:
    """The Vega + Vega-Lite + Vega-Embed JavaScript from vl-convert-python (built once per installed version)."""
    with _BUNDLE_LOCK:
        return _cached_bundle()[0]


def _build_bundle() -> str:
    import vl_convert as vlc

    version = _vl_version()
    js = vlc.javascript_bundle(vl_version=version) if version else vlc.javascript_bundle()
    # never let the bundle close its own <script> element early
    return js.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def _label() -> str:
    import vl_convert as vlc

    return (
        f"vega {vlc.get_vega_version()}, vega-lite {_vl_version() or 'latest'}, "
        f"vega-embed {vlc.get_vega_embed_version()} (from vl-convert-python)"
    )


def bundle_label() -> str:
    """Which Vega, Vega-Lite and Vega-Embed the bundle holds (shown in the page's script tag)."""
    with _BUNDLE_LOCK:
        return _cached_bundle()[1]


# ------------------------------------------------------------------------------------------ charts

_EMBED_OPTIONS = {
    "renderer": "svg",
    "mode": "vega-lite",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


def _script_json(value: Any) -> str:
    """A JavaScript literal safe inside a <script> element (no '</script>', no HTML comment, no U+2028).

    NaN/Infinity are written as such: valid JavaScript, and Vega treats NaN as missing."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _walk(obj: Any):
    if isinstance(obj, Mapping):
        yield obj
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, Mapping | list):
                yield from _walk(v)


def check_spec(spec: Mapping[str, Any]) -> None:
    """Refuse a chart spec whose data is not safe to share (see ``safe.assert_safe``) or is loaded from a
    URL instead of being inlined (DisclosureError)."""
    records: list[Any] = []
    for dataset in (spec.get("datasets") or {}).values():
        if isinstance(dataset, list):
            records.extend(dataset)
    for node in _walk(spec):
        data = node.get("data")
        if isinstance(data, Mapping):
            if "url" in data:
                raise DisclosureError(
                    f"chart data must be inlined for an offline report, found data url {data['url']!r}"
                )
            if isinstance(data.get("values"), list):
                records.extend(data["values"])
    if any(isinstance(r, Mapping) and any(str(k).lower() == "store_id" for k in r) for r in records):
        raise DisclosureError("chart data has a 'store_id' field: reports never show store-level rows")
    dict_records = [r for r in records if isinstance(r, Mapping)]
    if any(MAX_SHARE_COLUMN in r for r in dict_records):
        assert_safe([{MAX_SHARE_COLUMN: None}], "chart's data")
    counted = [r for r in dict_records if N_STORES_COLUMN in r and FLAG_COLUMN not in r]
    if counted:
        assert_safe(counted, "chart's data")


def chart_html(spec: Mapping[str, Any]) -> str:
    """HTML for one interactive chart: a container and a call to vegaEmbed (the bundle is added per page)."""
    spec = dict(spec)
    spec.pop("$schema", None)  # the mode is given explicitly; keeps remote URLs out of the page
    cid = f"cm-chart-{uuid.uuid4().hex[:12]}"
    return (
        f'<div id="{cid}" class="{CHART_CLASS}"></div>\n'
        "<script>\n(function () {\n"
        f'  var el = document.getElementById("{cid}");\n'
        f"  var spec = {_script_json(spec)};\n"
        "  function note(msg) { el.className += ' cm-chart-error'; el.textContent = msg; }\n"
        "  if (typeof window.vegaEmbed !== 'function') {\n"
        "    note('Chart not drawn: the Vega libraries are only included in reports built by '\n"
        "      + '`cannabis-market report`.');\n"
        "    return;\n  }\n"
        f"  window.vegaEmbed(el, spec, {_script_json(_EMBED_OPTIONS)})\n"
        "    .catch(function (err) { note('Chart could not be drawn: ' + err); });\n"
        "})();\n</script>"
    )


def _refusal(exc: Exception) -> dict[str, str]:
    msg = f"Chart withheld: {exc}"
    return {"text/html": f'<div class="cm-chart-refused">{html.escape(msg)}</div>', "text/plain": msg}


def offline_renderer(spec: dict, **metadata: Any) -> dict[str, str]:
    """altair renderer: interactive chart HTML (Vega bundle added once per page by ``make_offline``)."""
    try:
        check_spec(spec)
    except DisclosureError as exc:
        return _refusal(exc)
    return {"text/html": chart_html(round_spec(spec)), "text/plain": "<chart>"}


def svg_renderer(spec: dict, **metadata: Any) -> dict[str, str]:
    """altair renderer: static SVG made by vl-convert (no JavaScript; fallback when scripts are unwanted)."""
    import vl_convert as vlc

    try:
        check_spec(spec)
    except DisclosureError as exc:
        return _refusal(exc)
    version = _vl_version()
    spec = round_spec(spec)
    svg = vlc.vegalite_to_svg(spec, vl_version=version) if version else vlc.vegalite_to_svg(spec)
    return {"image/svg+xml": svg, "text/plain": "<chart>"}


def notebook_renderer(spec: dict, **metadata: Any) -> dict[str, Any]:
    """altair renderer for JupyterLab without a network: a Vega spec JupyterLab draws itself, plus SVG.

    altair 6 emits ``application/vnd.vegalite.v6.json``, which JupyterLab 4 does not know, and its default
    renderer loads Vega from a CDN. JupyterLab 4 ships its own Vega runtime for
    ``application/vnd.vega.v5+json``, so the Vega-Lite spec is compiled to Vega here with vl-convert
    (offline). The Vega grammar did not change between major versions 5 and 6 (the bump was packaging),
    so the compiled spec draws with JupyterLab's runtime. The SVG is for front ends without Vega
    (nbconvert HTML, GitHub); JupyterLab ranks the Vega output first, so it stays interactive.
    """
    import vl_convert as vlc

    try:
        check_spec(spec)
    except DisclosureError as exc:
        return _refusal(exc)
    version = _vl_version()
    kwargs = {"vl_version": version} if version else {}
    vega = vlc.vegalite_to_vega(spec, **kwargs)
    vega.pop("$schema", None)  # no remote URL in the notebook; the mime type says which grammar
    return {
        "application/vnd.vega.v5+json": vega,
        "image/svg+xml": vlc.vegalite_to_svg(spec, **kwargs),
        "text/plain": "<chart>",
    }


CHART_MODES = {"interactive": RENDERER_INTERACTIVE, "svg": RENDERER_SVG, "notebook": RENDERER_NOTEBOOK}


def enable_offline_renderer(mode: str | None = None) -> str:
    """Register the offline renderers with altair and enable one; none of them loads anything remote.

    * ``"interactive"`` (default): HTML + vegaEmbed; the report export adds the Vega bundle to the page.
    * ``"svg"``: static SVG from vl-convert, no JavaScript.
    * ``"notebook"``: for JupyterLab/papermill outside the report runner -- a Vega mime bundle JupyterLab
      draws with its own Vega (no CDN, no "Error loading script"), plus an SVG fallback.

    ``mode=None`` reads ``CM_CHART_MODE``. Returns the name of the enabled renderer.
    """
    import altair as alt

    mode = (mode or os.environ.get(CHART_MODE_ENV) or "interactive").strip().lower()
    if mode not in CHART_MODES:
        raise ValueError(f"chart mode must be one of {', '.join(map(repr, CHART_MODES))}, got {mode!r}")
    alt.renderers.register(RENDERER_INTERACTIVE, offline_renderer)
    alt.renderers.register(RENDERER_SVG, svg_renderer)
    alt.renderers.register(RENDERER_NOTEBOOK, notebook_renderer)
    alt.data_transformers.enable("default")  # data inlined into the spec, 5,000-row cap
    alt.renderers.enable(CHART_MODES[mode])
    return CHART_MODES[mode]


def add_vega_bundle(page: str) -> str:
    """Insert the Vega bundle into <head> when the page has a chart and no bundle yet (idempotent)."""
    if f'class="{CHART_CLASS}"' not in page or BUNDLE_ATTR in page:
        return page
    tag = f'<script {BUNDLE_ATTR}="{html.escape(bundle_label())}">\n{vega_bundle()}\n</script>\n'
    idx = page.lower().find("</head>")
    if idx < 0:
        return tag + page
    return page[:idx] + tag + page[idx:]
