"""Where the runner writes, and the rule that it creates, renames and deletes only what it created.

Output folder (``--out``)::

    <out>/.cannabis-market-output          marker: this folder is managed by `cannabis-market report`
    <out>/index.html                       every run (written last)
    <out>/<report>/<slug>/                 one run: report.html, results.json (shared),
                                           .cannabis-market-run (marker)
    <out>/<report>/<slug>/last-failure/    a failed re-run, kept beside the last good report
    <out>/.cannabis-market/                the runner's own working folder:
        lock                               one command at a time per output folder
        tmp/<id>/                          a run being written (moved into place when complete)
        old/<id>/ + old/<id>.json          a replaced run between two renames (+ where it came from)
        private/<report>/<slug>/           executed.ipynb (raw outputs: never shared, never linked)

* ``--out`` is used when it does not exist, is empty, or holds the marker; any other folder (or a file)
  is refused before anything runs, so a typo cannot mix reports into someone's documents.
* Every run folder gets the run marker when it is created; a folder at a run's place *without* the marker
  is never replaced or deleted (the command stops with exit 2 naming it).
* Temporary and recovery names live only inside ``<out>/.cannabis-market/``, so they cannot collide with
  anything a user keeps in ``<out>``; ``recover`` looks nowhere else.
* A report folder (``<out>/<report>``) that is a symlink is refused, so nothing is written outside ``<out>``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cannabis_market.errors import InputError
from cannabis_market.reports.config import valid_name
from cannabis_market.reports.results import RESULTS_FILE, read_json, write_json_atomic

HTML_FILE, NOTEBOOK_FILE = "report.html", "executed.ipynb"
OUT_MARKER = ".cannabis-market-output"
RUN_MARKER = ".cannabis-market-run"
WORK_DIR = ".cannabis-market"
LOCK_NAME = f"{WORK_DIR}/lock"
FAILURE_DIR = "last-failure"
_MARKER_TEXT = (
    "This folder is managed by `cannabis-market report`: it creates, replaces and deletes only the\n"
    "folders it created here (each holds a {name} file). Do not keep other files in it.\n"
)


def _is_slug(slug: str) -> bool:
    return (
        bool(slug) and "/" not in slug and "\\" not in slug and slug.strip(".") != "" and slug != FAILURE_DIR
    )


def check_out(out: Path) -> Path:
    """The resolved output folder; InputError unless it can be used (see module docstring). Writes nothing."""
    raw = Path(out).absolute()
    if raw.is_symlink() and not raw.exists():
        raise InputError(f"--out {raw}: is a broken symbolic link")
    out_root = raw.resolve()
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"--out {out_root}: exists and is not a folder; choose a folder for the reports")
    if not out_root.is_dir():
        for parent in out_root.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(f"--out {out_root}: {parent} is a file, not a folder")
                break
        return out_root
    if (out_root / OUT_MARKER).is_file():
        work = out_root / WORK_DIR
        if work.is_symlink() or (work.exists() and not work.is_dir()):
            raise InputError(
                f"--out {out_root}: {work} must be the runner's own folder, not a file or a link"
            )
        return out_root
    try:
        entries = sorted(p.name for p in out_root.iterdir())
    except OSError as exc:
        raise InputError(f"--out {out_root}: cannot be listed ({exc.strerror or exc})") from None
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise InputError(
            f"--out {out_root}: the folder is not empty ({shown}) and was not created by "
            f"`cannabis-market report` (no {OUT_MARKER} file); choose a new or empty folder"
        )
    return out_root


def claim_out(out: Path) -> Path:
    """Create the output folder (or adopt an empty one), write its marker and return its resolved path;
    InputError when refused."""
    out_root = check_out(out)
    try:
        (out_root / WORK_DIR / "tmp").mkdir(parents=True, exist_ok=True)
        marker = out_root / OUT_MARKER
        if not marker.is_file():
            marker.write_text(_MARKER_TEXT.format(name=RUN_MARKER), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--out {out_root}: cannot write there ({exc.strerror or exc})") from None
    return out_root


def run_dir(out_root: Path, report: str, slug: str) -> Path:
    """``<out>/<report>/<slug>``, after checking both parts are single, safe folder names."""
    if not valid_name(report) or not _is_slug(slug):
        raise InputError(f"report {report!r} / run {slug!r}: not a safe folder name inside --out")
    return out_root / report / slug


def private_for(dest: Path, out_root: Path) -> Path:
    """Where files of the run published at ``dest`` go that the index must never link (e.g. an unfiltered
    executed notebook): ``<out>/.cannabis-market/private/<report>/<slug>[/last-failure]``."""
    return out_root / WORK_DIR / "private" / dest.relative_to(out_root)


def check_run_place(out_root: Path, report: str, slug: str) -> str | None:
    """Why a run cannot be published at its place (a foreign folder or a symlink is there), or None."""
    report_dir = out_root / report
    if report_dir.is_symlink() or (report_dir.exists() and not report_dir.is_dir()):
        return f"{report_dir} is not a folder created by `cannabis-market report` (a file or a link)"
    dest = run_dir(out_root, report, slug)
    if dest.is_symlink() or (dest.exists() and not is_run(dest)):
        return (
            f"{dest} exists and was not created by `cannabis-market report` (no {RUN_MARKER}); move it away"
        )
    return None


def is_run(folder: Path) -> bool:
    """A real folder holding the run marker (so the runner created it and may replace it)."""
    return folder.is_dir() and not folder.is_symlink() and (folder / RUN_MARKER).is_file()


def new_tmp(out_root: Path) -> Path:
    """A fresh, marked folder under ``<out>/.cannabis-market/tmp`` for one run to write into."""
    tmp = out_root / WORK_DIR / "tmp" / uuid.uuid4().hex
    tmp.mkdir(parents=True)
    (tmp / RUN_MARKER).write_text("", encoding="utf-8")
    return tmp


def publish(tmp: Path, dest: Path, out_root: Path) -> None:
    """Move a finished run folder into place with renames; the replaced one is removed only afterwards.

    The replaced folder goes to ``old/<id>`` with a note of where it came from, so ``recover`` can put it
    back if the command dies between the two renames. A folder at ``dest`` without the run marker is
    never touched (RuntimeError).
    """
    if dest.is_symlink() or (dest.exists() and not is_run(dest)):
        raise RuntimeError(f"{dest} exists and was not created by `cannabis-market report`; not replaced")
    dest.parent.mkdir(parents=True, exist_ok=True)
    old_root = out_root / WORK_DIR / "old"
    old_root.mkdir(parents=True, exist_ok=True)
    ident = uuid.uuid4().hex
    old = old_root / ident
    note = old_root / f"{ident}.json"
    write_json_atomic(note, {"dest": dest.relative_to(out_root).as_posix()})
    if dest.exists():
        os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    note.unlink(missing_ok=True)


def discard(tmp: Path) -> None:
    """Remove a runner-owned temporary folder (never raises)."""
    shutil.rmtree(tmp, ignore_errors=True)


def recover(out_root: Path) -> None:
    """After a killed command: drop half-written runs, put back a run caught between two renames.

    Looks only inside ``<out>/.cannabis-market/`` -- never at names in the user-visible folders.
    """
    work = out_root / WORK_DIR
    if not work.is_dir() or work.is_symlink():
        return
    tmp_root = work / "tmp"
    if tmp_root.is_dir():
        for entry in tmp_root.iterdir():
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    old_root = work / "old"
    if not old_root.is_dir():
        return
    for note in old_root.glob("*.json"):
        saved = old_root / note.stem
        rel = str(read_json(note).get("dest", ""))
        parts = Path(rel).parts
        target = (
            out_root.joinpath(*parts) if rel and ".." not in parts and not Path(rel).is_absolute() else None
        )
        if saved.is_dir() and target is not None and not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(saved, target)
        else:
            shutil.rmtree(saved, ignore_errors=True)
        note.unlink(missing_ok=True)
    for entry in old_root.iterdir():  # a folder without its note: the swap had finished
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def iter_results(out_root: str | Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    """Every run the runner created: ``<out>/<report>/<slug>`` and its ``last-failure``, sorted."""
    root = Path(out_root)
    if not root.is_dir():
        return []
    found = []
    for report_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if report_dir.is_symlink():
            continue
        for run in sorted(p for p in report_dir.iterdir() if is_run(p)):
            for folder in (run, run / FAILURE_DIR):
                data = read_json(folder / RESULTS_FILE) if is_run(folder) else {}
                if data:
                    found.append((folder, data))
    return found


def last_good(dest: Path) -> bool:
    """True when ``dest`` holds a run whose status counts as success (``ok``, ``suppressed``)."""
    return (
        is_run(dest)
        and read_json(dest / RESULTS_FILE).get("status") in SUCCESS
        and (dest / HTML_FILE).is_file()
    )


SUCCESS = ("ok", "suppressed")


def write_text_atomic(path: Path, text: str, out_root: Path) -> None:
    """Write ``path`` via a temporary file in the runner's own tmp folder, then one rename."""
    tmp_root = out_root / WORK_DIR / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = tmp_root / f"{uuid.uuid4().hex}.part"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _finished(data: dict[str, Any]) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(str(data.get("finished_at")))
    except ValueError:
        return None
    return when if when.tzinfo else when.astimezone()


