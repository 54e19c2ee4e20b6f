"""Hostile input to ``cannabis-market report``: every case gets the promised exit code, a message naming
what is wrong, and changes nothing outside the run's own output (the whole sandbox is hashed before and
after). Most cases are refused while planning, so they run in-process and start no kernel; a handful
execute a tiny fixture notebook (a failed re-run beside the last good report, a timeout).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import yaml

from cannabis_market import cli
from cannabis_market.errors import DataValidationError, InputError
from cannabis_market.reports import config as C
from cannabis_market.reports import layout
from cannabis_market.reports import plan as PL

FIX = Path(__file__).parents[1] / "fixtures" / "notebooks"
PARAMS_CELL = """dataset = "data"  # path: folder with sales.csv
n = 1
controls = ["control_group"]  # list[str]: control series
ids: list[int] = []
start = "2022-01-01"  # date: first day
end = "2022-12-31"  # date: last day
label = "x"
"""
BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
jobs: *i
"""


def _notebook(path: Path, params: str, body: str = "print(n)") -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Hostile fixture"), cell, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


@dataclass
class Box:
    """A sandbox: notebooks, a reports.yml, a victim folder of user files, and where --out goes."""

    root: Path
    cfg: Path
    out: Path
    nbs: Path
    victim: Path

    def jobs(self, jobs: list[dict], name: str = "reports.yml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump({"jobs": jobs}, sort_keys=False), encoding="utf-8")
        return path

    def yml(self, text: str | bytes, name: str = "reports.yml") -> Path:
        path = self.root / name
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return path


@pytest.fixture
def box(tmp_path: Path) -> Box:
    root = tmp_path / "box"
    nbs = root / "nbs"
    nbs.mkdir(parents=True)
    for f in ("trivial.ipynb", "fails.ipynb", "sleeps.ipynb"):
        shutil.copy(FIX / f, nbs / f)
    shutil.copytree(FIX / "data", nbs / "data")
    _notebook(nbs / "params.ipynb", PARAMS_CELL)
    victim = root / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (victim / "index.html").write_text("<p>my own page</p>")
    (victim / ".tmp-default-12345678").mkdir()
    (victim / ".tmp-default-12345678" / "draft.txt").write_text("draft")
    (victim / ".old-notes-12345678").mkdir()
    (victim / ".old-notes-12345678" / "a.txt").write_text("old notes")
    b = Box(root, root / "reports.yml", root / "out", nbs, victim)
    b.jobs(
        [
            {"name": "trivial", "notebook": "nbs/trivial.ipynb"},
            {"name": "params", "notebook": "nbs/params.ipynb"},
        ]
    )
    return b


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones included) -> a hash of its content, or what it is."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = f"link:{os.readlink(p)}"
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + f":{oct(p.stat().st_mode)}"
    return out


def outside(snapshot: dict[str, str], out_rel: str) -> dict[str, str]:
    return {k: v for k, v in snapshot.items() if k != out_rel and not k.startswith(out_rel + "/")}


def run(*args: object) -> tuple[int, str, str]:
    """``cannabis-market report ARGS`` in-process: (exit code, stdout, stderr)."""
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            code = cli.main(["report", *map(str, args)])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, o.getvalue(), e.getvalue()


def refused(b: Box, *args: object, cfg: Path | None = None, out: Path | None = None) -> str:
    """Run with ``args``; assert exit 2, no traceback and the sandbox untouched; return stderr."""
    before = tree(b.root)
    code, stdout, err = run("--config", cfg or b.cfg, "--out", out or b.out, *args)
    assert code == 2, stdout + err
    assert err.startswith("error:") or "usage:" in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert tree(b.root) == before
    return err


# ====================================================================== report NAMEs stay inside --out


@pytest.mark.parametrize(
    "name",
    [
        "../nbs/trivial",
        "..",
        ".",
        "/etc/passwd",
        "nbs/../../trivial",
        "..\\trivial",
        "",
        "x" * 300,
        "../../out/x",
    ],
)
def test_report_name_that_is_not_one_folder_name_is_refused(box, name):
    err = refused(box, name)
    assert "unknown report name" in err


