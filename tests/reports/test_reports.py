"""Reports: parameters, reports.yml, the runner end to end on fixture notebooks, offline HTML, safety.

The end-to-end part executes the fixture notebooks in tests/fixtures/notebooks once (module fixture
``suite``) and several tests read its output; a few tests then re-run single notebooks (incremental skip,
--force, a changed grid value, --show-code, a killed run, the lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from filelock import FileLock

from cannabis_market.cli import main as cli_main
from cannabis_market.errors import InputError
from cannabis_market.reports import html as H
from cannabis_market.reports import params as P
from cannabis_market.reports import results as R
from cannabis_market.reports import runner
from cannabis_market.reports import safe as S

FIX = Path(__file__).parents[1] / "fixtures" / "notebooks"
MAX_BYTES = 1_500_000
REMOTE_REF = re.compile(
    r"""(?:\b(?:src|href|srcset|poster)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|@import[^;]*https?://|url\(\s*["']?\s*(?:https?:)?//)""",
    re.I,
)
XSS = "<script>alert(1)</script>"


def cli(*args: object) -> tuple[int, str, str]:
    """Run the report command in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(["report", *(str(a) for a in args)])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def write_config(path: Path, jobs: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"jobs": jobs}, sort_keys=False), encoding="utf-8")
    return path


def without_bundle(page: str) -> str:
    return re.sub(rf"<script {H.BUNDLE_ATTR}=.*?</script>", "", page, flags=re.S)


def visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"<[^>]+>", "", page)


# ============================================================================ parameters


CELL = """import datetime as dt
dataset = "../data/sample"  # path: where the data is
event_date = "2022-08-05"  # date: first outage day
region = "all"  # which region to report
weeks = 4  # date range length, in weeks
share = 0.05
by_chain = False
regions = ["Toronto", "Ottawa"]
horizons: list[int] = []
start: dt.date = "2022-01-01"
chain: str | None = None
"""


def test_parameters_cell_types_defaults_and_help():
    ps = P.parse_parameters_source(CELL)
    assert {n: p.type for n, p in ps.items()} == {
        "dataset": "path",
        "event_date": "date",
        "region": "str",
        "weeks": "int",
        "share": "float",
        "by_chain": "bool",
        "regions": "list[str]",
        "horizons": "list[int]",
        "start": "date",
        "chain": "str",
    }
    assert ps["weeks"].help == "date range length, in weeks"  # prose, not a "date" tag
    assert ps["event_date"].help == "first outage day"
    assert ps["chain"].nullable and ps["chain"].default is None
    assert ps["start"].default == "2022-01-01"


def test_parameters_read_from_notebook_tag():
    ps = P.read_parameters(FIX / "charts.ipynb")
    assert list(ps) == ["region", "weeks", "event_date", "label", "dataset"]
    assert P.read_parameters(FIX / "trivial.ipynb")["n"].type == "int"


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("x = dt.date(2022, 8, 5)", "must be a literal"),
        ("x = None", "needs a type"),
        ('x = "abc"  # date', "declared date"),
        ("x: dict = {}", "unsupported annotation"),
        ("a, b = 1, 2", "simple assignments"),
        ("x = 1\nx = 2", "assigned twice"),
        ("x = [1, 'a']", "cannot infer"),
        ("x = (", "not valid Python"),
    ],
)
def test_parameters_cell_errors(source, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)):
        P.parse_parameters_source(source)


@pytest.mark.parametrize(
    "ptype, raw, expected",
    [
        ("str", "Toronto, ON", "Toronto, ON"),
        ("int", "12", 12),
        ("int", "1_000", 1000),
        ("float", "0.25", 0.25),
        ("float", "3", 3.0),
        ("bool", "true", True),
        ("bool", "YES", True),
        ("bool", "1", True),
        ("bool", "false", False),
        ("bool", "no", False),
        ("bool", "0", False),
        ("date", "2022-08-05", "2022-08-05"),
        ("list[str]", "a, b,c", ["a", "b", "c"]),
        ("list[str]", '["a", "b, c"]', ["a", "b, c"]),
        ("list[str]", "", []),
        ("list[int]", "1,4,12", [1, 4, 12]),
        ("list[int]", "[1, 4]", [1, 4]),
        ("path", "data/x", "data/x"),
    ],
)
def test_convert_string_each_type(ptype, raw, expected):
    assert P.convert_string(P.Param("p", ptype, None), raw) == expected


@pytest.mark.parametrize(
    "ptype, raw",
    [
        ("int", "four"),
        ("int", "1.5"),
        ("float", "nan"),
        ("float", "abc"),
        ("bool", "maybe"),
        ("date", "2022-13-01"),
        ("date", "05/08/2022"),
        ("list[int]", "1,a"),
        ("list[int]", '["a"]'),
        ("list[str]", "[1, 2]"),
        ("list[str]", "[oops"),
    ],
)
def test_convert_string_rejects(ptype, raw):
    with pytest.raises(ValueError):
        P.convert_string(P.Param("p", ptype, None), raw)


def test_nullable_accepts_null():
    assert P.convert_string(P.Param("c", "str", None, nullable=True), "null") is None
    assert P.convert_string(P.Param("c", "str", None), "null") == "null"


def test_validate_unknown_and_wrong_type_list_valid_parameters():
    ps = P.parse_parameters_source(CELL)
    with pytest.raises(InputError) as err:
        P.validate(ps, {"regoin": "x", "weeks": "four"}, where="nb.ipynb", source="-p", from_strings=True)
    msg = str(err.value)
    assert "unknown parameter 'regoin'" in msg and "did you mean 'region'" in msg
    assert "parameter 'weeks' (int): 'four' is invalid" in msg
    assert "valid parameters:" in msg and "event_date: date = '2022-08-05'" in msg


def test_validate_typed_values_from_yaml(tmp_path):
    ps = P.parse_parameters_source(CELL)
    got = P.validate(
        ps,
        {"event_date": dt.date(2021, 1, 2), "weeks": 3, "share": 1, "regions": ["A"], "dataset": "d"},
        where="nb",
        source="yml",
        base_dir=tmp_path,
    )
    assert got == {
        "event_date": "2021-01-02",
        "weeks": 3,
        "share": 1.0,
        "regions": ["A"],
        "dataset": str(tmp_path / "d"),
    }
    for bad in ({"weeks": True}, {"weeks": 2.5}, {"by_chain": "perhaps"}, {"regions": [1]}, {"region": 3}):
        with pytest.raises(InputError):
            P.validate(ps, bad, where="nb", source="yml")


def test_parse_assignments():
    assert P.parse_assignments(["a=1", "b=x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(InputError, match="KEY=VALUE"):
        P.parse_assignments(["novalue"])


# ============================================================================ reports.yml and planning


def test_config_errors_name_file_job_and_key(tmp_path):
    cfg = tmp_path / "reports.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "jobs": [
                    {"name": "a", "notebook": "x.ipynb", "grid": {"region": "east"}, "colour": 1},
                    {"name": "a", "notebook": "y.ipynb", "timeout": -1},
                    {"notebook": "z.ipynb"},
                    {"name": "b", "notebook": "z.txt"},
                ]
            }
        )
    )
    with pytest.raises(InputError) as err:
        runner.load_config(cfg)
    msg = str(err.value)
    assert str(cfg) in msg
    assert "job 'a' (jobs[0]): key 'grid'" in msg
    assert "job 'a' (jobs[0]): unknown key(s) colour" in msg
    assert "used by another job" in msg
    assert "key 'timeout'" in msg
    assert "jobs[2]: key 'name'" in msg
    assert "job 'b' (jobs[3]): key 'notebook'" in msg
    cfg.write_text("jobs: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        runner.load_config(cfg)
    cfg.write_text("reports: []")
    with pytest.raises(InputError, match="unknown top-level"):
        runner.load_config(cfg)


def test_cli_bad_config_and_params_exit_2_without_traceback(tmp_path):
    cfg = tmp_path / "reports.yml"
    cfg.write_text("jobs:\n  - name: x\n")
    code, _, err = cli("--config", cfg, "--out", tmp_path / "out")
    assert code == 2 and err.startswith("error:") and "key 'notebook'" in err and "Traceback" not in err
    write_config(cfg, [{"name": "t", "notebook": str(FIX / "trivial.ipynb")}])
    code, _, err = cli("--config", cfg, "--out", tmp_path / "out", "-p", "n=two")
    assert code == 2 and "parameter 'n' (int): 'two' is invalid" in err and "valid parameters" in err
    code, _, err = cli("--config", cfg, "--out", tmp_path / "out", "-p", "m=1")
    assert code == 2 and "unknown parameter 'm'" in err
    code, _, err = cli("--config", cfg, "--out", tmp_path / "out", "nosuchreport")
    assert code == 2 and "unknown report name(s): nosuchreport" in err and "Jobs in" in err
    code, _, err = cli("--config", cfg, "--out", tmp_path / "out", "-p", "oops")
    assert code == 2 and "KEY=VALUE" in err
    assert not (tmp_path / "out").exists()  # nothing started


def test_help_documents_exit_codes():
    code, out, _ = cli("--help")
    assert code == 0
    for line in ("0  every run succeeded", "1  at least one run failed", "2  bad input"):
        assert line in out


def test_grid_expansion_overrides_and_requires(tmp_path):
    cfg = write_config(
        tmp_path / "reports.yml",
        [
            {
                "name": "charts",
                "notebook": str(FIX / "charts.ipynb"),
                "parameters": {"event_date": dt.date(2022, 8, 5)},
                "grid": {"region": ["east", "west"], "weeks": [2, 4]},
            },
            {"name": "real", "notebook": str(FIX / "trivial.ipynb"), "requires": "no/such/folder"},
        ],
    )
    config = runner.load_config(cfg)
    plan = runner.plan(config, [], out=tmp_path / "out")
    assert sorted(r.slug for r in plan.runs) == [
        "region=east,weeks=2",
        "region=east,weeks=4",
        "region=west,weeks=2",
        "region=west,weeks=4",
    ]
    run = plan.runs[0]
    assert run.parameters == {"event_date": "2022-08-05", "region": "east", "weeks": 2}
    assert run.resolved["label"] == f"Toronto {XSS}" and run.cwd == str(FIX)
    assert run.dataset and run.dataset["fingerprint"] == runner.fingerprint_path(FIX / "data")
    assert [(s.report, s.status) for s in plan.skipped] == [("real", "skipped")]
    assert "does not exist" in plan.skipped[0].message
    # -p wins over a grid parameter: the grid collapses
    plan2 = runner.plan(config, ["charts"], {"region": "north"}, out=tmp_path / "out")
    assert sorted(r.slug for r in plan2.runs) == [
        "region=north,weeks=2",
        "region=north,weeks=4",
    ]
    # a notebook stem runs with its own defaults
    plan3 = runner.plan(config, ["trivial"], out=tmp_path / "out", cwd=tmp_path)
    assert [(r.report, r.slug, r.parameters) for r in plan3.runs] == [("trivial", "default", {})]
    bad = write_config(
        tmp_path / "bad.yml",
        [{"name": "c", "notebook": str(FIX / "charts.ipynb"), "grid": {"weeks": [1, "x"]}}],
    )
    with pytest.raises(InputError, match="key 'grid'"):
        runner.plan(runner.load_config(bad), [], out=tmp_path / "out")


def test_slug_readable_stable_and_hashed():
    assert runner.make_slug({}) == "default"
    assert runner.make_slug({"weeks": 4, "region": "all"}) == "region=all,weeks=4"
    assert runner.make_slug({"regions": ["a", "b"]}) == "regions=a+b"
    odd = runner.make_slug({"region": "Québec/Sud"})
    assert re.fullmatch(r"region=Qu-bec-Sud-[0-9a-f]{8}", odd)
    assert runner.make_slug({"region": "Québec-Sud"}) != odd
    long = runner.make_slug({"regions": [f"region{i}" for i in range(30)]})
    assert len(long) <= 60 and long == runner.make_slug({"regions": [f"region{i}" for i in range(30)]})


def test_fingerprint_path(tmp_path):
    (tmp_path / "a.csv").write_text("1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_text("2")
    fp = runner.fingerprint_path(tmp_path)
    assert fp == runner.fingerprint_path(tmp_path)
    (tmp_path / ".hidden").write_text("ignored")
    assert runner.fingerprint_path(tmp_path) == fp
    (tmp_path / "sub" / "b.csv").write_text("22")
    assert runner.fingerprint_path(tmp_path) != fp
    assert runner.fingerprint_path(tmp_path / "missing") == "missing"


def test_recover_restores_a_report_caught_mid_swap(tmp_path):
    from cannabis_market.reports import layout

    layout.claim_out(tmp_path)
    work = tmp_path / layout.WORK_DIR
    saved = work / "old" / "1234abcd"
    saved.mkdir(parents=True)
    (saved / "report.html").write_text("previous")
    (work / "old" / "1234abcd.json").write_text(json.dumps({"dest": "r/default"}))
    (work / "tmp" / "99999999").mkdir()
    # names that look like the old runner's temporary names belong to the user now: left alone
    (tmp_path / "r" / ".old-default-1234abcd").mkdir(parents=True)
    (tmp_path / "r" / ".tmp-default-99999999").mkdir()
    runner.recover(tmp_path)
    assert (tmp_path / "r" / "default" / "report.html").read_text() == "previous"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        ".old-default-1234abcd",
        ".tmp-default-99999999",
        "default",
    ]
    assert list((work / "tmp").iterdir()) == [] and list((work / "old").iterdir()) == []


def test_run_that_cannot_start_or_export_still_leaves_a_failed_page(tmp_path, monkeypatch):
    import dataclasses

    config = runner.load_config(None)
    (spec,) = runner.plan(config, [str(FIX / "trivial.ipynb")], out=tmp_path / "out").runs
    spec = dataclasses.replace(spec, kernel_name="no-such-kernel")
    res = runner.execute_run(spec)  # the notebook process fails: no such kernel
    assert res.status == "failed" and "no-such-kernel" in res.error
    page = (spec.out_dir / "report.html").read_text()
    assert "This report did not finish" in page and "no-such-kernel" in page
    monkeypatch.setattr(H, "export_notebook", lambda *a, **k: 1 / 0)  # and now the export itself breaks
    res = runner.execute_run(spec)
    assert res.status == "failed" and res.error.startswith("runner error: ZeroDivisionError")
    saved = json.loads((spec.out_dir / "results.json").read_text())
    assert saved["status"] == "failed" and "ZeroDivisionError" in (spec.out_dir / "report.html").read_text()
    assert not list((tmp_path / "out" / ".cannabis-market" / "tmp").iterdir())


# ============================================================================ results.record


def test_record_is_a_noop_with_a_note_interactively(monkeypatch, capsys):
    monkeypatch.delenv(R.RESULTS_ENV, raising=False)
    monkeypatch.setattr(R, "_noted", False)
    assert R.record("x", 1.5) is None  # nothing printed on a cell's last line either
    R.record_many({"y": 2})
    err = capsys.readouterr().err
    assert err.count("note: record()") == 1


def test_record_writes_results_json(monkeypatch, tmp_path):
    import numpy as np

    monkeypatch.setenv(R.RESULTS_ENV, str(tmp_path))
    R.record("lost", np.float64(12.5))
    R.record_many(
        {"day": dt.date(2022, 8, 5), "n": np.int64(3), "bad": float("nan"), "xs": pl.Series([1, 2])}
    )
    R.record("lost", 13.0)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["figures"] == {"lost": 13.0, "day": "2022-08-05", "n": 3, "bad": None, "xs": [1, 2]}
    with pytest.raises(TypeError):
        R.record("obj", object())


# ============================================================================ safety


def sales_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "region": ["A"] * 3 + ["B"] * 2 + ["C"] * 4 + ["D"] * 3,
            "store_id": [f"s{i}" for i in range(12)],
            "revenue": [10.0, 10, 10, 5, 5, 100, 1, 1, 1, 6, 5, 5],
        }
    )


def test_aggregate_safely_min_stores_and_dominance():
    out = S.aggregate_safely(sales_frame().lazy(), by=["region"], value="revenue")
    assert out.columns == ["region", "revenue", "n_stores", "suppressed"]  # no share column: it would leak
    rows = {r["region"]: r for r in out.to_dicts()}
    assert len(rows) == 4  # suppressed cells are shown, not dropped
    assert rows["A"] == {"region": "A", "revenue": 30.0, "n_stores": 3, "suppressed": False}
    assert rows["B"]["suppressed"] and rows["B"]["revenue"] is None  # 2 stores < 3
    assert rows["C"]["suppressed"] and rows["C"]["revenue"] is None  # one store 97% > 50%
    assert not rows["D"]["suppressed"] and rows["D"]["revenue"] == 16.0  # 6/16 = 37.5%
    relaxed = S.aggregate_safely(sales_frame(), by="region", min_stores=2, dominance=0.99)
    assert relaxed.filter(pl.col("suppressed"))["region"].to_list() == []
    strict = S.aggregate_safely(sales_frame(), by="region", dominance=0.35)
    assert strict.filter(pl.col("suppressed"))["region"].to_list() == ["B", "C", "D"]


def test_suppress_on_precomputed_columns_and_policy(monkeypatch):
    df = pl.DataFrame(
        {"g": ["x", "y", "z"], "v": [1.0, 2.0, 3.0], "n_stores": [5, 2, 5], "max_share": [0.2, 0.1, 0.7]}
    )
    out = S.suppress(df, "v", "n_stores", "max_share")
    assert out["suppressed"].to_list() == [False, True, True]
    assert out["v"].to_list() == [1.0, None, None] and "max_share" not in out.columns
    kept = S.suppress(df, ["v"], max_share_col="max_share", keep_share=True, min_stores=2, dominance=0.8)
    assert kept["suppressed"].to_list() == [False, False, False] and "max_share" in kept.columns
    monkeypatch.setattr(S, "_policy", None)
    monkeypatch.setenv("CM_MIN_STORES", "6")
    assert S.suppress(df, "v", max_share_col=None)["suppressed"].to_list() == [True, True, True]
    with pytest.raises(InputError):
        S.set_policy(dominance=1.5)
    with pytest.raises(InputError, match="not in the frame"):
        S.suppress(df, "revenue")


def test_assert_no_store_rows_everywhere():
    with pytest.raises(S.DisclosureError, match="store_id"):
        S.assert_no_store_rows(sales_frame())
    with pytest.raises(S.DisclosureError):
        S.assert_no_store_rows(sales_frame().lazy())
    with pytest.raises(S.DisclosureError):
        S.assert_no_store_rows(sales_frame().to_pandas())
    S.assert_no_store_rows(S.aggregate_safely(sales_frame(), by="region"))
    with pytest.raises(S.DisclosureError):
        H.table_html(sales_frame())
    with pytest.raises(S.DisclosureError, match="store-level"):
        S.aggregate_safely(sales_frame(), by=["store_id"])


def test_unsuppressed_frames_are_refused_until_suppressed():
    import altair as alt

    raw = pl.DataFrame(
        {"region": ["A", "B"], "revenue": [30.0, 10.0], "n_stores": [3, 2], "max_share": [0.3, 0.9]}
    )
    with pytest.raises(S.DisclosureError, match="max_share"):
        H.table_html(raw)
    with pytest.raises(S.DisclosureError, match="1 row\\(s\\) built from fewer than 3 stores"):
        H.table_html(raw.drop("max_share"))
    safe = S.suppress(raw, "revenue")
    assert "suppressed" in H.table_html(safe)
    with pytest.raises(S.DisclosureError):
        H.chart(alt.Chart(raw).mark_bar().encode(x="region", y="revenue"))
    withheld = H.offline_renderer(
        alt.Chart(raw.drop("max_share")).mark_bar().encode(x="region", y="revenue").to_dict()
    )
    assert "Chart withheld" in withheld["text/html"]
    ok = H.offline_renderer(alt.Chart(safe).mark_bar().encode(x="region", y="revenue").to_dict())
    assert H.CHART_CLASS in ok["text/html"]


def test_chart_with_store_rows_or_url_is_refused():
    import altair as alt

    chart = alt.Chart(sales_frame()).mark_bar().encode(x="store_id:N", y="revenue:Q")
    with pytest.raises(S.DisclosureError):
        H.chart(chart)
    bundle = H.offline_renderer(chart.to_dict())
    assert "Chart withheld" in bundle["text/html"] and "s11" not in bundle["text/html"]
    with pytest.raises(S.DisclosureError, match="inlined"):
        H.check_spec({"data": {"url": "https://example.org/x.csv"}, "mark": "bar"})


def test_table_html_escapes_and_marks_suppressed():
    df = pl.DataFrame(
        {
            "municipality": [XSS, "Ottawa"],
            "revenue": [None, 1234.5],
            "n_stores": [1, 4],
            "suppressed": [True, False],
        }
    )
    page = H.table_html(df, caption="<b>caption</b>", formats={"revenue": ",.0f"})
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;caption&lt;/b&gt;" in page
    assert '<td class="cm-num cm-suppressed">suppressed</td>' in page
    assert ">1,230<" in page  # 1,234.5 published to 3 significant digits
    assert "<th>suppressed</th>" not in page and "fewer than 3 stores" in page


def test_chart_spec_escaped_inside_script():
    import altair as alt

    spec = alt.Chart(pl.DataFrame({"m": [XSS], "v": [1]})).mark_bar().encode(x="m:N", y="v:Q").to_dict()
    snippet = H.chart_html(spec)
    assert XSS not in snippet and "\\u003cscript\\u003e" in snippet and "$schema" not in snippet


def test_svg_fallback_renderer():
    import altair as alt

    spec = alt.Chart(pl.DataFrame({"m": [XSS], "v": [1]})).mark_bar().encode(x="m:N", y="v:Q").to_dict()
    bundle = H.svg_renderer(spec)
    svg = bundle["image/svg+xml"]
    assert svg.lstrip().startswith("<svg") and XSS not in svg and "&lt;script&gt;" in svg
    assert "text/html" not in bundle  # no JavaScript at all
    assert "Chart withheld" in H.svg_renderer(alt.Chart(sales_frame()).mark_bar().to_dict())["text/html"]


def test_show_dispatches_safely(monkeypatch):
    shown: list = []
    monkeypatch.setattr(H, "_display", lambda obj, raw=False: shown.append(obj))

    class Result:
        def report(self) -> str:
            return f"Plain words about {XSS}"

        def summary(self) -> pl.DataFrame:
            return pl.DataFrame({"region": ["A"], "revenue": [1.0]})

    H.show(Result())
    H.show(f"hello {XSS}")
    html_parts = [b["text/html"] for b in shown]
    assert len(html_parts) == 3 and "cm-table" in html_parts[1]
    assert all(XSS not in h for h in html_parts) and "&lt;script&gt;" in html_parts[2]
    with pytest.raises(S.DisclosureError):
        H.show(sales_frame())


# ============================================================================ offline HTML (no kernel)


def test_make_offline_strips_remote_references():
    page = (
        '<html><head><script src="https://cdn.example/require.js"></script>'
        '<link rel="stylesheet" href="https://fonts.example/css">'
        "<style>@import url('https://fonts.example/x.css'); .a{background:url(https://x.example/i.png)}</style>"
        "<script src='//cdn.example/m.js'></script></head><body>"
        '<img src="https://x.example/logo.png" alt="logo"><a href="https://www.ontario.ca">source</a>'
        "</body></html>"
    )
    assert len(H.external_refs(page)) >= 5
    clean = H.make_offline(page)
    assert H.external_refs(clean) == []
    assert '<a href="https://www.ontario.ca">source</a>' in clean  # a hyperlink loads nothing
    assert H.BUNDLE_ATTR not in clean  # no chart, no bundle


def test_export_notebook_two_charts_one_bundle_and_show_code():
    import altair as alt
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Title $x^2$"))
    code = nbformat.v4.new_code_cell("secret_code_marker = 1")
    for i in range(2):
        spec = alt.Chart(pl.DataFrame({"x": [1, 2], "y": [i, 3]})).mark_line().encode(x="x", y="y").to_dict()
        code.outputs.append(nbformat.v4.new_output("display_data", data=H.offline_renderer(spec)))
    code.outputs.append(nbformat.v4.new_output("stream", name="stderr", text="a library warning\n"))
    nb.cells.append(code)
    page = H.export_notebook(nb, meta={"Parameters": {"region": XSS}})
    assert page.count(H.BUNDLE_ATTR) == 1 and page.count("window.vegaEmbed=") == 1
    assert page.count(f'class="{H.CHART_CLASS}"') == 2
    assert "secret_code_marker" not in page and "a library warning" not in page
    assert XSS not in page and H.external_refs(page) == []
    shown = H.export_notebook(nb, show_code=True)
    assert "secret_code_marker" in visible_text(shown) and "a library warning" in shown
    assert H.add_vega_bundle(page) == page  # idempotent


# ============================================================================ end to end


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Run every fixture notebook once through the CLI (2 parallel workers)."""
    base = tmp_path_factory.mktemp("suite")
    cfg = write_config(
        base / "reports.yml",
        [
            {"name": "charts", "notebook": str(FIX / "charts.ipynb")},
            {"name": "fails", "notebook": str(FIX / "fails.ipynb")},
            {"name": "sleepy", "notebook": str(FIX / "sleeps.ipynb"), "timeout": 2},
            {"name": "trivial", "notebook": str(FIX / "trivial.ipynb"), "grid": {"n": [1, 2]}},
        ],
    )
    out = base / "out"
    t0 = time.monotonic()
    code, stdout, stderr = cli("--config", cfg, "--out", out, "--jobs", "2")
    return {
        "code": code,
        "stdout": stdout,
        "stderr": stderr,
        "out": out,
        "cfg": cfg,
        "seconds": time.monotonic() - t0,
    }


