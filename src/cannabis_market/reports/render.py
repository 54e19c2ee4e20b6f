"""The offline HTML page of one executed run: the publish step's export of the notebook plus the page
furniture. Called by the supervisor (``execute``), or ahead of it by a forked worker that already has the
exporter loaded (``worker.prerender``), so two runs' pages are not rendered one after the other in the
supervising process.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from cannabis_market.reports import layout
from cannabis_market.reports.page import add_furniture
from cannabis_market.reports.plan import RunSpec
from cannabis_market.reports.publish import for_export

PRERENDERED = ".prerendered.html"  # in the run's tmp folder: the page a worker rendered for a finished run


def title(nb: Any, spec: RunSpec) -> str:
    """Browser-tab title: the notebook's first '# heading' (else the report name), plus the parameters."""
    name = spec.report
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            m = re.search(r"^#\s+(.+?)\s*#*\s*$", cell.get("source", ""), flags=re.M)
            if m:
                name = m.group(1)
                break
    return name if spec.slug == "default" else f"{name} ({spec.slug})"


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def manifest(spec: RunSpec) -> dict[str, Any]:
    """The run's dataset manifest ({} when there is none or it cannot be read: the page then has no banner)."""
    from cannabis_market.data.loader import read_manifest

    path = (spec.dataset or {}).get("path")
    if not path:
        return {}
    try:
        found, _problems = read_manifest(Path(path))
    except OSError:
        return {}
    return found if isinstance(found, dict) else {}


def render_page(spec: RunSpec, tmp: Path, error: str | None, status: str) -> str:
    """The offline HTML page of the executed notebook (a placeholder notebook when none was written)."""
    import nbformat

    from cannabis_market.reports import html as H

    nb_file = tmp / layout.NOTEBOOK_FILE
    try:
        nb = nbformat.read(nb_file, as_version=4)
    except (OSError, ValueError):
        nb = nbformat.v4.new_notebook()
        nb.cells.append(
            nbformat.v4.new_markdown_cell(
                f"# {spec.report}\n\nThe notebook did not produce any output (see the error above)."
            )
        )
        nbformat.write(nb, nb_file)
    meta = {
        "Report": spec.label,
        "Parameters": spec.given or "defaults",
        "Status": "FAILED" if error is not None else status,
        "Dataset fingerprint": (spec.dataset or {}).get("fingerprint", "n/a"),
        "Package version": spec.inputs.get("package_version"),
        "Generated": now(),
    }
    banner = None
    if error is not None:
        banner = f"This report did not finish: {error}\nSections after the failing step are missing."
    nb = for_export(nb, status)
    page = H.export_notebook(
        nb, show_code=spec.show_code, title=title(nb, spec), banner=banner, meta=meta, params=spec.resolved
    )
    page = add_furniture(page, manifest=manifest(spec), stem=spec.report)
    leftovers = H.external_refs(page)
    if leftovers:  # make_offline strips them; this is a guard against a template change
        raise RuntimeError(f"report still references the network: {leftovers[:3]}")
    return page