@pytest.mark.parametrize("file_name", ["...ipynb", ".hidden.ipynb", "a b.ipynb", "résumé.ipynb", "-x.ipynb"])
def test_notebook_file_name_that_is_not_a_safe_report_name(box, file_name):
    path = box.nbs / file_name
    shutil.copy(FIX / "trivial.ipynb", path)
    err = refused(box, path)
    assert "cannot be a report name" in err and path.stem in err


# ====================================================================== reports.yml


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "..",
        ".",
        "/abs",
        "a/b",
        "café",
        "x" * 101,
        5,
        None,
        ".hidden",
        "a\\b",
        "index.html",
        "INDEX.HTML",
    ],
)
def test_job_name_rules(box, name):
    cfg = box.jobs([{"name": name, "notebook": "nbs/trivial.ipynb"}])
    err = refused(box, cfg=cfg)
    assert "key 'name'" in err and str(cfg) in err


def test_duplicate_job_names(box):
    job = {"name": "t", "notebook": "nbs/trivial.ipynb"}
    err = refused(box, cfg=box.jobs([job, dict(job)]))
    assert "used by another job" in err


def test_job_names_differing_only_in_case(box):
    err = refused(
        box,
        cfg=box.jobs(
            [{"name": "T", "notebook": "nbs/trivial.ipynb"}, {"name": "t", "notebook": "nbs/trivial.ipynb"}]
        ),
    )
    assert "used by another job" in err


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"cells": 5}',
        '{"cells": [1]}',
        '{"cells": [{"source": [1, 2]}]}',
        '{"cells": [{"metadata": {"tags": 3}}]}',
        "not json",
    ],
)
def test_notebook_that_is_not_a_notebook(box, content):
    (box.nbs / "odd.ipynb").write_text(content)
    err = refused(box, cfg=box.jobs([{"name": "odd", "notebook": "nbs/odd.ipynb"}]))
    assert "odd.ipynb" in err and "notebook" in err


def test_reports_yml_that_is_a_device(box):
    assert "not a regular file" in refused(box, cfg=Path("/dev/zero"))
    err = refused(box, "-f", "/dev/zero", "params")
    assert "must be a file" in err and "/dev/zero" in err


def test_yaml_bomb_refused_fast(box):
    t0 = time.monotonic()
    err = refused(box, cfg=box.yml(BOMB))
    assert time.monotonic() - t0 < 2 and "aliases" in err and "reports.yml" in err


def test_yaml_anchor_alone_refused(box):
    err = refused(box, cfg=box.yml("jobs: &j\n  - name: t\n    notebook: nbs/trivial.ipynb\n"))
    assert "anchors" in err and "line 1" in err


def test_huge_reports_yml_refused_before_parsing(box):
    cfg = box.yml("# " + "x" * (C.MAX_YAML_BYTES + 10) + "\njobs: []\n")
    err = refused(box, cfg=cfg)
    assert "limit" in err and f"{C.MAX_YAML_BYTES:,}" in err


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- a\n- b\n", "mapping with a 'jobs' list"),
        ("jobs: 5\n", "'jobs' must be a list"),
        ("jobs: []\nextra: 1\n", "unknown top-level key(s) extra"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    colour: red\n", "unknown key(s) colour"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    parameters: [1]\n", "key 'parameters'"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    grid: {n: 3}\n", "key 'grid'"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    timeout: -1\n", "key 'timeout'"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    timeout: true\n", "key 'timeout'"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    timeout: soon\n", "key 'timeout'"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.py\n", "key 'notebook'"),
        ("jobs:\n  - name: t\n    notebook: nbs/none.ipynb\n", "does not exist"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    requires: 3\n", "key 'requires'"),
        ("jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    pinned: [n]\n", "key 'pinned'"),
        ("jobs:\n  - 7\n", "jobs[0]: expected a mapping"),
        ("jobs: [unclosed\n", "not valid YAML"),
        ("jobs:\n  - !!python/object/apply:os.system ['touch pwned']\n", "not valid YAML"),
        ("[" * 5000 + "]" * 5000, "reports.yml"),
        ("", "has no jobs"),
        (
            "jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    parameters: {n: many}\n",
            "'many' is invalid",
        ),
        (
            "jobs:\n  - name: t\n    notebook: nbs/trivial.ipynb\n    parameters: {m: 1}\n",
            "unknown parameter 'm'",
        ),
    ],
)
def test_bad_reports_yml(box, text, fragment):
    err = refused(box, cfg=box.yml(text))
    assert fragment in err
    assert not (box.root / "pwned").exists()


