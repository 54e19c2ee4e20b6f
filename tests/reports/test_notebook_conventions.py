"""Jupyter/papermill conventions: charts need no network, `$` is not math, relative dataset paths and
single values for list parameters work from any working directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import altair as alt
import polars as pl
import pytest

from cannabis_market.errors import InputError
from cannabis_market.reports import nb
from cannabis_market.reports.html import RENDERER_NOTEBOOK, enable_offline_renderer, notebook_renderer
from cannabis_market.reports.paths import dataset_path, notebooks_dir

from conftest import REPO

CDN = ("cdn.jsdelivr", "unpkg.com", "vega.github.io")


def _chart() -> alt.Chart:
    df = pl.DataFrame({"month": ["2022-01-01", "2022-02-01"], "sales": [1.0, 2.0]})
    return alt.Chart(df).mark_line().encode(x="month:T", y="sales:Q", tooltip=["sales:Q"])


def test_notebook_renderer_gives_jupyterlab_a_vega_spec_and_svg_without_remote_urls():
    bundle = notebook_renderer(_chart().to_dict())
    vega = bundle["application/vnd.vega.v5+json"]
    assert vega["marks"] and vega["data"]  # a compiled Vega spec, not Vega-Lite
    assert bundle["image/svg+xml"].lstrip().startswith("<svg")
    assert not any(c in json.dumps(bundle) for c in CDN)


def test_notebook_renderer_withholds_unsafe_charts():
    rows = pl.DataFrame({"store_id": ["S1", "S2"], "sales": [1.0, 2.0]})
    spec = alt.Chart(rows).mark_bar().encode(x="store_id:N", y="sales:Q").to_dict()
    out = notebook_renderer(spec)
    assert "application/vnd.vega.v5+json" not in out and "withheld" in out["text/plain"]


def test_setup_outside_a_report_enables_the_notebook_renderer(monkeypatch):
    monkeypatch.delenv("CM_REPORT", raising=False)
    monkeypatch.delenv("CM_RESULTS", raising=False)
    monkeypatch.delenv("CM_CHART_MODE", raising=False)
    try:
        nb.setup()
        assert not nb.in_report() and alt.renderers.active == RENDERER_NOTEBOOK
        with pytest.raises(ValueError, match="chart mode"):
            enable_offline_renderer("cdn")
    finally:
        alt.renderers.enable("default")


def test_text_is_never_typeset_as_math(capsys):
    nb.text("Sales CA$8.04B, per store CA$118k")
    out = capsys.readouterr().out  # outside IPython the plain text is printed
    assert "CA$8.04B" in out and "CA$118k" in out
    from cannabis_market.reports.html import NO_MATH

    assert "mathjax_ignore" in NO_MATH.split() and "tex2jax_ignore" in NO_MATH.split()


def test_text_html_carries_the_no_math_classes(monkeypatch):
    shown = []
    monkeypatch.setattr("cannabis_market.reports.html._display", lambda obj, raw=False: shown.append(obj))
    nb.text("CA$8.04B … CA$118k")  # already at the 3 significant digits the publish step rounds to
    body = shown[0]["text/html"]
    assert "mathjax_ignore" in body and "tex2jax_ignore" in body and "CA$8.04B … CA$118k" in body


@pytest.mark.parametrize(
    ("value", "item", "expected"),
    [
        ("none", None, ["none"]),
        ("control_group", None, ["control_group"]),
        ("Quebec, rest_of:Canada", None, ["Quebec", "rest_of:Canada"]),
        ("[Quebec, Alberta]", None, ["Quebec", "Alberta"]),
        (["a", "b"], None, ["a", "b"]),
        (("a",), None, ["a"]),
        (None, None, []),
        (7, int, [7]),
        ("3,7,14", int, [3, 7, 14]),
        ([3, 7], int, [3, 7]),
    ],
)
def test_as_list_takes_single_values(value, item, expected):
    assert nb.as_list(value, item) == expected


def test_as_list_names_the_bad_element():
    with pytest.raises(InputError, match="cannot be converted"):
        nb.as_list("3,x", int)
    with pytest.raises(InputError, match="not a readable list"):
        nb.as_list("[a, b")


def test_dataset_path_tries_cwd_then_the_notebooks_folder(tmp_path, monkeypatch):
    assert notebooks_dir() == REPO / "notebooks"
    (tmp_path / "ds").mkdir()
    monkeypatch.chdir(tmp_path)
    assert dataset_path("ds") == tmp_path / "ds"  # working directory first
    assert dataset_path(str(tmp_path / "ds")) == tmp_path / "ds"  # absolute as given
    # the notebooks' default "../data/sample" is written from notebooks/: found from anywhere
    assert dataset_path("../data/public") == REPO / "data" / "public"
    with pytest.raises(InputError, match=r"parameter 'dataset' = '\.\./nope'.*notebooks"):
        dataset_path("../nope")
    with pytest.raises(InputError, match="parameter 'other'"):
        dataset_path("", parameter="other")


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    """The fixture chart notebook executed by `jupyter nbconvert --execute` outside the report runner."""
    work = tmp_path_factory.mktemp("nbconvert")
    fixture = REPO / "tests" / "fixtures" / "notebooks"
    shutil.copy(fixture / "charts.ipynb", work / "charts.ipynb")
    shutil.copytree(fixture / "data", work / "data")
    env = {k: v for k, v in os.environ.items() if k not in ("CM_REPORT", "CM_RESULTS", "CM_CHART_MODE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    jupyter = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute"]
    r = subprocess.run(
        [*jupyter, "--ExecutePreprocessor.kernel_name=python3", "--output", "out.ipynb", "charts.ipynb"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return work / "out.ipynb"


@pytest.mark.slow
def test_notebook_executed_with_nbconvert_has_no_cdn_reference(executed):
    text = executed.read_text()
    assert not [c for c in CDN if c in text]
    outputs = [o for c in json.loads(text)["cells"] for o in c.get("outputs", [])]
    charts = [o for o in outputs if "application/vnd.vega.v5+json" in o.get("data", {})]
    assert len(charts) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (`make browser`)")
def test_jupyterlab_draws_the_charts_with_no_network(executed, tmp_path):
    """Open the executed notebook in a real JupyterLab in headless chromium with every remote fetch
    blocked: both charts are drawn by JupyterLab's own Vega (canvas inside vega-embed)."""
    port = _free_port()
    lab = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={executed.parent}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.25)
        cmd = [
            shutil.which("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-extensions",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--proxy-server=127.0.0.1:9",  # remote fetches fail; loopback bypasses the proxy
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=40000",
            "--window-size=1200,3000",
            "--dump-dom",
            f"http://127.0.0.1:{port}/lab/tree/{executed.name}",
        ]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=240).stdout
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    drawn = re.findall(r'class="vega-embed[^"]*".{0,400}?<canvas[^>]*class="marks"', dom, flags=re.S)
    assert len(drawn) == 2, dom[-3000:]
    assert "Error loading script" not in dom and "Javascript Error" not in dom
