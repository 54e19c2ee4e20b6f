"""The hostile reader: every report notebook, run through the report command on a crafted dataset, must
not let anyone recover one store's figures from anything in the output folder.

The dataset (a small generated one, then crafted) has a one-store region (Lonely), a region where one
store makes 66% of sales (Dominated), a category sold by one store (beverages) and one sold by two
(extracts), and a store that opens and closes inside the window. The scan reads every file of the output
folder -- visible text of each report.html, the chart data embedded in it, its tables, results.json and
index.html -- and checks:

* selections with too few stores are "suppressed" pages with no figures (status suppressed, exit 0);
* no published number carries more than 3 significant digits, and none with more matches any store's
  total, monthly sales or price per gram within 0.05% (direct disclosure);
* no table hides a lone cell, and the shown totals minus the shown cells never give a protected store's
  figure within the rounding error (subtraction);
* no chart period hides exactly one cell (series subtraction);
* the executed notebooks are not in the shared folder.

Runtime: 13 runs with --jobs 2 (about 1.5 minutes on 2 idle cores; a guarded selection is the same
guard in every notebook, so the dominated region is run for the overview and the outage only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import io
import json
import math
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from cannabis_market.cli import main as cli_main
from cannabis_market.data.generate import generate_dataset


class _NoAliases(yaml.SafeDumper):
    """reports.yml refuses anchors/aliases (billion-laughs guard): write shared values out in full."""

    def ignore_aliases(self, data):  # noqa: ARG002 - PyYAML hook
        return True


REPO = Path(__file__).resolve().parents[2]
NB = REPO / "notebooks"
START, END = "2021-01-01", "2022-12-31"
TOL = 0.0005  # 0.05%


# ------------------------------------------------------------------------------------------ dataset


def craft(src: Path, out: Path) -> dict[str, object]:
    """Copy a generated dataset and plant the hard cases; returns which stores are which."""
    shutil.copytree(src, out)
    stores = pl.read_csv(out / "stores.csv", infer_schema_length=0)
    sales = pl.read_parquet(out / "sales.parquet")
    first = sales.group_by("store_id").agg(pl.col("date").min().alias("first"))
    early = set(first.filter(pl.col("first") < dt.date(2021, 5, 1))["store_id"].to_list())
    east = [s for s in stores.filter(pl.col("region") == "East")["store_id"].to_list() if s in early]
    others = stores.filter(pl.col("region") != "East")["store_id"].to_list()
    lone, solo, duo, open_close = east[0], east[1], east[2:4], east[4]
    dominated = others[:3]
    stores = stores.with_columns(
        pl.when(pl.col("store_id") == lone)
        .then(pl.lit("Lonely"))
        .when(pl.col("store_id").is_in(dominated))
        .then(pl.lit("Dominated"))
        .otherwise(pl.col("region"))
        .alias("region")
    )
    t = dict(
        sales.filter(pl.col("store_id").is_in(dominated))
        .group_by("store_id")
        .agg(pl.col("revenue").sum())
        .iter_rows()
    )
    f = 0.66 * (t[dominated[1]] + t[dominated[2]]) / (0.34 * t[dominated[0]])  # 66% of the region
    big = pl.col("store_id") == dominated[0]
    sales = sales.with_columns(
        pl.when(big).then(pl.col("revenue") * f).otherwise(pl.col("revenue")).alias("revenue"),
        pl.when(big).then(pl.col("grams") * f).otherwise(pl.col("grams")).alias("grams"),
        pl.when((pl.col("store_id") != solo) & (pl.col("category") == "beverages"))
        .then(pl.lit("other"))
        .when(~pl.col("store_id").is_in(duo) & (pl.col("category") == "extracts"))
        .then(pl.lit("other"))
        .otherwise(pl.col("category"))
        .alias("category"),
    )
    sales = sales.group_by("date", "store_id", "category", maintain_order=True).agg(
        pl.col("revenue", "grams").sum()
    )
    opened, closed = dt.date(2021, 6, 1), dt.date(2022, 3, 31)
    inside = (pl.col("store_id") != open_close) | pl.col("date").is_between(opened, closed)
    sales = sales.filter(inside)
    oc = pl.col("store_id") == open_close
    stores = stores.with_columns(
        pl.when(oc).then(pl.lit(str(opened))).otherwise(pl.col("opened_on")).alias("opened_on"),
        pl.when(oc).then(pl.lit(str(closed))).otherwise(pl.col("closed_on")).alias("closed_on"),
    )
    stores.write_csv(out / "stores.csv")
    sales.write_parquet(out / "sales.parquet")
    inv = pl.read_parquet(out / "inventory.parquet")
    inv.filter(inside).write_parquet(out / "inventory.parquet")
    return {"lone": lone, "dominant": dominated[0], "solo": solo, "duo": duo, "open_close": open_close}


def store_figures(ds: Path, who: dict[str, object]) -> tuple[list[float], list[float]]:
    """(every store's window and monthly totals and prices per gram, per category too; the protected
    stores' window totals, per category too)."""
    sales = pl.read_parquet(ds / "sales.parquet").filter(
        pl.col("date").is_between(dt.date(2021, 1, 1), dt.date(2022, 12, 31))
    )
    month = pl.col("date").dt.truncate("1mo")
    every: list[float] = []
    for keys in (
        ["store_id"],
        ["store_id", month],
        ["store_id", "category"],
        ["store_id", "category", month],
    ):
        agg = sales.group_by(keys).agg(pl.col("revenue").sum(), pl.col("grams").sum())
        every += agg["revenue"].to_list() + (agg["revenue"] / agg["grams"]).to_list()
    protected_ids = [who["lone"], who["dominant"], who["solo"], *who["duo"], who["open_close"]]
    mine = sales.filter(pl.col("store_id").is_in(protected_ids))
    window: list[float] = []  # what a table over the window could give away by subtraction
    for keys in (["store_id"], ["store_id", "category"]):
        window += mine.group_by(keys).agg(pl.col("revenue").sum())["revenue"].to_list()
    last6 = mine.filter(pl.col("date") >= dt.date(2022, 7, 1))  # growth's trailing-months screen
    monthly = (last6.group_by("store_id").agg(pl.col("revenue").sum() / 6)["revenue"]).to_list()
    protected = {"window": [v for v in window if v > 0], "per_store": [v for v in monthly if v > 0]}
    return [v for v in every if v and math.isfinite(v)], protected


@pytest.fixture(scope="module")
def attack(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack")
    base = generate_dataset(root / "base", stores=40, start=START, end=END)
    ds = root / "ds"
    who = craft(Path(base), ds)
    common = {"dataset": str(ds), "start": START, "end": END}
    jobs = [
        {"name": "overview", "notebook": str(NB / "01_market_overview.ipynb"), "parameters": common,
         "grid": {"region": ["all", "Lonely", "Dominated", "East"]}},
        {"name": "growth", "notebook": str(NB / "02_store_growth_vs_demand.ipynb"),
         "parameters": {**common, "forecast_months": 6}, "grid": {"region": ["all", "Lonely"]}},
        {"name": "pricing", "notebook": str(NB / "03_price_compression.ipynb"), "parameters": common,
         "grid": {"category": ["dried_flower", "beverages", "extracts"]}},
        {"name": "pricing_region", "notebook": str(NB / "03_price_compression.ipynb"),
         "parameters": {**common, "region": "Lonely"}},
        {"name": "outage", "notebook": str(NB / "04_outage_impact.ipynb"),
         "parameters": {"dataset": str(ds), "n_sims": 200}, "grid": {"region": ["all", "Lonely", "Dominated"]}},
    ]  # fmt: skip
    cfg = root / "reports.yml"
    cfg.write_text(yaml.dump({"jobs": jobs}, Dumper=_NoAliases, sort_keys=False), encoding="utf-8")
    out = root / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = cli_main(["report", "--config", str(cfg), "--out", str(out), "--jobs", "2"])
    every, protected = store_figures(ds, who)
    return {
        "code": code,
        "log": buf.getvalue(),
        "out": out,
        "who": who,
        "every": every,
        "protected": protected,
    }


# ------------------------------------------------------------------------------------------ reading


def visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def chart_specs(page: str) -> list[dict]:
    specs = []
    for m in re.finditer(r"var spec = (\{.*?\});\n", page):
        specs.append(json.loads(m.group(1)))
    return specs


def chart_records(spec: object) -> list[list[dict]]:
    """Every inline dataset (a list of records) of a chart spec."""
    found: list[list[dict]] = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "datasets" and isinstance(value, dict):
                found += [v for v in value.values() if isinstance(v, list)]
            elif key == "values" and isinstance(value, list) and value and isinstance(value[0], dict):
                found.append(value)
            else:
                found += chart_records(value)
    elif isinstance(spec, list):
        for v in spec:
            found += chart_records(v)
    return found


def tables(page: str) -> list[list[list[str]]]:
    out = []
    for t in re.findall(r'<table class="cm-table">(.*?)</table>', page, flags=re.S):
        rows = []
        for r in re.findall(r"<tr>(.*?)</tr>", t, flags=re.S):
            rows.append(
                [
                    html.unescape(re.sub(r"<[^>]+>", "", c))
                    for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S)
                ]
            )
        out.append(rows)
    return out


_MONEY = re.compile(r"(?:CA|US)?\$\s?(-?\d[\d,]*(?:\.\d+)?)\s?([kMB])?\b")
_NUMBER = re.compile(r"(?<![\w.\-/:])-?\d[\d,]*(?:\.\d+)?(?![\w\-/:])")
_SCALE = {"k": 1e3, "M": 1e6, "B": 1e9, None: 1.0, "": 1.0}


def text_numbers(text: str) -> list[tuple[float, str]]:
    """(value, digits as written) of money amounts and plain numbers in text."""
    found = [
        (float(m.group(1).replace(",", "")) * _SCALE[m.group(2)], m.group(1)) for m in _MONEY.finditer(text)
    ]
    rest = _MONEY.sub(" ", text)
    found += [(float(m.group(0).replace(",", "")), m.group(0)) for m in _NUMBER.finditer(rest)]
    return found


def sig_digits(written: str) -> int:
    digits = written.replace(",", "").replace("-", "").replace(".", "").lstrip("0")
    if "." not in written:
        digits = digits.rstrip("0")
    return len(digits)


def sig_of(value: float) -> int:
    if value == 0 or not math.isfinite(value):
        return 0
    return len(f"{abs(value):.15g}".replace(".", "").lstrip("0").rstrip("0").split("e")[0])


def half_unit(value: float) -> float:
    """The rounding uncertainty of a number published to 3 significant digits."""
    if value == 0:
        return 0.0
    return 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 2)


