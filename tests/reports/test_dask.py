"""Report fan-out on a Dask cluster (a LocalCluster started by the test) behaves exactly as locally."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

FIX = REPO / "tests" / "fixtures" / "notebooks"


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        yield c


def _config(tmp_path: Path, regions: list[int]) -> Path:
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir(exist_ok=True)
    for f in ("trivial.ipynb", "fails.ipynb"):
        shutil.copy(FIX / f, nb_dir / f)
    cfg = tmp_path / "reports.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "jobs": [
                    {"name": "grid", "notebook": "nbs/trivial.ipynb", "grid": {"n": regions}},
                    {"name": "broken", "notebook": "nbs/fails.ipynb"},
                ]
            }
        )
    )
    return cfg


def _report(cfg: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cannabis_market.cli",
            "report",
            "--config",
            str(cfg),
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )


def _statuses(out: Path) -> dict[str, str]:
    return {
        f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())["status"]
        for p in sorted(out.glob("*/*/results.json"))
    }


@pytest.mark.slow
def test_dask_executor_matches_local(cluster, tmp_path):
    regions = [1, 2, 3]
    cfg = _config(tmp_path, regions)
    dask_out, local_out = tmp_path / "dask", tmp_path / "local"
    res = _report(cfg, dask_out, "--executor", "dask", "--scheduler", cluster.scheduler_address)
    assert res.returncode == 1, res.stdout + res.stderr  # the broken notebook fails, the others do not
    loc = _report(cfg, local_out, "--jobs", "2")
    assert loc.returncode == 1
    assert _statuses(dask_out) == _statuses(local_out)
    assert sorted(s for s in _statuses(dask_out).values()) == ["failed", "ok", "ok", "ok"]
    index = (dask_out / "index.html").read_text()
    assert all(f"n={r}" in index for r in regions)
    # incremental: a second dask run skips the unchanged ok runs and retries only the failed one
    again = _report(cfg, dask_out, "--executor", "dask", "--scheduler", cluster.scheduler_address)
    assert "0 ok, 3 skipped, 1 failed" in again.stdout, again.stdout


def test_dask_needs_a_scheduler(tmp_path):
    cfg = _config(tmp_path, [1])
    res = _report(cfg, tmp_path / "o", "--executor", "dask")
    assert res.returncode == 2 and "--scheduler" in res.stderr and not (tmp_path / "o").exists()


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    cfg = _config(tmp_path, [1])
    res = _report(cfg, tmp_path / "o", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert res.returncode == 2 and "could not connect to the Dask scheduler" in res.stderr