def results_of(suite, report, slug="default") -> dict:
    return json.loads((suite["out"] / report / slug / "results.json").read_text())


def page_of(suite, report, slug="default") -> str:
    return (suite["out"] / report / slug / "report.html").read_text(encoding="utf-8")


@pytest.fixture
def own_suite(suite, tmp_path):
    """A private copy of the suite's output for tests that re-run into it (``suite`` stays untouched,
    so no test depends on another's order)."""
    out = tmp_path / "out"
    shutil.copytree(suite["out"], out, symlinks=True)
    return {**suite, "out": out}


def test_suite_exit_code_progress_and_files(suite):
    assert suite["code"] == 1, suite["stdout"] + suite["stderr"]
    out = suite["stdout"]
    assert re.search(r"ok +charts/default \(\d+\.\d s\)", out)
    assert re.search(r"FAILED +fails/default .*ValueError: boom", out)
    assert re.search(r"FAILED +sleepy/default .*timed out after 2 s", out)
    assert "done: 3 ok, 0 skipped, 2 failed" in out
    for report, slug in [
        ("charts", "default"),
        ("fails", "default"),
        ("sleepy", "default"),
        ("trivial", "n=1"),
        ("trivial", "n=2"),
    ]:
        folder = suite["out"] / report / slug
        names = {p.name for p in folder.iterdir()}
        assert {"report.html", "results.json"} <= names
        assert "executed.ipynb" not in names  # kept private, never shared
        assert (suite["out"] / ".cannabis-market" / "private" / report / slug / "executed.ipynb").is_file()
    assert not list((suite["out"] / ".cannabis-market" / "tmp").iterdir())