def test_reports_yml_not_utf8(box):
    err = refused(box, cfg=box.yml(b"jobs:\n  - name: \xff\xfe\n"))
    assert "not UTF-8" in err


def test_reports_yml_is_a_folder_or_missing(box):
    (box.root / "cfgdir").mkdir()
    assert "file not found" in refused(box, cfg=box.root / "missing.yml")
    assert "not a regular file" in refused(box, cfg=box.root / "cfgdir")


def test_grid_explosion_refused_fast(box):
    grid = {"n": list(range(10)), "ids": [[i] for i in range(10)], "label": [str(i) for i in range(10)]}
    grid |= {"start": [f"2022-01-{d:02d}" for d in range(1, 11)]}
    t0 = time.monotonic()
    err = refused(box, cfg=box.jobs([{"name": "g", "notebook": "nbs/params.ipynb", "grid": grid}]))
    assert "10,000 runs" in err and "limit" in err and time.monotonic() - t0 < 2


# ====================================================================== --out


def test_out_is_an_existing_file(box):
    target = box.victim / "precious.txt"
    err = refused(box, "trivial", out=target)
    assert "not a folder" in err and str(target) in err


def test_out_is_a_foreign_non_empty_folder(box):
    err = refused(box, "trivial", out=box.victim)
    assert "not empty" in err and "was not created by" in err and "precious.txt" in err


def test_out_symlink_to_foreign_folder(box):
    link = box.root / "link"
    link.symlink_to(box.victim)
    err = refused(box, "trivial", out=link)
    assert "not empty" in err


def test_out_broken_symlink(box):
    link = box.root / "dangling"
    link.symlink_to(box.root / "nowhere")
    assert "broken symbolic link" in refused(box, "trivial", out=link)


