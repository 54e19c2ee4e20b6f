"""A real browser opens a generated report from file:// with the network cut, and draws both charts.

Needs Debian's ``chromium`` (``make browser`` installs it); skipped with a reason when it is not on PATH.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cannabis_market.cli import main as cli_main

pytestmark = pytest.mark.browser

FIX = Path(__file__).parents[1] / "fixtures" / "notebooks"
CHROMIUM = shutil.which("chromium")
ERROR_TEXTS = ("Javascript Error", "Chart could not be drawn", "Chart not drawn", "Chart withheld", "Error:")


class ChartScan(HTMLParser):
    """Collect, for every chart container (class cm-chart), the tags and text found inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict] = []
        self._stack: list[dict | None] = []  # one entry per open <div>: the chart it opens, or None
        self._current: list[dict] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        for chart in self._current:
            chart["tags"].add(tag)
        if tag == "div":
            classes = (attrs.get("class") or "").split()
            if "cm-chart" in classes:
                chart = {"id": attrs.get("id"), "classes": classes, "tags": set(), "text": ""}
                self.charts.append(chart)
                self._current.append(chart)
                self._stack.append(chart)
            else:
                self._stack.append(None)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "div" and self._stack:
            chart = self._stack.pop()
            if chart is not None:
                self._current.remove(chart)

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
            return
        for chart in self._current:
            chart["text"] += data


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = cli_main(["report", str(FIX / "charts.ipynb"), "--out", str(out)])
    assert code == 0, buf.getvalue()
    return out / "charts" / "default" / "report.html"


def dump_dom(page: Path, tmp_path: Path) -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--proxy-server=127.0.0.1:9",  # nothing listens there: any http(s) fetch fails
        "--host-resolver-rules=MAP * ~NOTFOUND",  # and no name resolves
        "--virtual-time-budget=15000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH (run `make browser` on Debian to install it)"
)
def test_report_renders_charts_offline_in_chromium(report, tmp_path):
    dom = dump_dom(report, tmp_path)
    scan = ChartScan()
    scan.feed(dom)
    assert len(scan.charts) == 2, dom[:2000]
    for chart in scan.charts:
        assert "svg" in chart["tags"], chart  # vega-embed drew it (renderer: "svg")
        assert {"path"} & chart["tags"] or {"rect", "line"} & chart["tags"], chart
        assert "vega-embed" in chart["classes"] and "cm-chart-error" not in chart["classes"]
        for bad in ERROR_TEXTS:
            assert bad not in chart["text"], (bad, chart["text"][:500])
    # tooltips are wired: vega-tooltip installed its stylesheet in the live document
    outside_scripts = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S)
    assert 'id="vega-tooltip-style"' in outside_scripts
    for bad in ERROR_TEXTS:
        assert bad not in outside_scripts, bad
    # a store name made of markup is drawn as text, never executed
    assert "Toronto &lt;script&gt;alert(1)&lt;/script&gt;" in outside_scripts
    assert not any(s.strip() == "alert(1)" for s in scan.scripts)


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH (run `make browser` on Debian to install it)"
)
def test_index_opens_offline(report, tmp_path):
    dom = dump_dom(report.parent.parent.parent / "index.html", tmp_path)
    assert "Cannabis market reports" in dom and 'href="charts/default/report.html"' in dom