def test_results_json_contents(suite):
    res = results_of(suite, "charts")
    assert res["status"] == "ok" and res["error"] is None
    assert res["figures"]["total_revenue"] == 14200.0  # 14,173.5 published to 3 significant digits
    assert res["figures"]["event_date"] == "2022-08-05" and res["figures"]["weeks"] == 4
    assert res["parameters"]["region"] == "all" and res["given"] == {}
    assert res["dataset"]["fingerprint"] == runner.fingerprint_path(FIX / "data")
    assert res["package_version"] and res["duration_s"] > 0
    assert dt.datetime.fromisoformat(res["started_at"]) <= dt.datetime.fromisoformat(res["finished_at"])
    assert results_of(suite, "trivial", "n=2")["parameters"] == {"n": 2}


def test_reports_are_offline_and_small(suite):
    pages = list(suite["out"].glob("*/*/report.html")) + [suite["out"] / "index.html"]
    assert len(pages) == 6
    for path in pages:
        page = path.read_text(encoding="utf-8")
        assert not REMOTE_REF.search(page), (path, REMOTE_REF.search(page))
        assert H.external_refs(page) == []
        # outside the Vega bundle the only URLs allowed are SVG/XML namespace names
        others = [
            u for u in re.findall(r"https?://[^\s\"'<>)]+", without_bundle(page)) if "www.w3.org" not in u
        ]
        assert others == [], (path, others)
        assert path.stat().st_size <= MAX_BYTES


