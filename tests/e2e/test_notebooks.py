"""The four report notebooks run end to end through the CLI on a small generated dataset, and the
real-data report jobs build offline HTML from the snapshot in data/public."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cannabis_market.data.generate import generate_dataset

from conftest import REPO, real_data_dir

NOTEBOOKS = ["01_market_overview", "02_store_growth_vs_demand", "03_price_compression", "04_outage_impact"]
FIGURES = {
    "01_market_overview": {"total_sales", "stores_open_latest", "sales_per_store_latest"},
    "02_store_growth_vs_demand": {
        "carrying_capacity",
        "carrying_capacity_lo",
        "carrying_capacity_hi",
        "stores_at_risk",
        "cannibalization_elasticity",
        "cannibalization_elasticity_lo",
        "cannibalization_elasticity_hi",
    },
    "03_price_compression": {
        "price_per_g_latest",
        "price_change_annual",
        "price_change_annual_lo",
        "price_change_annual_hi",
        "price_elasticity",
        "price_elasticity_lo",
        "price_elasticity_hi",
    },
    "04_outage_impact": {
        "lost_sales",
        "lost_sales_lo",
        "lost_sales_hi",
        "rel_effect",
        "rel_effect_lo",
        "rel_effect_hi",
        "p_value",
    },
}
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|@import\s+(?:url\()?["']?https?:|url\(\s*["']?https?:""",
    re.I,
)


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cannabis_market.cli", "report", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1500,
    )


def _check_html(page: Path) -> str:
    html = page.read_text(encoding="utf-8")
    assert not EXTERNAL.findall(html), f"{page}: external references {EXTERNAL.findall(html)[:3]}"
    assert page.stat().st_size <= 1.5e6, f"{page}: {page.stat().st_size} bytes"
    assert html.count("vegaEmbed") >= 1 or "<svg" in html
    assert "Traceback" not in html
    return html


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("nbdata") / "small", seed=7, stores=120)


@pytest.mark.slow
def test_four_notebooks_run_through_the_cli(small_dataset, tmp_path):
    out = tmp_path / "reports"
    res = _report(*NOTEBOOKS, "-p", f"dataset={small_dataset}", "--out", str(out), "--jobs", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    for name in NOTEBOOKS:
        runs = list((out / name).glob("*/results.json"))
        assert len(runs) == 1, runs
        data = json.loads(runs[0].read_text())
        assert data["status"] == "ok"
        missing = FIGURES[name] - set(data["figures"])
        assert not missing, f"{name} did not record {missing}"
        assert all(isinstance(v, int | float) for v in data["figures"].values())
        html = _check_html(runs[0].parent / "report.html")
        assert "store_id" not in html and "nb.setup" not in html  # no store rows, code hidden
    index = (out / "index.html").read_text()
    assert all(n in index for n in NOTEBOOKS) and not EXTERNAL.findall(index)
    # a second run changes nothing: every run is skipped
    again = _report(*NOTEBOOKS, "-p", f"dataset={small_dataset}", "--out", str(out))
    assert again.returncode == 0 and again.stdout.count("skip") >= 4, again.stdout


@pytest.mark.slow
def test_notebook_outage_recovers_the_generated_loss(small_dataset, tmp_path):
    """The outage report's headline interval covers the generator's true loss."""
    import yaml

    truth = yaml.safe_load((small_dataset / "manifest.yml").read_text())["truth"]["outage_2022"][
        "lost_sales_total"
    ]
    out = tmp_path / "r"
    res = _report("04_outage_impact", "-p", f"dataset={small_dataset}", "-p", "n_sims=500", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    fig = json.loads(next((out / "04_outage_impact").glob("*/results.json")).read_text())["figures"]
    assert fig["lost_sales_lo"] <= truth <= fig["lost_sales_hi"]
    assert abs(fig["lost_sales"] / truth - 1) < 0.25


@pytest.mark.slow
@pytest.mark.realdata
def test_real_data_reports_build_offline_html(tmp_path):
    real = real_data_dir()
    if not (real / "statcan_20100056_cannabis_retailers_monthly_by_province.csv").is_file():
        pytest.skip(f"real data folder {real} is absent (data/public ships it; was it deleted?)")
    data = tmp_path / "real"
    for action, file in [
        ("import-statcan", "statcan_20100056_cannabis_retailers_monthly_by_province.csv"),
        ("import-washington", "washington_lcb_retail_sales_by_license_monthly_2017-2021.xlsx"),
        ("import-oregon", "oregon_olcc_monthly_sales_prices_2016-2021.xlsx"),
    ]:
        name = action.split("-")[1]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "cannabis_market.cli",
                "data",
                action,
                str(real / file),
                "--out",
                str(data / name),
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    cfg = tmp_path / "reports.yml"
    jobs = (
        (REPO / "reports.yml")
        .read_text()
        .replace("data/real/", f"{data}/")
        .replace("notebooks/", f"{REPO}/notebooks/")
    )
    cfg.write_text(jobs)
    out = tmp_path / "out"
    res = _report(
        "statcan_outage",
        "washington_saturation",
        "oregon_prices",
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--jobs",
        "2",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    statcan = json.loads((out / "statcan_outage" / "default" / "results.json").read_text())["figures"]
    assert statcan["rel_effect_lo"] < statcan["rel_effect"] < statcan["rel_effect_hi"]
    assert (
        statcan["rel_effect_lo"] < 0 < statcan["rel_effect_hi"]
    )  # small and uncertain at monthly resolution
    html = _check_html(out / "statcan_outage" / "default" / "report.html")
    assert "cannot rule out" in html
    for job in ("washington_saturation", "oregon_prices"):
        _check_html(out / job / "default" / "report.html")
