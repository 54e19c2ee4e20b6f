"""Every report read as a reader reads it (issue #13, "done when"): rendered on a generated dataset, on a short
window of it and on the three real public datasets, through `cannabis-market report` in-process.

Checked on the HTML: the market and currency follow the dataset's manifest (no "Ontario" on US data, no CA$ on
US data), no internal error text, the synthetic banner exactly when the data are synthetic, key findings and
parameters at the top. Checked in Chromium (the SVG Vega draws): every time axis shows years.
One build is shared by all checks (module-scoped fixture).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cannabis_market import cli

from conftest import REPO, real_file

slow = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
NOTEBOOKS = REPO / "notebooks"
REAL = {
    "statcan": "statcan_20100056_cannabis_retailers_monthly_by_province.csv",
    "washington": "washington_lcb_retail_sales_by_license_monthly_2017-2021.xlsx",
    "oregon": "oregon_olcc_monthly_sales_prices_2016-2021.xlsx",
}
REAL_JOBS = {"statcan_outage": "statcan", "washington_saturation": "washington", "oregon_prices": "oregon"}
SHORT = {"start": "2021-06-01", "end": "2022-12-31"}
INTERNAL = ("Traceback", "Error", "has no variation", "use period_effects", "InputError")


def _quiet(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = cli.main(argv)
    return code, buf.getvalue()


def _jobs(root: Path) -> tuple[list[dict], dict[str, str]]:
    """The report jobs of this test and, per job, the dataset folder it reads."""
    ds = root / "generated"
    jobs, data = [], {}
    for nb in sorted(NOTEBOOKS.glob("0*.ipynb")):
        params: dict = {"dataset": str(ds)}
        if nb.stem.startswith("04"):
            params["n_sims"] = 200  # fewer simulated paths: the text, not the precision, is under test
        jobs.append({"name": nb.stem, "notebook": str(nb), "parameters": params})
        data[nb.stem] = str(ds)
        if nb.stem[:2] in (
            "02",
            "03",
        ):  # the analyses a short window can break (01 only sums; 04's window is the outage's)
            name = f"short_{nb.stem}"
            jobs.append({"name": name, "notebook": str(nb), "parameters": {**params, **SHORT}})
            data[name] = str(ds)
    shipped = yaml.safe_load((REPO / "reports.yml").read_text(encoding="utf-8"))["jobs"]
    for job in shipped:
        kind = REAL_JOBS.get(job["name"])
        if kind is None:
            continue
        params = {**job["parameters"], "dataset": str(root / kind)}
        if "n_sims" in params or job["notebook"].endswith("04_outage_impact.ipynb"):
            params["n_sims"] = 200
        jobs.append({"name": job["name"], "notebook": str(REPO / job["notebook"]), "parameters": params})
        data[job["name"]] = str(root / kind)
    return jobs, data


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """Generate + import the datasets, render every report once (2 at a time); per report: page, manifest."""
    root = tmp_path_factory.mktemp("report-texts")
    code, out = _quiet(["data", "generate", "--out", str(root / "generated"), "--stores", "40"])
    assert code == 0, out
    for kind, name in REAL.items():
        code, out = _quiet(["data", f"import-{kind}", str(real_file(name)), "--out", str(root / kind)])
        assert code == 0, out
    jobs, data = _jobs(root)
    config = root / "reports.yml"
    config.write_text(yaml.safe_dump({"jobs": jobs}, sort_keys=False), encoding="utf-8")
    out_dir = root / "out"
    code, log = _quiet(["report", "--config", str(config), "--out", str(out_dir), "--jobs", "2"])
    assert code == 0, log
    pages = {}
    for job in jobs:
        run = out_dir / job["name"] / "default"
        manifest = yaml.safe_load((Path(data[job["name"]]) / "manifest.yml").read_text(encoding="utf-8"))
        pages[job["name"]] = {
            "html": (run / "report.html").read_text(encoding="utf-8"),
            "path": run / "report.html",
            "results": json.loads((run / "results.json").read_text(encoding="utf-8")),
            "manifest": manifest,
        }
    return {"pages": pages, "index": (out_dir / "index.html").read_text(encoding="utf-8")}


def visible_text(page: str) -> str:
    """What a reader sees: no scripts, styles or tags; entities decoded; whitespace collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", page, flags=re.S | re.I)
    page = re.sub(r'<footer class="cm-meta">.*?</footer>', " ", page, flags=re.S)  # run metadata (paths)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page)).replace("\u00b6", " ")  # heading anchors
    return re.sub(r"\s+", " ", text)


ALL = [
    "01_market_overview", "02_store_growth_vs_demand", "03_price_compression", "04_outage_impact",
"short_02_store_growth_vs_demand", "short_03_price_compression",
    "statcan_outage", "washington_saturation", "oregon_prices",
]  # fmt: skip


@slow
def test_every_report_is_built_and_succeeds(built):
    assert set(built["pages"]) == set(ALL)
    for name, page in built["pages"].items():
        assert page["results"]["status"] in ("ok", "suppressed"), (name, page["results"].get("error"))