def test_two_charts_bundle_once_and_size(suite):
    page = page_of(suite, "charts")
    assert page.count(H.BUNDLE_ATTR) == 1
    assert page.count("window.vegaEmbed=") == 1
    assert page.count(f'class="{H.CHART_CLASS}"') == 2
    assert page.index(H.BUNDLE_ATTR) < page.index("</head>")
    assert len(page.encode()) <= MAX_BYTES
    assert H.BUNDLE_ATTR not in page_of(suite, "trivial", "n=1")  # no chart, no bundle


def test_code_hidden_by_default(suite):
    page = page_of(suite, "charts")
    text = visible_text(page)
    assert "nb.setup()" not in page and "aggregate_safely" not in page
    assert "In\u00a0[" not in text and "In&nbsp;[" not in page
    assert "weeks: 4" in text and "Revenue by municipality" in text


def test_escaping_in_real_report(suite):
    page = page_of(suite, "charts")
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # table cell and text
    assert "\\u003cscript\\u003ealert(1)" in page  # chart title inside the spec
    assert "suppressed" in visible_text(page)
    assert "2 of 3 values not drawn: suppressed" in visible_text(page)  # the bar chart says so
    # a store-level frame left as a cell's last expression is withheld, not printed
    assert "store-level rows withheld" in visible_text(page) and ">S1<" not in page


