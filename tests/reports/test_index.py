"""The reports index: plain headline figures with units and intervals, job descriptions, skipped jobs."""

from __future__ import annotations

import json
from pathlib import Path

from cannabis_market.reports.index import headline_figures, render_index, write_index
from cannabis_market.reports.layout import RUN_MARKER


def _run(root: Path, report: str, figures: dict, currency: str | None, status: str = "ok") -> None:
    run = root / report / "default"
    run.mkdir(parents=True)
    (run / RUN_MARKER).write_text("", encoding="utf-8")
    (run / "report.html").write_text("<html></html>", encoding="utf-8")
    record = {"report": report, "slug": "default", "status": status, "figures": figures, "currency": currency,
              "given": {}, "finished_at": "2026-01-01T10:00:00+00:00", "duration_s": 3.0}  # fmt: skip
    (run / "results.json").write_text(json.dumps(record), encoding="utf-8")


def test_money_figures_carry_the_currency_and_their_interval():
    figs = {"lost_sales": 6_649_670.64, "lost_sales_lo": 6_030_000.0, "lost_sales_hi": 7_270_000.0}
    assert headline_figures(figs, "CAD") == ["Lost sales CA$6.65M [CA$6.03M, CA$7.27M]"]
    assert headline_figures(figs, "USD") == ["Lost sales US$6.65M [US$6.03M, US$7.27M]"]


def test_units_are_inferred_from_the_figure_names():
    figs = {
        "rel_effect": -0.124, "rel_effect_lo": -0.188, "rel_effect_hi": -0.042,
        "p_value": 0.000999, "stores_at_risk": 15, "price_elasticity": -1.17,
    }  # fmt: skip
    text = headline_figures(figs, "USD", limit=10)
    assert text == [
        "Relative effect -12.4% [-18.8%, -4.2%]",
        "p < 0.001",
        "Stores below break-even 15",
        "Price elasticity -1.17",
    ]


def test_withheld_figures_and_long_lists_are_said_plainly():
    assert headline_figures({"total_sales": None}, "CAD") == ["Total sales withheld"]
    many = {f"figure_{i}": float(i) for i in range(7)}
    out = headline_figures(many, "CAD", limit=4)
    assert len(out) == 5 and out[-1] == "+3 more in results.json"


def test_index_lists_descriptions_skipped_jobs_and_plain_figures(tmp_path):
    _run(
        tmp_path,
        "outage",
        {"lost_sales": 142000.0, "lost_sales_lo": 43900.0, "lost_sales_hi": 231000.0},
        "CAD",
    )
    _run(tmp_path, "washington", {"carrying_capacity": 451.0}, "USD")
    (tmp_path / ".cannabis-market").mkdir()
    skipped = [
        {
            "report": "statcan_outage",
            "reason": "requires data/real/statcan/manifest.yml, which does not exist",
        }
    ]
    write_index(tmp_path, {"outage": "What the outage cost", "statcan_outage": "StatCan monthly"}, skipped)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Lost sales CA$142k [CA$43.9k, CA$231k]" in page
    assert "Store ceiling 451" in page and "US$" not in page.split("Store ceiling")[0][-200:]
    assert "lost_sales=" not in page and "lost_sales_lo" not in page
    assert "What the outage cost" in page and "StatCan monthly" in page
    assert "requires data/real/statcan/manifest.yml, which does not exist" in page
    assert "2 ok, 0 failed, 1 skipped" in page
    # a later rewrite without the job information (e.g. --prune) keeps what was last given
    again = render_index(tmp_path)
    assert "What the outage cost" in again and "statcan_outage" in again
