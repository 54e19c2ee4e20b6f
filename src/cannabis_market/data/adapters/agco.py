"""AGCO (Ontario) cannabis retail store list -> stores snapshot + per-municipality store counts.

The AGCO list (`License Number`, `Municipality or First Nation`, `Store Name`, `Address`,
`Store Application Status`, `Website`) is a snapshot with **no dates at all**: no authorization, opening
or closing date. What the importer does about that, and the other quirks:

- **Dates.** With `dates=` (a CSV with columns `licence`, `opened_on`, `closed_on`) the stores table gets
  those real dates. Without it, `stores` holds only the stores *authorized at the snapshot*, and their
  `opened_on` is a placeholder equal to the snapshot date (the contract requires a date; the honest value
  we have is "known open on"). The manifest then says `dates: unknown`, and the CLI prints a warning:
  such a stores table supports cross-sectional counts, never entry/exit timing.
- **Snapshot date.** `snapshot=` if given; otherwise the latest "Public Notice Period: Ended YYYY/MM/DD"
  date in the statuses, a lower bound of when the list was taken (stated as such in the manifest).
- **Status** -> `authorized` ("Authorized to Open"), `cancelled`, `in_progress`, `public_notice`
  (public notice running or ended, decision pending), `other`. Every row, with its raw status, goes to the
  extra file `agco_licences.csv` (not a contract table; the loader ignores it).
- **Duplicates.** Exact duplicate rows are dropped and counted; the rest are keyed by licence. Rows
  without a licence number (applications still in public notice) are kept in `agco_licences.csv` only.
- **Municipality.** The list uses postal community names. Former municipalities amalgamated into a city
  are folded into it (Scarborough, North York, Etobicoke, York, East York -> Toronto; Nepean, Kanata,
  Orleans, Gloucester, ... -> Ottawa; Stoney Creek, Ancaster, Dundas, ... -> Hamilton; Sudbury ->
  Greater Sudbury, ...); other names are title-cased. The raw name stays in `agco_licences.csv`.
- **Region.** A small hand-written map of the larger municipalities to the six regions used across the
  package (Toronto, GTA, Central, East, West, North); everything else is `unassigned`. Chain is empty.

`series` (date = snapshot month start): per municipality `stores_authorized`; for geo "Ontario" also
`licences_cancelled`, `applications_in_progress`, `applications_public_notice`, and `cancelled_share` =
cancelled / (authorized + cancelled) licences — an exit share over the whole life of the list, not a rate
per year.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market.data.adapters import (
    ROW,
    bad_rows,
    plural,
    problem,
    raise_problems,
    series_frame,
    write_dataset,
)
from cannabis_market.data.csvio import read_csv_text
from cannabis_market.errors import InputError

LICENCE, MUNI, NAME, ADDRESS, STATUS, WEBSITE = (
    "License Number",
    "Municipality or First Nation",
    "Store Name",
    "Address",
    "Store Application Status",
    "Website",
)
REQUIRED = (LICENCE, MUNI, STATUS)

# Postal community names -> the current municipality (amalgamations and spelling variants).
ALIASES: dict[str, str] = {
    **dict.fromkeys(["SCARBOROUGH", "NORTH YORK", "NORTHYORK", "ETOBICOKE", "YORK", "EAST YORK"], "Toronto"),
    **dict.fromkeys(
        [
            "NEPEAN",
            "KANATA",
            "ORLEANS",
            "GLOUCESTER",
            "STITTSVILLE",
            "VANIER",
            "MANOTICK",
            "RICHMOND",
            "CARP",
            "GREELY",
            "OSGOODE",
            "NORTH GOWER",
            "CUMBERLAND",
        ],
        "Ottawa",
    ),
    **dict.fromkeys(
        ["STONEY CREEK", "ANCASTER", "DUNDAS", "WATERDOWN", "BINBROOK", "FLAMBOROUGH", "HANNON"], "Hamilton"
    ),
    **dict.fromkeys(
        ["SUDBURY", "HANMER", "VAL CARON", "CHELMSFORD", "LIVELY", "AZILDA", "GARSON", "ONAPING"],
        "Greater Sudbury",
    ),
    **dict.fromkeys(["ST CATHARINES", "ST. CATHARINES"], "St. Catharines"),
    **dict.fromkeys(["SAULT STE MARIE", "SAULT STE. MARIE"], "Sault Ste. Marie"),
    **dict.fromkeys(["ST THOMAS", "ST. THOMAS"], "St. Thomas"),
    **dict.fromkeys(["STOUFFVILLE", "WHITCHURCH-STOUFFVILLE"], "Whitchurch-Stouffville"),
    **dict.fromkeys(["CHATHAM", "WALLACEBURG", "TILBURY", "BLENHEIM", "RIDGETOWN"], "Chatham-Kent"),
    **dict.fromkeys(["BOWMANVILLE", "COURTICE", "NEWCASTLE"], "Clarington"),
    **dict.fromkeys(["GEORGETOWN", "ACTON"], "Halton Hills"),
    **dict.fromkeys(["BRADFORD"], "Bradford West Gwillimbury"),
    **dict.fromkeys(["KESWICK", "SUTTON", "PEFFERLAW", "JACKSONS POINT"], "Georgina"),
    **dict.fromkeys(["PORT PERRY"], "Scugog"),
    **dict.fromkeys(["TRENTON"], "Quinte West"),
    **dict.fromkeys(
        ["LINDSAY", "FENELON FALLS", "BOBCAYGEON", "COBOCONK", "OMEMEE", "WOODVILLE", "KINMOUNT"],
        "Kawartha Lakes",
    ),
    **dict.fromkeys(["SIMCOE", "PORT DOVER", "DELHI", "WATERFORD"], "Norfolk County"),
    **dict.fromkeys(["ALLISTON", "BEETON", "TOTTENHAM"], "New Tecumseth"),
    **dict.fromkeys(["BEAMSVILLE"], "Lincoln"),
    **dict.fromkeys(["FONTHILL"], "Pelham"),
    **dict.fromkeys(["NAPANEE"], "Greater Napanee"),
    **dict.fromkeys(["PICTON"], "Prince Edward County"),
    **dict.fromkeys(["BELLE RIVER"], "Lakeshore"),
    **dict.fromkeys(["RIDGEWAY, FORT ERIE", "CRYSTAL BEACH", "RIDGEWAY"], "Fort Erie"),
    **dict.fromkeys(["ST MARY'S", "ST. MARYS", "ST MARYS"], "St. Marys"),
    **dict.fromkeys(["LASALLE"], "LaSalle"),
}

# Larger municipalities -> the six regions used across the package (see data/generate.py); rest unassigned.
REGIONS: dict[str, str] = {
    "Toronto": "Toronto",
    **dict.fromkeys(
        [
            "Mississauga",
            "Brampton",
            "Markham",
            "Vaughan",
            "Oakville",
            "Richmond Hill",
            "Burlington",
            "Oshawa",
            "Whitby",
            "Milton",
            "Ajax",
            "Clarington",
            "Pickering",
            "Newmarket",
            "Caledon",
            "Halton Hills",
            "Aurora",
            "Whitchurch-Stouffville",
            "Georgina",
            "East Gwillimbury",
            "Scugog",
            "Uxbridge",
            "King",
        ],
        "GTA",
    ),
    **dict.fromkeys(
        [
            "Hamilton",
            "Kitchener",
            "Barrie",
            "Guelph",
            "Cambridge",
            "St. Catharines",
            "Waterloo",
            "Brantford",
            "Niagara Falls",
            "Peterborough",
            "Kawartha Lakes",
            "Welland",
            "Haldimand County",
            "New Tecumseth",
            "Innisfil",
            "Bradford West Gwillimbury",
            "Brant County",
            "Orillia",
            "Fort Erie",
            "Centre Wellington",
            "Orangeville",
            "Grimsby",
            "Lincoln",
            "Wasaga Beach",
            "Collingwood",
            "Thorold",
            "Port Colborne",
            "Niagara-on-the-Lake",
            "Pelham",
            "Midland",
            "Huntsville",
            "Bracebridge",
            "Gravenhurst",
            "Shelburne",
        ],
        "Central",
    ),
    **dict.fromkeys(
        [
            "Ottawa",
            "Kingston",
            "Belleville",
            "Cornwall",
            "Quinte West",
            "Prince Edward County",
            "Brockville",
            "Cobourg",
            "Petawawa",
            "Port Hope",
            "Greater Napanee",
            "Pembroke",
            "Hawkesbury",
            "Smiths Falls",
            "Carleton Place",
            "Perth",
            "Arnprior",
            "Renfrew",
            "Kemptville",
        ],
        "East",
    ),
    **dict.fromkeys(
        [
            "London",
            "Windsor",
            "Chatham-Kent",
            "Sarnia",
            "Norfolk County",
            "Woodstock",
            "Leamington",
            "St. Thomas",
            "Lakeshore",
            "Stratford",
            "LaSalle",
            "Amherstburg",
            "Tecumseh",
            "Kingsville",
            "Owen Sound",
            "Essex",
            "Tillsonburg",
            "Strathroy",
            "Ingersoll",
            "St. Marys",
        ],
        "West",
    ),
    **dict.fromkeys(
        [
            "Greater Sudbury",
            "Thunder Bay",
            "Sault Ste. Marie",
            "North Bay",
            "Timmins",
            "Kenora",
            "Elliot Lake",
            "Temiskaming Shores",
            "Kapuskasing",
            "Dryden",
            "Fort Frances",
            "Espanola",
            "Kirkland Lake",
        ],
        "North",
    ),
}
UNASSIGNED = "unassigned"

STATUS_GROUPS = ("authorized", "cancelled", "in_progress", "public_notice", "other")
_ENDED = re.compile(r"Ended\s+(\d{4})/(\d{1,2})/(\d{1,2})", re.IGNORECASE)


def canonical_municipality(name: str | None) -> str:
    """AGCO community name -> current municipality (amalgamations folded in; others title-cased)."""
    if name is None or not name.strip():
        return "unknown"
    key = " ".join(name.strip().upper().split())
    if key in ALIASES:
        return ALIASES[key]
    for canon in REGIONS:
        if canon.upper() == key:
            return canon
    return " ".join("-".join(part.capitalize() for part in word.split("-")) for word in key.split())


def region_for(municipality: str | None) -> str:
    """Region of a municipality (after `canonical_municipality`); `unassigned` when not in the map."""
    if not municipality:
        return UNASSIGNED
    return REGIONS.get(municipality, REGIONS.get(canonical_municipality(municipality), UNASSIGNED))


def status_group(col: str = STATUS) -> pl.Expr:
    s = pl.col(col).fill_null("").str.strip_chars().str.to_lowercase()
    return (
        pl.when(s.str.starts_with("authorized"))
        .then(pl.lit("authorized"))
        .when(s.str.starts_with("cancel"))
        .then(pl.lit("cancelled"))
        .when(s.str.starts_with("in progress"))
        .then(pl.lit("in_progress"))
        .when(s.str.starts_with("public notice"))
        .then(pl.lit("public_notice"))
        .otherwise(pl.lit("other"))
    )


def read_agco(csv: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every row of the list, deduplicated, with canonical municipality, region and status group."""
    path = Path(csv)
    raw = read_csv_text(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path.name}: required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(columns found: {', '.join(raw.columns[:12])}); expected the AGCO cannabis retail store list"
        )
    if raw.height == 0:
        raise InputError(f"{path.name}: no data rows")
    for c in (NAME, ADDRESS, WEBSITE):
        if c not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(c))
    raw = raw.with_row_index(ROW, offset=1)
    cols = [LICENCE, MUNI, NAME, ADDRESS, STATUS, WEBSITE]
    df = raw.with_columns(pl.col(c).str.strip_chars() for c in cols).with_columns(
        pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in cols
    )
    n_rows = df.height
    df = df.unique(subset=cols, keep="first", maintain_order=True)
    n_exact = n_rows - df.height
    problems: list[str] = []
    n, ex = bad_rows(df, df[STATUS].is_null(), STATUS)
    if n:
        problems.append(problem(path.name, STATUS, f"{plural(n, 'row')} without a status", ex))
    conflict = df.filter(pl.col(LICENCE).is_not_null() & pl.col(LICENCE).is_duplicated())
    if conflict.height:
        ex = [(int(r), v) for r, v in conflict.select(ROW, LICENCE).head(3).iter_rows()]
        problems.append(
            problem(
                path.name,
                LICENCE,
                f"{plural(conflict.height, 'row')} share a licence number with different details",
                ex,
            )
        )
    raise_problems(problems, path.name)
    munis = {m: canonical_municipality(m) for m in df[MUNI].unique().to_list()}
    df = df.with_columns(
        pl.col(MUNI).replace_strict(munis, default="unknown", return_dtype=pl.String).alias("municipality"),
        status_group().alias("status"),
    ).with_columns(
        pl.col("municipality")
        .replace_strict(
            {m: region_for(m) for m in set(munis.values())}, default=UNASSIGNED, return_dtype=pl.String
        )
        .alias("region")
    )
    licences = df.select(
        pl.col(LICENCE).alias("licence"),
        pl.col(MUNI).alias("municipality_raw"),
        "municipality",
        "region",
        pl.col(NAME).alias("store_name"),
        pl.col(ADDRESS).alias("address"),
        "status",
        pl.col(STATUS).alias("status_raw"),
        pl.col(WEBSITE).alias("website"),
    )
    counts = {g: int((licences["status"] == g).sum()) for g in STATUS_GROUPS}
    raw_groups = raw.select(status_group().alias("g"))["g"]
    rows_by_status = {g: int((raw_groups == g).sum()) for g in STATUS_GROUPS}
    ended = [
        dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        for s in df[STATUS].drop_nulls().to_list()
        if (m := _ENDED.search(s))
    ]
    decided = counts["authorized"] + counts["cancelled"]
    notes = {
        "file": path.name,
        "rows": n_rows,
        "exact_duplicate_rows_dropped": n_exact,
        "rows_without_licence": int(licences["licence"].is_null().sum()),
        "rows_by_status": rows_by_status,
        "licences_by_status": counts,
        "cancelled_share": round(counts["cancelled"] / decided, 4) if decided else None,
        "cancelled_share_rule": "cancelled / (authorized + cancelled), distinct licences, whole life of the list",
        "latest_public_notice_end": max(ended).isoformat() if ended else None,
        "municipalities_authorized": int(
            licences.filter(pl.col("status") == "authorized")["municipality"].n_unique()
        ),
    }
    return licences, notes


