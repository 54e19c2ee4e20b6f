"""Shared fixtures: a tiny valid dataset writer and the real-data folder (data/public, or $CM_REAL_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """The public-data snapshot shipped in data/public, or $CM_REAL_DATA."""
    return Path(os.environ.get("CM_REAL_DATA", REPO / "data" / "public"))


def real_file(name: str) -> Path:
    """Path of one real-data file; skip the test with a clear reason when it is absent."""
    f = real_data_dir() / name
    if not f.is_file():
        pytest.skip(f"real data file {f} is absent (data/public ships it; was it deleted?)")
    return f


MANIFEST = {
    "name": "tiny",
    "description": "hand-written test dataset",
    "source": "other",
    "frequency": "daily",
    "currency": "CAD",
    "region": "Ontario",
}

TABLES = {
    "stores": [
        "store_id,municipality,region,opened_on,closed_on,chain",
        "S1,Toronto,Toronto,2022-01-01,,ChainA",
        "S2,Toronto,Toronto,2022-01-01,2022-01-04,",
        "S3,Ottawa,East,2022-01-02,,ChainA",
    ],
    "sales": [
        "date,store_id,category,revenue,grams",
        "2022-01-01,S1,dried_flower,100.5,10",
        "2022-01-01,S1,pre_rolls,20,2",
        "2022-01-01,S2,dried_flower,80,8",
        "2022-01-02,S3,edibles,15,1.5",
        "2022-01-03,S1,vapes,40,1",
        "2022-01-04,S2,dried_flower,70,7",
    ],
    "population": ["municipality,year,population", "Toronto,2022,2800000", "Ottawa,2022,1000000"],
    "events": [
        "event_id,kind,start,end,scope,description",
        "E1,outage,2022-01-02,2022-01-03,all,test outage",
    ],
    "inventory": ["date,store_id,days_of_cover", "2022-01-01,S1,5.5", "2022-01-01,S2,3"],
}


def write_dataset(folder: Path, manifest: dict | None = None, **tables: list[str] | None) -> Path:
    """Write the tiny valid dataset to `folder`, with any table replaced (list of CSV lines) or dropped (None)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.yml").write_text(yaml.safe_dump(manifest if manifest is not None else MANIFEST))
    for name, lines in {**TABLES, **tables}.items():
        if lines is not None:
            (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A valid tiny daily dataset folder."""
    return write_dataset(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the validation cache out of the user's home during tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture(scope="session")
def outage_dataset(tmp_path_factory: pytest.TempPathFactory):
    """A small generated dataset around the August 2022 outage (120 stores, May-Oct 2022), made once."""
    from cannabis_market.data.generate import generate_dataset
    from cannabis_market.data.loader import load_dataset

    folder = generate_dataset(
        tmp_path_factory.mktemp("outage") / "ds", stores=120, start="2022-05-01", end="2022-10-31"
    )
    return load_dataset(folder)