def test_out_below_a_file(box):
    assert "is a file" in refused(box, "trivial", out=box.victim / "precious.txt" / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_out_read_only(box):
    ro = box.root / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        err = refused(box, "-p", "dataset=/no/such", "trivial", out=ro / "out")
        assert "does not exist" in err
    finally:
        ro.chmod(0o700)


def test_out_not_writable_is_bad_input(box, monkeypatch):
    def deny(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", deny)
    cfg = box.jobs([{"name": "t", "notebook": "nbs/trivial.ipynb", "requires": "nothing/here"}])
    err = refused(box, cfg=cfg)
    assert "cannot write there" in err and "Permission denied" in err


def test_foreign_folder_at_a_runs_place_is_never_replaced(box):
    layout.claim_out(box.out)
    (box.out / "trivial" / "default").mkdir(parents=True)
    (box.out / "trivial" / "default" / "mine.txt").write_text("mine")
    err = refused(box, "trivial")
    assert "was not created by" in err and "trivial/default" in err


def test_runner_folder_replaced_by_a_symlink(box):
    layout.claim_out(box.out)
    shutil.rmtree(box.out / layout.WORK_DIR)
    (box.out / layout.WORK_DIR).symlink_to(box.victim)
    assert "not a file or a link" in refused(box, "trivial")


def test_report_folder_that_is_a_symlink_out_of_out(box):
    layout.claim_out(box.out)
    (box.out / "trivial").symlink_to(box.victim)
    err = refused(box, "trivial")
    assert "a file or a link" in err


def test_file_at_a_runs_place(box):
    layout.claim_out(box.out)
    (box.out / "trivial").mkdir()
    (box.out / "trivial" / "default").write_text("a file")
    assert "was not created by" in refused(box, "trivial")


def test_empty_existing_out_is_adopted_and_nothing_else_changes(box):
    box.out.mkdir()
    cfg = box.jobs([{"name": "t", "notebook": "nbs/trivial.ipynb", "requires": "nothing/here"}])
    before = tree(box.root)
    code, out, err = run("--config", cfg, "--out", box.out)
    assert code == 0 and "skip" in out and "requires" in out, out + err
    assert outside(tree(box.root), "out") == outside(before, "out")
    assert (box.out / layout.OUT_MARKER).is_file() and (box.out / "index.html").is_file()
    code, out, err = run("--config", cfg, "--out", box.out)  # the marker makes it ours next time
    assert code == 0, err


# ====================================================================== parameters


@pytest.mark.parametrize("value", ["/no/such/folder", "no/such/relative"])
def test_missing_dataset_from_p_is_refused_before_any_kernel(box, value):
    err = refused(box, "params", "-p", f"dataset={value}")
    assert "parameter 'dataset'" in err and "does not exist" in err and "from -p" in err
    assert not box.out.exists()  # no index row, nothing at all


def test_missing_dataset_from_reports_yml(box):
    cfg = box.jobs([{"name": "p", "notebook": "nbs/params.ipynb", "parameters": {"dataset": "gone"}}])
    assert "from reports.yml" in refused(box, cfg=cfg)


def test_missing_dataset_from_notebook_default(box):
    _notebook(box.nbs / "params.ipynb", PARAMS_CELL.replace('"data"', '"nodata"'))
    assert "from the notebook's default" in refused(box, "params")


def test_missing_dataset_from_p_is_refused_even_when_the_job_would_be_skipped(box):
    cfg = box.jobs([{"name": "real", "notebook": "nbs/params.ipynb", "requires": "nbs/data/manifest.yml"}])
    assert "does not exist" in refused(box, "-p", "dataset=/no/such", cfg=cfg)


def test_papermill_style_p_gets_a_hint(box):
    err = refused(box, "params", "-p", "end", "2022-08-31")
    assert "KEY=VALUE" in err and "-p end=VALUE" in err


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("nn=1", "unknown parameter 'nn' (did you mean 'n'?)"),
        ("n=../../etc", "parameter 'n' (int)"),
        ("start=2022-02-30", "parameter 'start' (date)"),
        ("ids=1,x", "parameter 'ids' (list[int])"),
        ("=5", "KEY=VALUE"),
    ],
)
def test_bad_p_values(box, assignment, fragment):
    assert fragment in refused(box, "params", "-p", assignment)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "file not found"),
        ("- 1\n- 2\n", "expected a mapping of parameter -> value"),
        (BOMB, "aliases"),
        ("n: abc\n", "'abc' is invalid"),
        ("zz: 1\n", "unknown parameter 'zz'"),
        ("n: [unclosed\n", "not valid YAML"),
        ("dataset: not/here\n", "does not exist"),
    ],
)
def test_parameters_file_errors(box, content, fragment):
    pfile = box.root / "params.yml"
    if content is not None:
        pfile.write_text(content)
    err = refused(box, "params", "-f", pfile)
    assert fragment in err and "params.yml" in err


@pytest.mark.parametrize(
    "args", [("--timeout", "0"), ("--timeout", "abc"), ("--jobs", "0"), ("--executor", "dask")]
)
def test_bad_options(box, args):
    err = refused(box, "trivial", *args)
    assert args[0] in err or "scheduler" in err


# ====================================================================== planning decisions (no kernel)


def _plan(box: Box, names=("params",), overrides=None, **kw) -> PL.Plan:
    return PL.plan(C.load_config(box.cfg), list(names), overrides or {}, out=box.out, **kw)


def test_hostile_values_name_folders_inside_out(box):
    for value in ["../../victim", "..", "/etc", "a/b", "Québec/Sud", "x" * 200, "."]:
        (spec,) = _plan(box, overrides={"label": value}).runs
        assert "/" not in spec.slug and spec.slug.strip(".") and len(spec.slug) <= 60
        assert spec.out_dir.parent.parent == box.out.resolve()
    assert not box.out.exists()  # planning writes nothing


