"""`cannabis-market data import-*` / `fetch-statcan` wiring: each subcommand calls its importer with the
parsed options, prints what was written and the importer's warnings (importers replaced by recorders)."""

from __future__ import annotations

import importlib

import pytest

from cannabis_market.cli import main

CASES = [
    (
        ["import-washington", "w.xlsx", "--out", "o", "--sheet", "S", "--keep-incomplete", "--threshold", "0.9",
         "--grace-months", "2"],
        "adapters.washington:import_washington",
        (("w.xlsx", "o"), {"sheet": "S", "keep_incomplete": True, "threshold": 0.9, "grace_months": 2}),
    ),
    (["import-oregon", "or.xlsx", "--out", "o"], "adapters.oregon:import_oregon", (("or.xlsx", "o"), {"sheet": None})),
    (
        ["import-colorado", "--out", "o", "--county", "c.csv"],
        "adapters.colorado:import_colorado",
        (("o",), {"monthly_revenue": None, "stores": None, "county": "c.csv"}),
    ),
    (
        ["import-agco", "a.csv", "--out", "o", "--snapshot", "2024-01-31"],
        "adapters.agco:import_agco",
        (("a.csv", "o"), {"snapshot": "2024-01-31", "dates": None}),
    ),
    (
        ["import-pos", "x.csv", "y.csv", "--mapping", "m.yml", "--out", "o"],
        "adapters.pos:import_pos",
        ((["x.csv", "y.csv"], "m.yml", "o"), {"scheduler": None}),
    ),
    (
        ["import-statcan", "s.csv", "--out", "o", "--adjustment", "both"],
        "statcan:import_statcan",
        (("s.csv", "o"), {"adjustment": "both"}),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "target", "expected"), CASES, ids=lambda v: v[0] if isinstance(v, list) else ""
)
def test_import_subcommands_call_their_importer(monkeypatch, capsys, argv, target, expected) -> None:
    module, function = target.split(":")
    calls = []

    def recorder(*args, **kwargs):
        calls.append((args, kwargs))
        extra = (["row 3: unknown municipality"],) if function == "import_agco" else ()
        return ("OUT", "3 stores", *extra)

    monkeypatch.setattr(importlib.import_module(f"cannabis_market.data.{module}"), function, recorder)
    assert main(["data", *argv]) == 0
    assert calls == [expected]
    out, err = capsys.readouterr()
    assert out == "wrote OUT: 3 stores\n"
    assert ("warning: row 3: unknown municipality" in err) == (function == "import_agco")


def test_fetch_statcan_passes_options_and_progress(monkeypatch, capsys) -> None:
    from cannabis_market.data.adapters import statcan_fetch

    seen = {}

    def recorder(out, **kwargs):
        seen.update(kwargs, out=out)
        kwargs["progress"]("downloading")
        return out, "24 months"

    monkeypatch.setattr(statcan_fetch, "fetch_statcan", recorder)
    assert main(["data", "fetch-statcan", "--out", "sc", "--table", "10100164", "--file", "t.zip"]) == 0
    assert {k: seen[k] for k in ("out", "table", "file", "timeout", "adjustment")} == {
        "out": "sc", "table": "10100164", "file": "t.zip", "timeout": 60.0, "adjustment": "unadjusted",
    }  # fmt: skip
    out, err = capsys.readouterr()
    assert out == "wrote sc: 24 months\n" and err == "downloading\n"