def prune(out_root: Path, jobs: Mapping[str, Iterable[str]]) -> list[str]:
    """Remove runs of reports that are no longer jobs, and failed runs older than their report's last
    good run unless the job still plans them (``jobs``: job name -> the run slugs it plans now, so a
    failing grid cell stays visible). Only folders holding the run marker are removed; returns what was
    removed, relative to ``out_root``."""
    removed: list[str] = []
    runs_by_report: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for folder, data in iter_results(out_root):
        if folder.name != FAILURE_DIR:
            runs_by_report.setdefault(folder.parent.name, []).append((folder, data))
    for report, runs in runs_by_report.items():
        good = [w for _, d in runs if d.get("status") in SUCCESS and (w := _finished(d)) is not None]
        newest_good = max(good, default=None)
        planned = set(jobs.get(report, ()))
        for folder, data in runs:
            when = _finished(data)
            stale = (
                data.get("status") not in SUCCESS
                and folder.name not in planned
                and newest_good is not None
                and (when is None or when < newest_good)
            )
            if report not in jobs or stale:
                _remove_run(folder, out_root, removed)
        report_dir = out_root / report
        if report_dir.is_dir() and not any(report_dir.iterdir()):
            report_dir.rmdir()
    return removed


def _remove_run(folder: Path, out_root: Path, removed: list[str]) -> None:
    """Move a marked run folder into the runner's folder, then delete it (a crash leaves no half folder)."""
    if not is_run(folder):
        return
    trash = out_root / WORK_DIR / "tmp" / uuid.uuid4().hex
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(private_for(folder, out_root), ignore_errors=True)
    removed.append(folder.relative_to(out_root).as_posix())