def test_single_value_where_a_list_is_declared(box):
    (spec,) = _plan(box, overrides={"controls": "none", "ids": "5"}).runs
    assert spec.parameters["controls"] == ["none"] and spec.parameters["ids"] == [5]
    pfile = box.root / "p.yml"
    pfile.write_text("controls: none\nids: 7\n")
    values, path = C.load_params_file(pfile)
    (spec,) = _plan(box, file_values=values, file_path=path).runs
    assert spec.parameters["controls"] == ["none"] and spec.parameters["ids"] == [7]


def test_p_wins_over_f_and_f_paths_are_relative_to_the_file(box):
    sub = box.root / "sub"
    (sub / "ds").mkdir(parents=True)
    pfile = sub / "p.yml"
    pfile.write_text("n: 3\nlabel: from-file\ndataset: ds\n")
    values, path = C.load_params_file(pfile)
    (spec,) = _plan(box, overrides={"n": "4"}, file_values=values, file_path=path).runs
    assert spec.parameters["n"] == 4 and spec.parameters["label"] == "from-file"
    assert spec.parameters["dataset"] == str((sub / "ds").resolve())


def test_pinned_job_parameters_win_with_a_note(box):
    cfg = box.jobs(
        [
            {
                "name": "w",
                "notebook": "nbs/params.ipynb",
                "parameters": {"end": "2021-09-30"},
                "pinned": ["end"],
            }
        ]
    )
    p = PL.plan(C.load_config(cfg), ["w"], {"end": "2030-01-01", "n": "2"}, out=box.out)
    (spec,) = p.runs
    assert spec.parameters["end"] == "2021-09-30" and spec.parameters["n"] == 2
    assert len(p.notes) == 1 and "end=2030-01-01 ignored for job 'w'" in p.notes[0]


def test_requires_follows_the_dataset_actually_given(box):
    real = box.root / "real"
    (real / "default").mkdir(parents=True)
    (real / "default" / "manifest.yml").write_text("x: 1")
    (real / "other").mkdir()
    job = {"name": "r", "notebook": "nbs/params.ipynb", "parameters": {"dataset": "real/default"}}
    cfg = box.jobs([{**job, "requires": "real/default/manifest.yml"}])
    config = C.load_config(cfg)
    assert len(PL.plan(config, ["r"], {}, out=box.out).runs) == 1
    p = PL.plan(config, ["r"], {"dataset": str(real / "other")}, out=box.out)
    assert p.runs == [] and str(real / "other" / "manifest.yml") in p.skipped[0].message
    (real / "other" / "manifest.yml").write_text("x: 1")
    (real / "default" / "manifest.yml").unlink()  # the default copy no longer matters
    assert len(PL.plan(config, ["r"], {"dataset": str(real / "other")}, out=box.out).runs) == 1


# ====================================================================== exit codes: bad input vs bug