def test_failure_isolated_and_visible(suite):
    res = results_of(suite, "fails")
    assert res["status"] == "failed" and res["error"] == "ValueError: boom <b>not bold</b>"
    assert res["figures"] == {"before_failure": 1}  # recorded before the failure, nothing after
    page = page_of(suite, "fails")
    assert "cm-banner" in page and "This report did not finish: ValueError: boom &lt;b&gt;not bold" in page
    assert "Traceback" in visible_text(page) or "ValueError" in visible_text(page)
    assert "<b>not bold</b>" not in page
    assert results_of(suite, "charts")["status"] == "ok"
    index = (suite["out"] / "index.html").read_text()
    row = re.search(r'<tr class="failed"><td>fails</td>.*?</tr>', index)
    assert row and "FAILED" in row.group(0) and 'href="fails/default/report.html"' in row.group(0)
    assert '<tr class="ok"><td>charts</td>' in index and "<script" not in index


def test_timeout_marks_failed(suite):
    res = results_of(suite, "sleepy")
    assert res["status"] == "failed" and res["timed_out"] is True
    assert res["error"] == "timed out after 2 s"
    assert res["duration_s"] < 60
    assert "timed out after 2 s" in page_of(suite, "sleepy")


def test_changed_parameter_reruns_only_that_run(own_suite, tmp_path):
    cfg = write_config(
        tmp_path / "reports.yml",
        [{"name": "trivial", "notebook": str(FIX / "trivial.ipynb"), "grid": {"n": [1, 3]}}],
    )
    code, out, err = cli("--config", cfg, "--out", own_suite["out"], "trivial")
    assert code == 0, out + err
    assert re.search(r"skip +trivial/n=1: unchanged", out)
    assert "ok      trivial/n=3" in out and "done: 1 ok, 1 skipped, 0 failed" in out
    assert results_of(own_suite, "trivial", "n=3")["parameters"] == {"n": 3}