@slow
@pytest.mark.parametrize("name", ["washington_saturation", "oregon_prices"])
def test_no_ontario_in_reports_on_us_data(built, name):
    text = visible_text(built["pages"][name]["html"])
    assert "Ontario" not in text, text[max(0, text.find("Ontario") - 200) : text.find("Ontario") + 100]


@slow
@pytest.mark.parametrize("name", ALL)
def test_no_internal_error_text(built, name):
    text = visible_text(built["pages"][name]["html"])
    for bad in INTERNAL:
        assert bad not in text, (bad, text[max(0, text.find(bad) - 200) : text.find(bad) + 100])


@slow
@pytest.mark.parametrize("name", ALL)
def test_currency_matches_the_manifest(built, name):
    page = built["pages"][name]
    text = visible_text(page["html"])
    code = str(page["manifest"].get("currency", "CAD")).upper()
    own, other = ("US$", "CA$") if code == "USD" else ("CA$", "US$")
    assert other not in text, (other, text[max(0, text.find(other) - 200) : text.find(other) + 100])
    assert own in text or code in text
    assert page["results"]["currency"] == code


@slow
@pytest.mark.parametrize("name", ALL)
def test_table_headers_are_readable(built, name):
    heads = re.findall(r"<th\b[^>]*>(.*?)</th>", built["pages"][name]["html"], flags=re.S)
    assert heads or 'class="cm-table"' not in built["pages"][name]["html"]
    assert not [h for h in heads if re.search(r"[A-Za-z]_[a-z]", h)], heads


@slow
@pytest.mark.parametrize("name", ALL)
def test_synthetic_banner_exactly_when_the_data_are_synthetic(built, name):
    page = built["pages"][name]
    synthetic = page["manifest"].get("source") == "synthetic"
    assert ('class="cm-synthetic"' in page["html"]) is synthetic
    assert ("SYNTHETIC DATA" in visible_text(page["html"])) is synthetic


@slow
@pytest.mark.parametrize("name", ALL)
def test_title_then_findings_and_parameters_before_any_section(built, name):
    body = re.sub(r"<script\b.*?</script>", "", built["pages"][name]["html"], flags=re.S)
    h1, params, first_h2 = body.find("<h1"), body.find('class="cm-params"'), body.find("<h2")
    assert 0 <= h1 < params < first_h2
    if built["pages"][name]["results"]["status"] == "ok":
        findings = body.find('class="cm-findings')
        assert h1 < findings < first_h2, name
        box = re.search(r'<div class="cm-findings.*?</div>', body, flags=re.S).group(0)
        assert 1 <= box.count("<li>") <= 5
    assert "delivery_fee_per_store_per_day" not in visible_text(body)


@slow
def test_sections_that_do_not_apply_say_why_in_one_sentence(built):
    text = visible_text(built["pages"]["statcan_outage"]["html"])
    what_if = text.rsplit("What if the outage had lasted longer?", 1)[1]  # the section, not the contents
    assert what_if.strip().startswith("Left out:")
    text = visible_text(built["pages"]["oregon_prices"]["html"])
    illicit = text.rsplit("Legal vs illicit prices", 1)[1][:400]  # one sentence why, no Canadian table
    assert "Canad" in illicit and "Oregon" in illicit and "Illegal" not in illicit


@slow
def test_index_has_plain_figures_descriptions_and_currency(built):
    index = html.unescape(built["index"])
    assert "lost_sales=" not in index and "carrying_capacity=" not in index
    assert re.search(r"Lost sales CA\$[\d.]+[kMB]? \[", index)
    washington = index.split("washington_saturation", 1)[1].split("</tr>", 1)[0]
    assert "CA$" not in washington


# ----------------------------------------------------------------------------------------- in Chromium

_AXIS_RE = re.compile(r'<g class="mark-group role-axis"[^>]*aria-label="([^"]*)"')
_TEXT_RE = re.compile(r"<text\b[^>]*>([^<]*)</text>")
_YEAR_RE = re.compile(r"\b(19|20)\d\d\b|'\d\d\b")


def time_axes(dom: str) -> list[tuple[str, list[str]]]:
    """Every time-scale axis Vega drew: (its aria label, its tick labels)."""
    found = []
    starts = [m for m in _AXIS_RE.finditer(dom)]
    for i, m in enumerate(starts):
        if "time scale" not in m.group(1):
            continue
        end = starts[i + 1].start() if i + 1 < len(starts) else len(dom)
        chunk = dom[m.end() : end]
        labels = (
            chunk.split("role-axis-label", 1)[1].split("role-axis-title", 1)[0]
            if "role-axis-label" in chunk
            else ""
        )
        found.append((m.group(1), [html.unescape(t) for t in _TEXT_RE.findall(labels)]))
    return found