def test_a_bug_is_an_internal_error_not_bad_input(box, monkeypatch):
    def broken(*a, **k):
        raise ValueError("a bug deep inside")

    monkeypatch.setattr(PL, "plan", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    before = tree(box.root)
    code, _, err = run("--config", box.cfg, "--out", box.out, "trivial")
    assert code == 1 and "internal error" in err and cli.DEBUG_ENV in err and "a bug deep inside" in err
    assert tree(box.root) == before


@pytest.mark.parametrize("exc", [InputError("bad thing in x.csv"), DataValidationError([], path="ds")])
def test_input_errors_are_exit_2(box, monkeypatch, exc):
    def raising(*a, **k):
        raise exc

    monkeypatch.setattr(PL, "plan", raising)
    code, _, err = run("--config", box.cfg, "--out", box.out, "trivial")
    assert code == 2 and err.startswith("error:") and "internal error" not in err


# ====================================================================== prune (runs fabricated, no kernel)


def _fake_run(out: Path, report: str, slug: str, status: str, finished: str, marked: bool = True) -> Path:
    folder = out / report / slug
    folder.mkdir(parents=True)
    if marked:
        (folder / layout.RUN_MARKER).write_text("")
    (folder / "results.json").write_text(
        json.dumps({"report": report, "status": status, "finished_at": finished})
    )
    (folder / "report.html").write_text("<p>r</p>")
    return folder


def test_prune_removes_only_runner_runs_that_no_longer_belong(box):
    layout.claim_out(box.out)
    _fake_run(box.out, "trivial", "default", "ok", "2026-01-02T00:00:00")
    _fake_run(box.out, "trivial", "n=5", "failed", "2026-01-01T00:00:00")  # older than the last good one
    _fake_run(box.out, "trivial", "n=6", "failed", "2026-01-03T00:00:00")  # newer: kept
    _fake_run(box.out, "params", "default", "ok", "2026-01-02T00:00:00")
    _fake_run(box.out, "params", "n=2", "failed", "2026-01-01T00:00:00")
    _fake_run(box.out, "trivial", "n=7", "failed", "2026-01-01T00:00:00+05:00")  # older, other zone
    _fake_run(box.out, "gone", "default", "ok", "2026-01-01T00:00:00")  # no longer a job
    _fake_run(box.out, "gone", "mine", "ok", "2026-01-01T00:00:00", marked=False)  # not ours
    before = tree(box.root)
    code, out, err = run("--config", box.cfg, "--out", box.out, "--prune")
    assert code == 0, err
    assert "removed trivial/n=5" in out and "removed gone/default" in out and "removed trivial/n=7" in out
    assert "removed params/n=2" in out
    after = tree(box.root)
    assert outside(after, "out") == outside(before, "out")
    assert (box.out / "trivial" / "default").is_dir() and (box.out / "trivial" / "n=6").is_dir()
    assert not (box.out / "trivial" / "n=5").exists() and not (box.out / "gone" / "default").exists()
    assert (box.out / "gone" / "mine" / "report.html").is_file()
    assert {k: v for k, v in after.items() if k.startswith("out/gone/mine")} == {
        k: v for k, v in before.items() if k.startswith("out/gone/mine")
    }


def test_prune_keeps_a_failing_cell_the_job_still_plans(box):
    cfg = box.jobs([{"name": "g", "notebook": "nbs/trivial.ipynb", "grid": {"n": [1, 2]}}])
    layout.claim_out(box.out)
    _fake_run(box.out, "g", "n=1", "ok", "2026-01-02T00:00:00")
    _fake_run(box.out, "g", "n=2", "failed", "2026-01-01T00:00:00")  # still in the grid: kept, visible
    _fake_run(box.out, "g", "n=3", "failed", "2026-01-01T00:00:00")  # an old -p n=3 that failed
    code, out, err = run("--config", cfg, "--out", box.out, "--prune")
    assert code == 0 and "pruned 1 run(s)" in out and "removed g/n=3" in out, out + err
    assert (box.out / "g" / "n=2").is_dir() and 'href="g/n=2/report.html"' in (
        box.out / "index.html"
    ).read_text()


def test_prune_refuses_a_foreign_out(box):
    assert "not empty" in refused(box, "--prune", out=box.victim)


# ====================================================================== with a kernel (tiny notebooks)


def test_failed_rerun_keeps_last_good_report_beside_the_failure(box):
    cfg = box.jobs([{"name": "t", "notebook": "nbs/params.ipynb"}])
    code, out, err = run("--config", cfg, "--out", box.out)
    assert code == 0, out + err
    good = box.out / "t" / "default"
    good_files = {p.name: p.read_bytes() for p in good.iterdir() if p.is_file()}
    before = tree(box.root)
    _notebook(box.nbs / "params.ipynb", PARAMS_CELL, body="raise RuntimeError('dataset moved')")
    code, out, err = run("--config", cfg, "--out", box.out, "--force")
    assert code == 1 and "dataset moved" in out and "last good report kept" in out, out + err
    assert {p.name: p.read_bytes() for p in good.iterdir() if p.is_file()} == good_files
    failure = json.loads((good / layout.FAILURE_DIR / "results.json").read_text())
    assert failure["status"] == "failed" and "dataset moved" in failure["error"]
    index = (box.out / "index.html").read_text()
    assert 'href="t/default/report.html"' in index and 'href="t/default/last-failure/report.html"' in index
    assert "last good report above kept" in index and index.count("<td>20") >= 2  # both rows, with times
    changed = outside(tree(box.root), "out")
    assert {k for k in changed if changed[k] != before.get(k)} == {"nbs/params.ipynb"}
    # the failure shown is not "unchanged": the next plain run retries, and success clears it
    _notebook(box.nbs / "params.ipynb", PARAMS_CELL)
    code, out, err = run("--config", cfg, "--out", box.out)
    assert code == 0 and "ok      t/default" in out, out + err
    assert not (good / layout.FAILURE_DIR).exists()
    assert not list((box.out / layout.WORK_DIR / "tmp").iterdir())


def test_timeout_is_a_failed_run_and_touches_nothing_else(box):
    cfg = box.jobs([{"name": "s", "notebook": "nbs/sleeps.ipynb", "timeout": 1}])
    before = tree(box.root)
    code, out, err = run("--config", cfg, "--out", box.out)
    assert code == 1 and "timed out after 1 s" in out, out + err
    assert outside(tree(box.root), "out") == outside(before, "out")
    assert json.loads((box.out / "s" / "default" / "results.json").read_text())["timed_out"] is True


# ====================================================================== publish and recover


def test_crash_between_the_two_renames_is_recovered(box, monkeypatch):
    out = layout.claim_out(box.out)
    good = _fake_run(out, "t", "default", "ok", "2026-01-01T00:00:00")
    tmp = layout.new_tmp(out)
    (tmp / "report.html").write_text("new")
    real_rename = os.rename
    calls = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the command is killed after the old run was moved aside
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        layout.publish(tmp, good, out)
    monkeypatch.setattr(os, "rename", real_rename)
    assert not good.exists()
    layout.recover(out)
    assert (good / "report.html").read_text() == "<p>r</p>"
    assert list((out / layout.WORK_DIR / "tmp").iterdir()) == []
    assert list((out / layout.WORK_DIR / "old").iterdir()) == []


def test_publish_never_replaces_a_folder_without_the_marker(box):
    out = layout.claim_out(box.out)
    mine = _fake_run(out, "t", "default", "ok", "2026-01-01T00:00:00", marked=False)
    tmp = layout.new_tmp(out)
    with pytest.raises(RuntimeError, match="not created by"):
        layout.publish(tmp, mine, out)
    assert (mine / "report.html").read_text() == "<p>r</p>"


def test_recover_ignores_a_note_pointing_outside_out(box):
    out = layout.claim_out(box.out)
    old = out / layout.WORK_DIR / "old"
    (old / "abcd").mkdir(parents=True)
    (old / "abcd.json").write_text(json.dumps({"dest": "../victim/stolen"}))
    before = outside(tree(box.root), "out")
    layout.recover(out)
    assert outside(tree(box.root), "out") == before and not (box.victim / "stolen").exists()
    assert list(old.iterdir()) == []


def test_private_files_live_in_the_runners_folder_and_go_with_pruned_runs(box):
    out = layout.claim_out(box.out)
    run_dir = _fake_run(out, "gone", "default", "ok", "2026-01-01T00:00:00")
    private = layout.private_for(run_dir, out)
    assert private == out / layout.WORK_DIR / "private" / "gone" / "default"
    private.mkdir(parents=True)
    (private / "executed.ipynb").write_text("{}")
    assert layout.prune(out, {"trivial": set()}) == ["gone/default"] and not private.exists()


def test_suppressed_counts_as_success_everywhere(box):
    from cannabis_market.reports import build
    from cannabis_market.reports.index import render_index

    out = layout.claim_out(box.out)
    sup = _fake_run(out, "t", "default", "suppressed", "2026-01-02T00:00:00")
    _fake_run(out, "t", "n=9", "failed", "2026-01-01T00:00:00")
    assert layout.last_good(sup)
    assert build.Summary([PL.RunResult("t", "default", "suppressed")], 0.0, None).exit_code == 0
    rows = render_index(out).split("<tr ")
    (row,) = [r for r in rows if "t/default/report.html" in r]
    assert row.startswith('class="ok"') and "FAILED" not in row and "suppressed" in row
    assert layout.prune(out, {"t": set()}) == ["t/n=9"]  # the suppressed run is the last good one
