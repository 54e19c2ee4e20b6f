"""Reading users' CSV files: every cell as text, header cleaned, unreadable files as a clear error."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from cannabis_market.errors import InputError


def read_csv_text(path: str | Path) -> pl.DataFrame:
    """All cells as strings (importers parse and report bad values themselves); a BOM or spaces around
    header names are dropped. Missing or unreadable files raise InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        raw = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.PolarsError as e:
        raise InputError(f"{path}: not a readable CSV ({str(e).splitlines()[0][:150]})") from None
    return raw.rename({c: c.lstrip("\ufeff").strip() for c in raw.columns})