def dump_dom(page: Path, profile: Path) -> str:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
        "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def doms(built, tmp_path_factory) -> dict[str, str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not on PATH (run `make browser` on Debian to install it)")
    profiles = tmp_path_factory.mktemp("chromium")
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(dump_dom, page["path"], profiles / name)
            for name, page in built["pages"].items()
        }
        return {name: f.result() for name, f in futures.items()}


@slow
@pytest.mark.browser
@pytest.mark.parametrize("name", ALL)
def test_every_time_axis_shows_years(doms, name):
    axes = time_axes(doms[name])
    charts = doms[name].count('class="cm-chart')
    assert axes or not charts, "charts drawn but no time axis found"
    for label, ticks in axes:
        assert ticks, label
        assert any(_YEAR_RE.search(t) for t in ticks), (label, ticks)


@pytest.mark.browser
@pytest.mark.parametrize("name", ALL)
@slow
def test_axis_titles_are_readable(doms, name):
    labels = re.findall(r'aria-label="((?:[XY]-axis|[A-Za-z]+ legend)[^"]*)"', doms[name])
    assert labels or 'class="cm-chart' not in doms[name]
    assert not [t for t in labels if re.search(r"[A-Za-z]_[a-z]", t)], labels  # titles and legend values


# ----------------------------------------------------------------------------------------- fast checks


def test_export_moves_findings_under_the_title_and_shows_parameters():
    import nbformat

    from cannabis_market.reports.html import export_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A report\n\nIntro."),
        nbformat.v4.new_markdown_cell("## 1. First"),
        nbformat.v4.new_code_cell(
            "x",
            outputs=[
                nbformat.v4.new_output(
                    "display_data",
                    {"text/html": '<div class="cm-findings x" role="note"><ul><li>Found A.</li></ul></div>'},
                )
            ],
        ),
    ]
    page = export_notebook(
        nb, params={"dataset": "/data/real/oregon", "controls": ["a", "b"], "second_event": ""}
    )
    h1, findings, params, h2 = (page.find(t) for t in ("<h1", "cm-findings", "cm-params", "<h2"))
    assert 0 <= h1 < findings < params < h2
    assert page.count("Found A.") == 1
    params_line = re.search(r'<p class="cm-params">.*?</p>', page).group(0)
    assert "oregon" in params_line and "/data/real" not in params_line and "a, b" in params_line
    assert "none" in params_line


def test_furniture_leaves_script_text_alone():
    from cannabis_market.reports.page import add_furniture

    script = '<script>var s = "<h2>${o}</h2></table></head><main>";</script>'
    page = (
        f"<html><head>{script}</head><body><main><h1>T</h1><h2>A</h2><h2>B</h2><h2>C</h2>"
        '<table class="cm-table"><tr><td>1</td></tr></table></main></body></html>'
    )
    out = add_furniture(page, manifest={"source": "synthetic", "name": "x"}, stem="r")
    assert script in out  # byte for byte
    assert out.index('id="cm-page-css"') < out.index("</head><body>") and out.count("cm-page-css") == 1
    assert out.count('class="cm-synthetic"') == 1 and out.index('class="cm-synthetic"') > out.index("<body>")
    toc = re.search(r'<nav class="cm-toc".*?</nav>', out).group(0)
    assert [t for t in re.findall(r">([^<]+)</a>", toc)] == ["A", "B", "C"]
    assert out.count("Download this table as CSV") == 1


def test_findings_are_rounded_and_escaped(monkeypatch):
    from cannabis_market.reports import nb

    shown = []
    monkeypatch.setattr(nb, "_display_raw", shown.append)
    nb.findings(["Lost CA$6,649,670.64 <b>", None, "", "Second."])
    body = shown[0]["text/html"]
    assert body.count("<li>") == 2 and "&lt;b&gt;" in body and "6,649,670.64" not in body
    nb.findings([])
    assert len(shown) == 1


def test_pdf_without_chromium_stops_before_anything_runs(monkeypatch, tmp_path):
    from cannabis_market.reports import page

    monkeypatch.setattr(page, "chromium", lambda: None)
    config = tmp_path / "reports.yml"
    nb_path = Path(__file__).parents[1] / "fixtures" / "notebooks" / "trivial.ipynb"
    config.write_text(yaml.safe_dump({"jobs": [{"name": "t", "notebook": str(nb_path)}]}), encoding="utf-8")
    code, out = _quiet(["report", "--config", str(config), "--out", str(tmp_path / "out"), "--pdf"])
    assert code == 2 and "--pdf: no Chromium found" in out
    assert not (tmp_path / "out" / "t").exists()


@slow
@pytest.mark.browser
@pytest.mark.parametrize("name", ALL)
def test_chart_text_is_in_the_manifest_currency(built, doms, name):
    code = str(built["pages"][name]["manifest"].get("currency", "CAD")).upper()
    other = "CA$" if code == "USD" else "US$"
    drawn = " ".join(html.unescape(t) for t in re.findall(r"<svg\b.*?</svg>", doms[name], flags=re.S))
    assert other not in drawn, drawn[max(0, drawn.find(other) - 200) : drawn.find(other) + 100]