def test_incremental_skip_then_force_with_show_code(own_suite):
    before = {p: p.stat().st_mtime_ns for p in own_suite["out"].glob("*/*/report.html")}
    code, out, err = cli("--config", own_suite["cfg"], "--out", own_suite["out"], "charts", "trivial")
    assert code == 0, out + err
    assert out.count(" skip ") == 3 and "unchanged since" in out and "start" not in out
    assert {p: p.stat().st_mtime_ns for p in own_suite["out"].glob("*/*/report.html")} == before
    first = results_of(own_suite, "trivial", "n=1")["finished_at"]
    time.sleep(1.1)
    args = ("--config", own_suite["cfg"], "--out", own_suite["out"], "trivial", "-p", "n=1")
    code, out, _ = cli(*args, "--force", "--show-code")
    assert code == 0 and "ok      trivial/n=1" in out and "done: 1 ok, 0 skipped, 0 failed" in out
    assert results_of(own_suite, "trivial", "n=1")["finished_at"] != first
    page = page_of(own_suite, "trivial", "n=1")
    assert "print(n + 1)" in visible_text(page) and "jp-InputArea-editor" in page
    assert "In\u00a0[" in visible_text(page) or "In&nbsp;[" in page  # prompts shown with the code
    assert H.external_refs(page) == []
    # hiding the code again is a change, so that run would execute again (checked without running it)
    config = runner.load_config(own_suite["cfg"])
    again = runner.plan(config, ["trivial"], {"n": "1"}, out=own_suite["out"])
    assert [r.slug for r in again.runs] == ["n=1"] and again.skipped == []
    same = runner.plan(config, ["trivial"], {"n": "1"}, out=own_suite["out"], show_code=True)
    assert same.runs == [] and [r.slug for r in same.skipped] == ["n=1"]