def runs(out: Path):
    for res in sorted(out.glob("*/*/results.json")):
        yield res.parent, json.loads(res.read_text())


def published_numbers(folder: Path, data: dict) -> list[float]:
    page = (folder / "report.html").read_text(encoding="utf-8")
    nums = [v for v, _ in text_numbers(visible_text(page))]
    for spec in chart_specs(page):
        for records in chart_records(spec):
            nums += [
                v
                for r in records
                for v in r.values()
                if isinstance(v, int | float) and not isinstance(v, bool)
            ]
    for v in data.get("figures", {}).values():
        if isinstance(v, int | float) and not isinstance(v, bool):
            nums.append(float(v))
    return nums


# ------------------------------------------------------------------------------------------ tests


def test_every_run_succeeds_or_is_suppressed(attack):
    assert attack["code"] == 0, attack["log"]
    status = {f"{f.parent.name}/{f.name}": d["status"] for f, d in runs(attack["out"])}
    assert len(status) == 13, status
    suppressed = {k for k, s in status.items() if s == "suppressed"}
    assert {"overview/region=Lonely", "overview/region=Dominated", "growth/region=Lonely",
            "pricing/category=beverages", "pricing/category=extracts",
            "pricing_region/default", "outage/region=Lonely", "outage/region=Dominated"} == suppressed  # fmt: skip
    assert all(s == "ok" for k, s in status.items() if k not in suppressed), status
    index = visible_text((attack["out"] / "index.html").read_text())
    assert index.count("suppressed") >= len(suppressed) and "FAILED" not in index


