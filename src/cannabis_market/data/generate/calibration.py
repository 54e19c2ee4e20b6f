"""Calibration of the synthetic market: geography, public milestones, demand, prices, events.

Every number here is a modelling choice or a public fact (codes such as C24 refer to the fact list in
data/README.md); the manifest's `truth:` block records the ones each run used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cannabis_market.data.contract import CATEGORIES

GENERATOR_VERSION = "1.0.0"

MARKET_START = date(2019, 4, 1)  # first day of private retail in Ontario (C1)
LATEST_END = date(2030, 12, 31)
DEFAULT_STORES = 1758  # peak of the calibrated open-store curve (C24, Sept 2023)
MIN_STORES = 10
MAX_STORES = 5000
DATASET_NAME = "synthetic-ontario"

# ------------------------------------------------------------------------------------------ geography
# Real Ontario municipalities with approximate 2021 census populations (Statistics Canada, Census of
# Population 2021), grouped into six regions. Approximate: rounded figures, good to a few per cent.
REGIONS: tuple[str, ...] = ("Toronto", "GTA", "Central", "East", "West", "North")
MUNICIPALITIES: tuple[tuple[str, str, int], ...] = (
    ("Toronto", "Toronto", 2794000),
    ("Ottawa", "East", 1017000),
    ("Mississauga", "GTA", 718000),
    ("Brampton", "GTA", 656000),
    ("Hamilton", "Central", 569000),
    ("London", "West", 422000),
    ("Markham", "GTA", 339000),
    ("Vaughan", "GTA", 323000),
    ("Kitchener", "Central", 257000),
    ("Windsor", "West", 230000),
    ("Oakville", "GTA", 214000),
    ("Richmond Hill", "GTA", 202000),
    ("Burlington", "GTA", 187000),
    ("Oshawa", "GTA", 175000),
    ("Greater Sudbury", "North", 166000),
    ("Barrie", "Central", 148000),
    ("Guelph", "Central", 144000),
    ("Whitby", "GTA", 139000),
    ("Cambridge", "Central", 138000),
    ("St. Catharines", "Central", 137000),
    ("Milton", "GTA", 133000),
    ("Kingston", "East", 132000),
    ("Ajax", "GTA", 127000),
    ("Waterloo", "Central", 121000),
    ("Thunder Bay", "North", 109000),
    ("Brantford", "Central", 105000),
    ("Chatham-Kent", "West", 104000),
    ("Clarington", "GTA", 101000),
    ("Pickering", "GTA", 99000),
    ("Niagara Falls", "Central", 94000),
    ("Newmarket", "GTA", 88000),
    ("Peterborough", "Central", 84000),
    ("Kawartha Lakes", "Central", 79000),
    ("Caledon", "GTA", 77000),
    ("Sault Ste. Marie", "North", 72000),
    ("Sarnia", "West", 72000),
    ("Norfolk County", "West", 67000),
    ("Halton Hills", "GTA", 63000),
    ("Aurora", "GTA", 62000),
    ("Welland", "Central", 57000),
    ("Belleville", "East", 55000),
    ("North Bay", "North", 53000),
    ("Whitchurch-Stouffville", "GTA", 50000),
    ("Haldimand County", "Central", 49000),
    ("Cornwall", "East", 48000),
    ("Georgina", "GTA", 48000),
    ("Woodstock", "West", 47000),
    ("Quinte West", "East", 47000),
    ("New Tecumseth", "Central", 44000),
    ("Innisfil", "Central", 43000),
    ("Bradford West Gwillimbury", "Central", 43000),
    ("St. Thomas", "West", 43000),
    ("Timmins", "North", 41000),
    ("Lakeshore", "West", 40000),
    ("Brant County", "Central", 39000),
    ("East Gwillimbury", "GTA", 35000),
    ("Orillia", "Central", 33000),
    ("Stratford", "West", 33000),
    ("Fort Erie", "Central", 33000),
    ("LaSalle", "West", 33000),
    ("Centre Wellington", "Central", 31000),
    ("Orangeville", "Central", 30000),
    ("Leamington", "West", 30000),
    ("Grimsby", "Central", 29000),
    ("Lincoln", "Central", 26000),
    ("Prince Edward County", "East", 26000),
    ("Wasaga Beach", "Central", 25000),
    ("Collingwood", "Central", 25000),
    ("Thorold", "Central", 24000),
    ("Amherstburg", "West", 24000),
    ("Tecumseh", "West", 23000),
    ("Oro-Medonte", "Central", 23000),
    ("Essa", "Central", 23000),
    ("Scugog", "GTA", 22000),
    ("Kingsville", "West", 22000),
    ("Brockville", "East", 22000),
    ("Owen Sound", "West", 22000),
    ("Uxbridge", "GTA", 22000),
    ("Essex", "West", 21000),
    ("Huntsville", "Central", 21000),
    ("Cobourg", "East", 21000),
    ("Port Colborne", "Central", 20000),
    ("Niagara-on-the-Lake", "Central", 19000),
    ("Tillsonburg", "West", 19000),
    ("Pelham", "Central", 18000),
    ("Petawawa", "East", 18000),
    ("Midland", "Central", 18000),
    ("Port Hope", "East", 17000),
    ("Greater Napanee", "East", 17000),
    ("Bracebridge", "Central", 16000),
    ("Kenora", "North", 15000),
    ("Clearview", "Central", 15000),
    ("Pembroke", "East", 14000),
    ("Trent Hills", "East", 14000),
    ("Ingersoll", "West", 14000),
    ("Gravenhurst", "Central", 13000),
    ("Carleton Place", "East", 12500),
    ("Brighton", "East", 12100),
    ("Elliot Lake", "North", 11400),
    ("Hawkesbury", "East", 10200),
    ("Temiskaming Shores", "North", 9600),
    ("Arnprior", "East", 9600),
    ("Smiths Falls", "East", 9300),
    ("Kapuskasing", "North", 8100),
    ("Hanover", "West", 8000),
    ("Goderich", "West", 7900),
    ("Kirkland Lake", "North", 7800),
    ("Fort Frances", "North", 7500),
    ("Dryden", "North", 7400),
    ("Parry Sound", "North", 6900),
    ("Perth", "East", 6500),
    ("Sioux Lookout", "North", 5800),
    ("Cochrane", "North", 5400),
    ("Gananoque", "East", 5400),
    ("Espanola", "North", 5200),
    ("Hearst", "North", 4800),
)
POPULATION_GROWTH = {
    "Toronto": 0.008,
    "GTA": 0.014,
    "Central": 0.013,
    "East": 0.012,
    "West": 0.011,
    "North": 0.004,
}
CHAINS: tuple[str, ...] = tuple(
    f"Synth {n}"
    for n in (
        "Alder",
        "Birch",
        "Cedar",
        "Dogwood",
        "Elm",
        "Fir",
        "Ginkgo",
        "Hemlock",
        "Ironwood",
        "Juniper",
        "Larch",
        "Maple",
    )
)

# ------------------------------------------------------------------------------------------ calibration
# Target count of open stores (net of closures), linear in between, flat after the last point.
STORE_TARGETS: tuple[tuple[date, int, str], ...] = (
    (date(2019, 4, 1), 10, "C1"),
    (date(2019, 6, 30), 22, "C3"),
    (date(2019, 7, 31), 24, "C2"),
    (date(2019, 11, 30), 27, "interpolation"),
    (date(2020, 3, 31), 52, "C3"),
    (date(2020, 4, 4), 52, "C4"),
    (date(2020, 6, 9), 87, "C5"),
    (date(2020, 6, 26), 100, "C6"),
    (date(2020, 9, 1), 150, "C7"),
    (date(2020, 9, 30), 178, "C9"),
    (date(2020, 11, 28), 250, "C10"),
    (date(2021, 3, 31), 572, "C12"),
    (date(2021, 6, 30), 834, "C14"),
    (date(2021, 8, 20), 1000, "C15"),
    (date(2021, 9, 30), 1115, "C16"),
    (date(2021, 12, 31), 1333, "C16"),
    (date(2022, 3, 31), 1460, "C18"),
    (date(2022, 8, 15), 1600, "A4/C21"),
    (date(2023, 3, 31), 1661, "C23"),
    (date(2023, 9, 30), 1758, "C24"),
    (date(2024, 12, 31), 1720, "C26"),
)
# Market demand: de-seasonalised store sales, CAD per month, log-linear in between; after the last
# point it grows at DEMAND_GROWTH_AFTER per year.
DEMAND_ANCHORS: tuple[tuple[date, float], ...] = (
    (date(2019, 4, 15), 16.0e6),
    (date(2019, 9, 15), 26.0e6),
    (date(2020, 2, 15), 31.0e6),
    (date(2020, 6, 15), 42.0e6),
    (date(2020, 10, 15), 68.0e6),
    (date(2021, 3, 15), 95.0e6),
    (date(2021, 7, 15), 123.0e6),
    (date(2021, 12, 15), 137.0e6),
    (date(2022, 7, 15), 146.0e6),
    (date(2023, 7, 15), 161.0e6),
    (date(2024, 7, 15), 181.0e6),
    (date(2024, 12, 15), 186.0e6),
)
DEMAND_GROWTH_AFTER = 0.03
# Daily-rate multipliers by calendar month (mean 1) and by ISO weekday Mon..Sun (mean 1).
SEASONALITY = (0.94, 0.93, 0.96, 0.98, 1.01, 1.01, 1.05, 1.07, 1.03, 0.99, 0.97, 1.06)
DAY_OF_WEEK = (0.85, 0.87, 0.93, 1.00, 1.22, 1.18, 0.95)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Category revenue shares at the start (2019-04-01) and end (2024-12-31) of the ramp, linear in between.
CATEGORY_SHARE_START = {
    "dried_flower": 0.58, "pre_rolls": 0.10, "vapes": 0.13, "edibles": 0.08,
    "beverages": 0.03, "extracts": 0.05, "other": 0.03,
}  # fmt: skip
CATEGORY_SHARE_END = {
    "dried_flower": 0.44, "pre_rolls": 0.21, "vapes": 0.16, "edibles": 0.07,
    "beverages": 0.03, "extracts": 0.06, "other": 0.03,
}  # fmt: skip
CATEGORY_SHARE_END_DATE = date(2024, 12, 31)
# Price per gram-equivalent relative to dried flower.
CATEGORY_PRICE_RATIO = {
    "dried_flower": 1.0, "pre_rolls": 1.15, "vapes": 1.5, "edibles": 1.3,
    "beverages": 1.6, "extracts": 1.3, "other": 1.2,
}  # fmt: skip


@dataclass(frozen=True)
class _Params:
    """Every structural parameter of the simulation (all of it goes to `truth:`)."""

    cannibalization_elasticity: float = -0.22  # b: total effect of log(1+c) on log revenue
    price_elasticity: float = -1.2  # epsilon: d log grams / d log price
    price_compression_annual: float = -0.065  # fractional change per year of the base price
    price_density_effect: float = -0.16  # delta: d log price / d log(1+c)
    flower_price_base: float = 13.2  # CAD/g at 2019-04-01, no competitor, store price level 0
    store_price_level_sd: float = 0.05  # a_i
    price_shock_sd: float = 0.06  # z_it stationary sd
    price_shock_ar1: float = 0.9  # z_it daily persistence
    store_effect_sd: float = 0.5  # sd of the store demand fixed effect (log scale)
    population_elasticity: float = 0.22  # theta: store effect rises with log(population)
    reference_population: int = 100000
    municipality_attractiveness_sd: float = 0.35  # openings go to municipalities by pop x attractiveness
    chain_probability: float = 0.35
    store_day_noise_sd: float = 0.18  # u_it
    category_noise_sd: float = 0.10  # e_ikt
    common_shock_sd: float = 0.03  # eta_t stationary sd
    common_shock_ar1: float = 0.5
    breakeven_monthly_revenue: float = 68000.0  # CAD at BREAKEVEN_REFERENCE
    breakeven_growth_annual: float = 0.22
    closure_trailing_months: int = 6
    closure_probability: float = 0.022  # monthly, for a store below break-even
    outage_partial_fill: float = 0.72
    cover_mean: float = 7.0  # days of cover, Gamma
    cover_sd: float = 3.0
    cover_fluctuation_sd: float = 0.15  # day-to-day log fluctuation of cover outside the outage
    cover_fluctuation_ar1: float = 0.8
    cover_recovery_days: float = 4.0  # e-folding time of the rebuild after the outage
    curbside_share: float = 0.6


PARAMS = _Params()
BREAKEVEN_REFERENCE = date(2023, 1, 1)
PRICE_REFERENCE = MARKET_START

OUTAGE_START = date(2022, 8, 5)
OUTAGE_PARTIAL_FROM = date(2022, 8, 10)
OUTAGE_NORMAL_FROM = date(2022, 8, 18)
OUTAGE_STOP_DAYS = (OUTAGE_PARTIAL_FROM - OUTAGE_START).days  # 5
OUTAGE_PARTIAL_DAYS = (OUTAGE_NORMAL_FROM - OUTAGE_PARTIAL_FROM).days  # 8
CLOSURE_ORDER = date(2020, 4, 4)  # stores ordered closed at 23:59 (A16)
CLOSURE_FROM = date(2020, 4, 5)
CURBSIDE_FROM = date(2020, 4, 7)  # A17
CLOSURE_NORMAL_FROM = date(2020, 5, 19)  # modelling choice: in-store shopping back to normal
INVENTORY_WINDOW_DAYS = 30

CATS = tuple(sorted(CATEGORIES))  # output order (alphabetical, as the sort order of the sales table)