def _processes_mentioning(fragment: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if fragment.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def test_killed_run_leaves_previous_report_intact(own_suite):
    folder = own_suite["out"] / "sleepy" / "default"
    before = {name: (folder / name).read_bytes() for name in ("report.html", "results.json")}
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "cannabis_market", "report", "--config", str(own_suite["cfg"]),
           "--out", str(own_suite["out"]), "sleepy", "--force", "--timeout", "120"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        tmp_dirs: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            tmp_dirs = list((own_suite["out"] / ".cannabis-market" / "tmp").glob("*"))
            if tmp_dirs and (tmp_dirs[0] / "executed.ipynb").exists():
                break  # the notebook is running: papermill has written its first save
            time.sleep(0.2)
        assert tmp_dirs, proc.communicate()[0] if proc.poll() is not None else "run never started"
        os.killpg(proc.pid, signal.SIGKILL)  # the "crash"
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert {name: (folder / name).read_bytes() for name in before} == before
    # the orphaned notebook process notices its supervisor is gone and exits
    deadline = time.monotonic() + 20
    while _processes_mentioning(tmp_dirs[0].name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_mentioning(tmp_dirs[0].name) == []
    # the next command cleans up the half-written folder
    code, out, _ = cli("--config", own_suite["cfg"], "--out", own_suite["out"], "charts")
    assert code == 0 and not list((own_suite["out"] / ".cannabis-market" / "tmp").iterdir())


def test_lock_second_command_waits_then_gives_up(own_suite):
    lock = FileLock(str(own_suite["out"] / runner.LOCK_NAME), thread_local=False)
    lock.acquire()
    try:
        t0 = time.monotonic()
        code, out, err = cli(
            "--config", own_suite["cfg"], "--out", own_suite["out"], "charts", "--lock-timeout", "0.5"
        )
        assert code == 3 and time.monotonic() - t0 >= 0.5
        assert "another `cannabis-market report` is writing to" in err and "Traceback" not in err
    finally:
        lock.release()
    lock.acquire()
    threading.Timer(1.0, lock.release).start()
    code, out, err = cli(
        "--config", own_suite["cfg"], "--out", own_suite["out"], "charts", "--lock-timeout", "30"
    )
    assert code == 0 and "skip" in out, out + err