def test_suppressed_pages_show_no_figures(attack):
    for folder, data in runs(attack["out"]):
        if data["status"] != "suppressed":
            continue
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert data["figures"] == {}
        assert "Suppressed: this selection" in visible_text(page) and "fewer than 3 stores" in visible_text(
            page
        )
        assert not chart_specs(page) and not tables(page)
        body = visible_text(page).split("Suppressed: this selection")[1].split("Report ")[0]
        assert not [v for v, w in text_numbers(body) if abs(v) > 100], body  # only the thresholds


def test_default_reports_keep_their_main_findings(attack):
    figures = {f"{f.parent.name}/{f.name}": d["figures"] for f, d in runs(attack["out"])}
    assert figures["overview/region=all"]["total_sales"] > 0
    assert figures["growth/region=all"]["carrying_capacity"] > 0
    assert figures["pricing/category=dried_flower"]["price_change_annual"] < 0
    assert figures["outage/region=all"]["lost_sales"] > 0


def test_no_unrounded_or_direct_single_store_figure(attack):
    every = sorted(attack["every"])
    leaks = []
    for folder, data in runs(attack["out"]):
        for value in published_numbers(folder, data):
            if float(value).is_integer() and (abs(value) < 1000 or 1900 <= value <= 2100):
                continue  # counts, days, years: not money
            if sig_of(float(value)) > 3:
                leaks.append((folder.name, "more than 3 significant digits", value))
                near = [s for s in every if abs(s - abs(value)) <= TOL * s]
                if near:
                    leaks.append((folder.name, "a store's own figure", value, near[:2]))
    assert not leaks, leaks[:10]