def stores_per_municipality(
    licences: pl.DataFrame | str | Path, population: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Authorized stores per municipality (distinct licences), largest first, for saturation checks.

    `licences` is the frame from `read_agco` (or the CSV path). With `population` (columns `municipality`,
    `population`, optionally `year` — the latest year is used), adds `stores_per_100k`.
    """
    lic = read_agco(licences)[0] if isinstance(licences, str | Path) else licences
    out = (
        lic.filter(pl.col("status") == "authorized")
        .group_by("municipality", "region")
        .agg(pl.col("licence").n_unique().alias("stores"))
        .sort(["stores", "municipality"], descending=[True, False])
    )
    if population is not None:
        pop = population
        if "year" in pop.columns:
            pop = pop.sort("year").group_by("municipality").last()
        out = out.join(pop.select("municipality", "population"), on="municipality", how="left").with_columns(
            (pl.col("stores") / pl.col("population") * 1e5).alias("stores_per_100k")
        )
    return out


def _read_dates(csv: str | Path) -> pl.DataFrame:
    path = Path(csv)
    if not path.is_file():
        raise InputError(f"--dates {path}: file not found")
    try:
        raw = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except pl.exceptions.PolarsError as e:
        raise InputError(
            f"--dates {path}: not a readable UTF-8 CSV ({str(e).splitlines()[0][:150]})"
        ) from None
    raw = raw.rename({c: c.lstrip("\ufeff").strip() for c in raw.columns})
    missing = [c for c in ("licence", "opened_on") if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path.name}: required column(s) {', '.join(missing)} missing (columns found: {', '.join(raw.columns)}); "
            "the dates file needs licence, opened_on and optionally closed_on (YYYY-MM-DD)"
        )
    if "closed_on" not in raw.columns:
        raw = raw.with_columns(pl.lit(None, pl.String).alias("closed_on"))
    df = raw.with_row_index(ROW, offset=1).with_columns(
        pl.col("licence").str.strip_chars(),
        *[
            pl.col(c).str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias(f"_{c}")
            for c in ("opened_on", "closed_on")
        ],
    )
    problems = []
    for c in ("opened_on", "closed_on"):
        mask = df[c].is_not_null() & (df[c].str.strip_chars() != "") & df[f"_{c}"].is_null()
        if c == "opened_on":
            mask = mask | df[c].is_null() | (df[c].str.strip_chars() == "")
        n, ex = bad_rows(df, mask, c)
        if n:
            problems.append(problem(path.name, c, f"{plural(n, 'value')} not a date YYYY-MM-DD", ex))
    n, ex = bad_rows(df, df["_closed_on"] < df["_opened_on"], "closed_on")
    if n:
        problems.append(problem(path.name, "closed_on", f"{plural(n, 'row')} close before they open", ex))
    n, ex = bad_rows(df, df["licence"].is_duplicated(), "licence")
    if n:
        problems.append(problem(path.name, "licence", f"{plural(n, 'row')} repeat a licence", ex))
    raise_problems(problems, path.name)
    return df.select(
        "licence", pl.col("_opened_on").alias("opened_on"), pl.col("_closed_on").alias("closed_on")
    )


def import_agco(
    csv: str | Path, out: str | Path, snapshot: str | dt.date | None = None, dates: str | Path | None = None
) -> tuple[Path, str, list[str]]:
    """Write the stores snapshot + municipality series; atomic. Returns (path, summary, warnings)."""
    licences, notes = read_agco(csv)
    if snapshot is None:
        if notes["latest_public_notice_end"] is None:
            raise InputError(
                f"{notes['file']}: the list has no dates to infer the snapshot from; pass --snapshot YYYY-MM-DD"
            )
        snap = dt.date.fromisoformat(notes["latest_public_notice_end"])
        snap_rule = "inferred: latest 'Public Notice Period: Ended' date in the list (a lower bound)"
    else:
        try:
            snap = snapshot if isinstance(snapshot, dt.date) else dt.date.fromisoformat(str(snapshot))
        except ValueError:
            raise InputError(f"--snapshot {snapshot!r}: not a date YYYY-MM-DD") from None
        snap_rule = "given by the user"
    warnings: list[str] = []
    keyed = licences.filter(pl.col("licence").is_not_null())
    base = pl.col("status") == "authorized"
    if dates is None:
        stores = keyed.filter(base).with_columns(
            pl.lit(snap).alias("opened_on"), pl.lit(None, pl.Date).alias("closed_on")
        )
        dates_note = "unknown"
        warnings.append(
            f"the AGCO list has no dates: opened_on of the {stores.height:,} authorized stores is a placeholder "
            f"(the snapshot date {snap}); manifest says dates: unknown. Use this stores table for "
            "cross-sectional counts only, never for entry/exit timing (or pass --dates CSV)."
        )
    else:
        d = _read_dates(dates)
        joined = keyed.join(d, on="licence", how="left")
        unknown_ids = d.join(keyed, on="licence", how="anti")
        if unknown_ids.height:
            warnings.append(
                f"{unknown_ids.height} licence(s) in {Path(dates).name} are not in the AGCO list and were ignored, "
                f"e.g. {', '.join(unknown_ids['licence'].head(3).to_list())}"
            )
        with_dates = joined.filter(pl.col("opened_on").is_not_null())
        no_dates = joined.filter(base & pl.col("opened_on").is_null()).with_columns(
            pl.lit(snap).alias("opened_on")
        )
        if no_dates.height:
            warnings.append(
                f"{no_dates.height} authorized store(s) have no row in {Path(dates).name}; their opened_on is the "
                f"snapshot date {snap} (placeholder)"
            )
        stores = pl.concat([with_dates, no_dates], how="vertical_relaxed")
        dates_note = "from --dates file" + (" (placeholders for some stores)" if no_dates.height else "")
    stores_tbl = stores.select(
        pl.col("licence").alias("store_id"),
        "municipality",
        "region",
        pl.col("opened_on").cast(pl.Date),
        pl.col("closed_on").cast(pl.Date),
        pl.lit(None, pl.String).alias("chain"),
    ).sort("store_id")
    month = snap.replace(day=1)
    per_muni = stores_per_municipality(licences)
    c = notes["licences_by_status"]
    ontario = {
        "stores_authorized": float(per_muni["stores"].sum()),
        "licences_cancelled": float(keyed.filter(pl.col("status") == "cancelled")["licence"].n_unique()),
        "applications_in_progress": float(c["in_progress"]),
        "applications_public_notice": float(c["public_notice"]),
    }
    if notes["cancelled_share"] is not None:
        ontario["cancelled_share"] = float(notes["cancelled_share"])
    series = series_frame(
        pl.concat(
            [
                per_muni.select(
                    pl.lit(month).alias("date"),
                    pl.col("municipality").alias("geo"),
                    pl.lit("stores_authorized").alias("metric"),
                    pl.col("stores").cast(pl.Float64).alias("value"),
                ),
                pl.DataFrame(
                    {
                        "date": [month] * len(ontario),
                        "geo": ["Ontario"] * len(ontario),
                        "metric": list(ontario),
                        "value": list(ontario.values()),
                    }
                ),
            ],
            how="vertical_relaxed",
        )
    )
    if series.filter(pl.col("geo") == "Ontario").height > len(ontario):
        raise InputError(
            f"{notes['file']}: a municipality is literally named 'Ontario'; cannot tell it from the total"
        )
    manifest = {
        "name": Path(out).name,
        "description": (
            f"AGCO cannabis retail store list (Ontario) imported from {notes['file']}, snapshot {snap}. "
            + (
                "The list has NO dates: stores are those authorized at the snapshot and opened_on is a "
                "placeholder (the snapshot date), so this supports cross-sectional counts (stores per "
                "municipality, cancelled share) but not entry/exit timing. "
                if dates is None
                else f"Opening/closing dates from {Path(dates).name}. "
            )
            + "Municipalities are AGCO community names with amalgamated former municipalities folded in; "
            "regions from a small hand-written map (others 'unassigned'). Every row and its raw status is in "
            "agco_licences.csv."
        ),
        "source": "other",
        "frequency": "monthly",
        "currency": "CAD",
        "region": "Ontario",
        "dates": dates_note,
        "snapshot": snap.isoformat(),
        "snapshot_rule": snap_rule,
        "import": {**notes, "opened_on": "snapshot-date placeholder" if dates is None else "from --dates"},
    }
    path = write_dataset(
        out, "agco", manifest, {"stores": stores_tbl, "series": series}, extra={"agco_licences": licences}
    )
    info = (
        f"{notes['rows']:,} rows ({notes['exact_duplicate_rows_dropped']} exact duplicates dropped): "
        f"{notes['rows_by_status']['authorized']:,} authorized rows ({c['authorized']:,} distinct licences), "
        f"{c['cancelled']:,} cancelled, {c['in_progress']} in progress, "
        f"{c['public_notice']} in public notice; cancelled share {notes['cancelled_share']:.1%}; "
        f"{notes['municipalities_authorized']} municipalities with stores; snapshot {snap}"
    )
    return path, info, warnings