def total_of(row: list[str], j: int, k: int) -> tuple[float, float] | None:
    """(value, rounding uncertainty) of cell j of a table row; with k != j the cell is an average per
    store, multiplied back to a total by the store count in cell k."""
    if not re.fullmatch(r"-?[\d,]+(\.\d+)?", row[j]):
        return None
    v = float(row[j].replace(",", ""))
    n = float(row[k].replace(",", "")) if k != j else 1.0
    return v * n, half_unit(v) * n


def test_no_lone_hidden_cell_and_no_recovery_by_subtraction(attack):
    protected = attack["protected"]
    problems = []
    for folder, data in runs(attack["out"]):
        page = (folder / "report.html").read_text(encoding="utf-8")
        # the margins a reader subtracts from: the headline figures, and a table's own "All" row
        figures = [float(v) for v in data.get("figures", {}).values() if isinstance(v, int | float)]
        for table in tables(page):
            head = table[0]
            body = [r for r in table[1:] if r and r[0].strip().lower() not in ("all", "total")]
            margins = [r for r in table[1:] if r and r[0].strip().lower() in ("all", "total")]
            for j in range(1, len(head)):
                per_store = "per_store" in head[j] and "stores_open" in head
                k = head.index("stores_open") if per_store else j
                withheld = ("suppressed", "\u2013") if margins else ("suppressed",)  # blank beside "All"
                cells = [r[j] for r in body if j < len(r)]
                hidden = sum(c in withheld for c in cells)
                if hidden == 1 and len(cells) > 1:
                    problems.append((folder.name, head[j], "one lone suppressed cell"))
                if not hidden:
                    continue

                parts = [t for t in (total_of(r, j, k) for r in body) if t is not None]
                if not parts or max(abs(v) for v, _ in parts) < 1000:
                    continue  # counts and ratios: the protected figures are money
                margin = [t for t in (total_of(r, j, k) for r in margins) if t is not None]
                if not per_store:
                    margin += [(f, half_unit(f)) for f in figures if abs(f) >= 1000]
                rest, slack = sum(v for v, _ in parts), sum(u for _, u in parts)
                targets = protected["per_store" if per_store else "window"]
                for total, unc in margin:
                    remainder = total - rest
                    for p in targets:
                        if remainder > 0 and abs(remainder - p) <= unc + slack + TOL * p:
                            problems.append((folder.name, head[j], total, remainder, p))
    assert not problems, problems[:10]


def test_no_chart_period_hides_a_single_cell(attack):
    problems = []
    for folder, _ in runs(attack["out"]):
        for spec in chart_specs((folder / "report.html").read_text(encoding="utf-8")):
            for records in chart_records(spec):
                if not records or "suppressed" not in records[0]:
                    continue
                key = next((k for k in ("period", "year", "date") if k in records[0]), None)
                groups: dict[object, list[bool]] = {}
                for r in records:
                    groups.setdefault(r.get(key), []).append(bool(r.get("suppressed")))
                for period, flags in groups.items():
                    if sum(flags) == 1 and len(flags) > 1:
                        problems.append((folder.name, period))
    assert not problems, problems[:10]


def test_executed_notebooks_stay_private(attack):
    out = attack["out"]
    shared = [p for p in out.rglob("*.ipynb") if ".cannabis-market" not in p.parts]
    assert shared == []
    private = out / ".cannabis-market" / "private"
    assert len(list(private.rglob("executed.ipynb"))) == len(list(runs(out)))
    index = (out / "index.html").read_text()
    assert ".cannabis-market" not in index and "executed.ipynb" not in index
