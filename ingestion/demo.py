"""The demo dataset: seeded, realistic multi-year sales with a manifest of injected anomalies.

`demo_frame_generate(rows=, seed=, start=, years=)` returns a frame in the columns of the real
`supermarket_sales.csv` (dates in ISO form) and the manifest of the anomalies injected into it.
`python manage.py load_demo` publishes it through the ingestion pipeline; the alerts issue reads
the manifest from `demo_manifest_path(datasource)`.

How the numbers are made
------------------------
Every (day, branch, product line) cell gets an expected revenue:

    branch size × branch weekday profile × season × branch growth × product-line share (with its own
    mild season) × multiplicative noise × anomaly factor (1 outside the manifest)

Season is smooth on purpose (a broad December peak, a summer dip, no holidays): ordinary
movements stay small against the trailing same-weekday comparison the anomaly rule makes.
Noise is log-normal at three levels: the day (shared by all branches, σ=`NOISE_DAY`), the
branch-day (σ=`NOISE_BRANCH_DAY`) and the product line within it (σ=`NOISE_LINE`): a branch's
day deviates by ≈5 % (log sd) from its expectation, a branch × product-line day by ≈8 %.

Sale lines are spread over the cells in proportion to their expected line count (systematic
sampling: exactly `rows` lines, each cell within one line of its expectation) and grouped into
invoices of 1–4 lines of different product lines (one branch, day, time, customer and payment
each; ≈2.1 lines on average). Prices and quantities are drawn stratified within each cell, and
unit prices are then scaled (clamped to ×0.4…×2.5) so each cell's revenue, then each
branch-day's, lands on its expected value: the noise in the data is the designed noise above,
not the accident of a few large tickets. Below ≈10 lines per branch-day (≈50 000 rows over
3 years) a cell holds one line or none, the clamp binds, and the data get noisier. Costs
follow a gross margin per product line (±branch, ±3 % per line); `gross income` = `Total` −
`cogs` and `gross margin percentage` = `gross income` / `Total` × 100, as in the real file.

Anomalies (`ANOMALY_PLAN`, 6) are one-day revenue events at one branch: a spike (×2.5 or ×3,
on a Monday–Thursday), a drop (to 20 % or 25 %, on a Friday–Sunday), or a product-line spike
(×8 or ×10 for one product line at one branch: a promotion). They are at least 9 weeks after
the start, away from the festive season (15 Nov–15 Jan) and spread over the range, so none sits
in another's trailing 8-week window. An anomaly shows at every scope of its branch that holds
its cells: a branch entry in the branch's total and in each of its product lines, a
product-line entry in that line at that branch and in the branch's total (≈ +100 %):
`demo_anomalies_for_scope` lists the entries a rule on one branch (and optionally one product
line) must flag. At scopes without a branch (the datasource total, a product line over all
branches) the effect is diluted by the branch's share and may or may not cross a threshold.

For the anomaly rule: a robust z-score from only 8 trailing values is heavy-tailed (median and
MAD of 8 Gaussian values: |z| > 6 on ~1 % of ordinary days), so its scale needs a floor:
z = (x − median) / max(1.4826 × MAD, 0.1 × median), i.e. 0.6745 × (x − median) / max(MAD,
0.0675 × median). Measured with that floor on branch-days (seeds 1–7 and 42, 50 000 to 200 000
rows): ordinary days stay below |z| 4, anomalies score 6 to 25 (drops ≈ −7.5: the floor caps
a drop to 20 % at −8), so a threshold of 4.5 flags exactly the manifest. A floor of 2.5 % of the
median is too tight for this noise (dozens of ordinary branch-days above 4.5), and with 20 000
rows even the 10 % floor lets a few ordinary days through. tests/ingestion/test_demo.py checks
the 200 000-row case for one seed.

Everything is vectorised (Polars, with pyarrow's seeded generator as in bench/generate.py;
numpy is not a dependency): 500 000 rows take a few seconds; the same arguments give the
same frame and manifest.
"""

import datetime as dt
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.compute as pc
from django.conf import settings

COLUMNS: tuple[str, ...] = (
    "Invoice ID",
    "Branch",
    "City",
    "Customer type",
    "Gender",
    "Product line",
    "Unit price",
    "Quantity",
    "Tax 5%",
    "Total",
    "Date",
    "Time",
    "Payment",
    "cogs",
    "gross margin percentage",
    "gross income",
    "Rating",
)

DEFAULT_ROWS = 200_000
DEFAULT_SEED = 42
DEFAULT_YEARS = 3
DEFAULT_START = dt.date(2023, 1, 1)
DEFAULT_DATASOURCE = "demo"


@dataclass(frozen=True)
class Branch:
    name: str
    city: str
    size: float  # relative revenue
    growth: float  # per year
    weekday: tuple[float, float, float, float, float, float, float]  # Monday … Sunday
    margin_offset: float


@dataclass(frozen=True)
class ProductLine:
    name: str
    share: float  # of revenue
    low: float  # unit price range
    high: float
    margin: float  # gross margin on the net (pre-tax) price
    peak_day: int  # day of the year its own mild season peaks
    tilt: float  # amplitude of that season


BRANCHES: tuple[Branch, ...] = (
    Branch("A", "Yangon", 1.00, 0.07, (0.95, 0.90, 0.92, 0.98, 1.10, 1.40, 1.05), 0.00),
    Branch("B", "Mandalay", 0.80, 0.10, (0.85, 0.80, 0.82, 0.90, 1.05, 1.45, 1.40), 0.01),
    Branch("C", "Naypyitaw", 0.70, 0.04, (1.05, 1.00, 1.00, 1.02, 1.08, 1.15, 0.80), -0.01),
    Branch("D", "Mawlamyine", 0.45, 0.12, (0.85, 0.82, 0.85, 0.90, 1.00, 1.30, 1.55), 0.02),
)
PRODUCT_LINES: tuple[ProductLine, ...] = (
    ProductLine("Electronic accessories", 0.19, 15.0, 99.99, 0.20, 350, 0.10),
    ProductLine("Fashion accessories", 0.16, 10.0, 89.99, 0.45, 100, 0.06),
    ProductLine("Food and beverages", 0.19, 8.0, 59.99, 0.24, 355, 0.04),
    ProductLine("Health and beauty", 0.14, 10.0, 79.99, 0.38, 200, 0.05),
    ProductLine("Home and lifestyle", 0.17, 15.0, 99.99, 0.32, 300, 0.06),
    ProductLine("Sports and travel", 0.15, 12.0, 99.99, 0.30, 180, 0.12),
)
CUSTOMER_TYPES: tuple[tuple[str, float], ...] = (("Member", 0.5), ("Normal", 0.5))
GENDERS: tuple[tuple[str, float], ...] = (("Female", 0.5), ("Male", 0.5))
PAYMENTS: tuple[tuple[str, float], ...] = (("Ewallet", 0.35), ("Cash", 0.34), ("Credit card", 0.31))
QUANTITY_WEIGHTS: tuple[float, ...] = (0.15, 0.14, 0.13, 0.12, 0.10, 0.09, 0.08, 0.07, 0.06, 0.06)  # 1 … 10
OPENING_MINUTE, CLOSING_MINUTE = 10 * 60, 21 * 60  # tills ring from 10:00 to 20:59
TAX_RATE = 0.05
# Seasonality: a broad peak in mid-December, its trough in mid-June, and a gentle December bump.
SEASON_PEAK_DAY, SEASON_AMPLITUDE = 350, 0.15
DECEMBER_BUMP, DECEMBER_BUMP_DAY, DECEMBER_BUMP_WIDTH = 0.05, 352, 15.0
NOISE_DAY, NOISE_BRANCH_DAY, NOISE_LINE = 0.025, 0.035, 0.06
INVOICE_BREAK_PROBABILITY = 0.1  # between two lines of a round
MAX_LINES_PER_INVOICE = 4
PRICE_SCALE_MIN, PRICE_SCALE_MAX = 0.4, 2.5

# (kind, one product line?, factor); placed in shuffled order over the date range.
ANOMALY_PLAN: tuple[tuple[str, bool, float], ...] = (
    ("spike", False, 3.0),
    ("drop", False, 0.2),
    ("spike", True, 10.0),
    ("spike", False, 2.5),
    ("drop", False, 0.25),
    ("spike", True, 8.0),
)
ANOMALY_HISTORY_DAYS = 63  # nine weeks of history before the first one
FESTIVE_SEASON = ((11, 15), (1, 15))  # (month, day) from … to: no anomalies there

# 3**18 is coprime with 10**9, so invoice number → id is a bijection: ids never repeat.
_ID_MULTIPLIER, _ID_SPACE = 387_420_489, 1_000_000_000


def demo_frame_generate(
    *, rows: int, seed: int, start: dt.date = DEFAULT_START, years: int = DEFAULT_YEARS
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """`rows` sale lines from `start` over `years` years, and the manifest of injected anomalies.

    The manifest is a list of {"date": "YYYY-MM-DD", "branch", "product_line" (or None),
    "metric": "revenue", "kind": "spike"|"drop", "factor"} sorted by date: on that day the
    scope's revenue is `factor` × what it would otherwise have been.
    """
    if rows < 1 or years < 1 or seed < 0:
        raise ValueError("rows and years must be ≥ 1 and seed ≥ 0")
    days = (_years_after(start, years) - start).days
    anomalies = _anomalies_place(random.Random(seed), start=start, days=days)  # noqa: S311 (not security)
    draw = _Draws(seed)
    cells = _cells(draw, start=start, days=days, rows=rows, anomalies=anomalies)
    lines = _lines(draw, cells, rows=rows)
    invoices = _invoices(draw, lines, start=start, seed=seed)
    frame = lines.join(invoices, on="invoice", how="left").sort("invoice_rank", "position").select(COLUMNS)
    return frame, anomalies


def demo_manifest_path(datasource: str) -> Path:
    """Where `load_demo` writes the manifest of the anomalies injected into `datasource`."""
    return Path(settings.VAR_DIR) / "demo" / f"{datasource}-anomalies.json"


def demo_manifest_write(*, datasource: str, anomalies: list[dict[str, Any]], details: dict[str, Any]) -> Path:
    """Write the manifest as {"datasource", …details, "anomalies": [...]} (atomically); returns its path."""
    path = demo_manifest_path(datasource)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"datasource": datasource, **details, "anomalies": anomalies}
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def demo_manifest_load(datasource: str) -> list[dict[str, Any]]:
    """The anomalies injected into `datasource` by `load_demo` (FileNotFoundError when none)."""
    return json.loads(demo_manifest_path(datasource).read_text(encoding="utf-8"))["anomalies"]


def demo_anomalies_for_scope(
    anomalies: list[dict[str, Any]], *, branch: str, product_line: str | None = None
) -> list[dict[str, Any]]:
    """The manifest entries a revenue anomaly rule on `branch` (and `product_line`, if given) must flag.

    A branch entry shows in every product line of its branch; a product-line entry in its line
    and in its branch's total, not in the branch's other lines.
    """
    return [
        anomaly
        for anomaly in anomalies
        if anomaly["branch"] == branch and (product_line is None or anomaly["product_line"] in (None, product_line))
    ]


# --- internals -----------------------------------------------------------------------------------


class _Draws:
    """Independent seeded streams, one per purpose, so adding one later changes none of the others."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, n: int, stream: int) -> pl.Series:
        return pl.Series(pc.random(n, initializer=self.seed * 1_000 + stream), dtype=pl.Float64)

    def normal(self, n: int, stream: int) -> pl.Series:
        """Standard normal values (Box–Muller)."""
        radius = (-2.0 * (1.0 - self.uniform(n, stream)).log()).sqrt()
        return radius * (2.0 * math.pi * self.uniform(n, stream + 1)).cos()

    def choice(self, n: int, stream: int, weights: tuple[float, ...]) -> pl.Series:
        """Indices 0..len(weights)-1 drawn with the given weights."""
        return _cumulative(weights).search_sorted(self.uniform(n, stream), side="right").cast(pl.Int64)


def _years_after(start: dt.date, years: int) -> dt.date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February
        return start.replace(year=start.year + years, day=28)


def _in_festive_season(day: dt.date) -> bool:
    (from_month, from_day), (to_month, to_day) = FESTIVE_SEASON
    return (day.month, day.day) >= (from_month, from_day) or (day.month, day.day) <= (to_month, to_day)


def _anomalies_place(rng: random.Random, *, start: dt.date, days: int) -> list[dict[str, Any]]:
    """Spread the planned anomalies over the range: one per equal slice of the eligible days,
    from that slice's middle half (so they stay apart), on a weekday that fits the kind."""
    plan = list(ANOMALY_PLAN)
    rng.shuffle(plan)
    eligible = [
        offset
        for offset in range(ANOMALY_HISTORY_DAYS, days)
        if not _in_festive_season(start + dt.timedelta(days=offset))
    ]
    branches = [branch.name for branch in BRANCHES]
    rng.shuffle(branches)
    anomalies = []
    for index, (kind, one_line, factor) in enumerate(plan):
        chunk = eligible[index * len(eligible) // len(plan) : (index + 1) * len(eligible) // len(plan)]
        middle = chunk[len(chunk) // 4 : max(len(chunk) // 4 + 1, 3 * len(chunk) // 4)]
        # A spike on an ordinary weekday, a drop on a busy one: the weekly pattern cannot explain either.
        weekdays = (0, 1, 2, 3) if kind == "spike" else (4, 5, 6)
        candidates = [o for o in middle if (start + dt.timedelta(days=o)).weekday() in weekdays] or middle
        if not candidates:
            continue
        day = start + dt.timedelta(days=rng.choice(candidates))
        anomalies.append(
            {
                "date": day.isoformat(),
                "branch": branches[index % len(branches)],
                "product_line": rng.choice(PRODUCT_LINES).name if one_line else None,
                "metric": "revenue",
                "kind": kind,
                "factor": factor,
            }
        )
    return sorted(anomalies, key=lambda a: a["date"])


def _cells(draw: _Draws, *, start: dt.date, days: int, rows: int, anomalies: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per (day, branch, product line): expected lines, how many it gets, and its revenue target."""
    n_branches, n_lines = len(BRANCHES), len(PRODUCT_LINES)
    n_cells = days * n_branches * n_lines
    index = pl.int_range(0, n_cells, eager=True, dtype=pl.Int64)
    frame = pl.DataFrame(
        {
            "cell": index,
            "day": index // (n_branches * n_lines),
            "branch": (index // n_lines) % n_branches,
            "line": index % n_lines,
        }
    )
    day_noise = draw.normal(days, 20) * NOISE_DAY
    branch_day_noise = draw.normal(days * n_branches, 22) * NOISE_BRANCH_DAY
    line_noise = draw.normal(n_cells, 24) * NOISE_LINE

    def per_branch(values: list[float]) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.Float64)).gather(pl.col("branch"))

    def per_line(values: list[float]) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.Float64)).gather(pl.col("line"))

    weekday_table = pl.Series([w for branch in BRANCHES for w in branch.weekday], dtype=pl.Float64)
    date = pl.lit(start, dtype=pl.Date) + pl.duration(days=pl.col("day"))
    year_fraction = pl.col("day") / 365.25
    day_of_year = date.dt.ordinal_day().cast(pl.Float64)
    season = (
        1.0
        + SEASON_AMPLITUDE * ((day_of_year - SEASON_PEAK_DAY) * (2 * math.pi / 365.25)).cos()
        + DECEMBER_BUMP * (-(((day_of_year - DECEMBER_BUMP_DAY) / DECEMBER_BUMP_WIDTH) ** 2) / 2).exp()
    )
    line_season = (
        1.0
        + per_line([p.tilt for p in PRODUCT_LINES])
        * ((day_of_year - per_line([float(p.peak_day) for p in PRODUCT_LINES])) * (2 * math.pi / 365.25)).cos()
    )
    noise = (
        pl.lit(day_noise).gather(pl.col("day"))
        + pl.lit(branch_day_noise).gather(pl.col("day") * n_branches + pl.col("branch"))
        + pl.lit(line_noise)
    ).exp()
    # Mean revenue of one line of each product line (uniform price × mean quantity × tax).
    mean_quantity = sum((q + 1) * w for q, w in enumerate(QUANTITY_WEIGHTS)) / sum(QUANTITY_WEIGHTS)
    line_revenue = [(p.low + p.high) / 2 * mean_quantity * (1 + TAX_RATE) for p in PRODUCT_LINES]
    revenue_weight = (
        per_branch([b.size for b in BRANCHES])
        * pl.lit(weekday_table).gather(pl.col("branch") * 7 + date.dt.weekday().cast(pl.Int64) - 1)
        * season
        * ((1.0 + per_branch([b.growth for b in BRANCHES])).log() * year_fraction).exp()
        * per_line([p.share for p in PRODUCT_LINES])
        * line_season
        * noise
        * _anomaly_factor(anomalies, start=start)
    )
    frame = frame.with_columns(revenue_weight.alias("revenue_weight"))
    frame = frame.with_columns((pl.col("revenue_weight") / per_line(line_revenue)).alias("line_weight"))
    # Systematic sampling: exactly `rows` lines, each cell within one line of its expectation.
    offset = float(draw.uniform(1, 30)[0])
    expected = pl.col("line_weight") * (rows / pl.col("line_weight").sum())
    cumulative = expected.cum_sum()
    frame = frame.with_columns(
        expected.alias("expected_lines"),
        ((cumulative + offset).floor() - (cumulative - expected + offset).floor()).cast(pl.Int64).alias("n"),
    )
    frame = frame.with_columns((pl.col("expected_lines") * per_line(line_revenue)).alias("target"))
    # Guard against rounding at the very end of the cumulative sum.
    shortfall = rows - int(frame["n"].sum())
    if shortfall:
        last = frame.height - 1
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == last).then(pl.col("n") + shortfall).otherwise(pl.col("n")).alias("n")
        )
    return frame.select("cell", "day", "branch", "line", "n", "target")


def _anomaly_factor(anomalies: list[dict[str, Any]], *, start: dt.date) -> pl.Expr:
    branch_index = {b.name: i for i, b in enumerate(BRANCHES)}
    line_index = {p.name: i for i, p in enumerate(PRODUCT_LINES)}
    factor = pl.lit(1.0)
    for anomaly in anomalies:
        condition = (pl.col("day") == (dt.date.fromisoformat(anomaly["date"]) - start).days) & (
            pl.col("branch") == branch_index[anomaly["branch"]]
        )
        if anomaly["product_line"] is not None:
            condition = condition & (pl.col("line") == line_index[anomaly["product_line"]])
        factor = pl.when(condition).then(pl.lit(anomaly["factor"])).otherwise(factor)
    return factor


def _lines(draw: _Draws, cells: pl.DataFrame, *, rows: int) -> pl.DataFrame:
    """The sale lines: their cell, invoice, product, price, quantity and amounts."""
    n_lines = len(PRODUCT_LINES)
    lines = (
        cells.filter(pl.col("n") > 0)
        .select(pl.col("cell").repeat_by("n"))
        .explode("cell")
        .with_columns(
            (pl.col("cell") // n_lines).alias("branch_day"),
            (pl.col("cell") % n_lines).alias("line"),
            draw.uniform(rows, 40).alias("order_key"),
        )
        .with_columns(pl.int_range(pl.len()).over("cell").alias("round"))
        # Invoices: round r of a branch-day holds the r-th line of each product line, so the lines
        # of an invoice cut from one round are different product lines; a promotion's extra lines
        # end up as single-line invoices in the later rounds.
        .sort("branch_day", "round", "order_key")
        .with_columns(
            pl.int_range(pl.len()).over("branch_day", "round").alias("position"),
            draw.uniform(rows, 41).alias("break_draw"),
            (draw.uniform(rows, 46) * (MAX_LINES_PER_INVOICE - 1)).floor().cast(pl.Int64).alias("phase"),
        )
    )
    # A new invoice at the start of each round, at least every MAX_LINES_PER_INVOICE lines (from a
    # random phase per round, so a round of 6 splits 4+2, 3+3 or 2+4) and otherwise now and then.
    phase = pl.col("phase").first().over("branch_day", "round")
    starts = (
        (pl.col("position") == 0)
        | ((pl.col("position") + phase) % MAX_LINES_PER_INVOICE == 0)
        | (pl.col("break_draw") < INVOICE_BREAK_PROBABILITY)
    ).cast(pl.Int64)
    lines = lines.with_columns((starts.cum_sum() - 1).alias("invoice"))
    lines = lines.with_columns(pl.int_range(pl.len()).over("invoice").alias("position"))

    def per_line(values: list[float]) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.Float64)).gather(pl.col("line"))

    low = per_line([p.low for p in PRODUCT_LINES])
    high = per_line([p.high for p in PRODUCT_LINES])
    lines = _stratified(lines, draw, 42, "price_draw")
    lines = _stratified(lines, draw, 45, "quantity_draw")
    lines = lines.with_columns((draw.uniform(rows, 44) * 0.06 - 0.03).alias("margin_jitter"))
    lines = lines.with_columns(
        (low + (high - low) * pl.col("price_draw")).alias("raw_price"),
        (_cumulative(QUANTITY_WEIGHTS).search_sorted(lines["quantity_draw"], side="right").cast(pl.Int64) + 1).alias(
            "Quantity"
        ),
    )
    # Scale prices so each cell's revenue lands on its target, then each branch-day's (whose
    # target also covers cells that got no line).
    gross = pl.col("raw_price") * pl.col("Quantity") * (1 + TAX_RATE)
    lines = lines.join(cells.select("cell", "target"), on="cell", how="left")
    lines = lines.with_columns(
        (pl.col("target") / gross.sum().over("cell")).clip(PRICE_SCALE_MIN, PRICE_SCALE_MAX).alias("scale")
    )
    branch_day_targets = cells.group_by(branch_day=pl.col("cell") // n_lines).agg(
        pl.col("target").sum().alias("branch_day_target")
    )
    lines = lines.join(branch_day_targets, on="branch_day", how="left")
    lines = lines.with_columns(
        (
            pl.col("scale")
            * (pl.col("branch_day_target") / (gross * pl.col("scale")).sum().over("branch_day")).clip(
                PRICE_SCALE_MIN, PRICE_SCALE_MAX
            )
        ).alias("scale")
    )
    n_branches = len(BRANCHES)
    unit_price = (pl.col("raw_price") * pl.col("scale")).round(2).clip(lower_bound=0.5)
    lines = lines.with_columns(
        unit_price.alias("Unit price"),
        (pl.col("branch_day") // n_branches).alias("day"),
        (pl.col("branch_day") % n_branches).alias("branch"),
    )
    margin = (
        per_line([p.margin for p in PRODUCT_LINES])
        + pl.lit(pl.Series([b.margin_offset for b in BRANCHES], dtype=pl.Float64)).gather(pl.col("branch"))
        + pl.col("margin_jitter")
    )
    net = (pl.col("Unit price") * pl.col("Quantity")).round(2)
    # Exact to 4 decimals already; rounding only drops binary noise (21.783, not 21.783000000000005).
    tax = (net * TAX_RATE).round(4)
    lines = lines.with_columns(
        tax.alias("Tax 5%"),
        (net + tax).round(4).alias("Total"),
        (net * (1.0 - margin)).round(2).alias("cogs"),
        pl.lit(pl.Series([p.name for p in PRODUCT_LINES], dtype=pl.String))
        .gather(pl.col("line"))
        .alias("Product line"),
    )
    lines = lines.with_columns((pl.col("Total") - pl.col("cogs")).round(4).alias("gross income"))
    lines = lines.with_columns(
        (pl.col("gross income") / pl.col("Total") * 100).round(9).alias("gross margin percentage")
    )
    return lines.select(
        "invoice",
        "position",
        "day",
        "branch",
        "Product line",
        "Unit price",
        "Quantity",
        "Tax 5%",
        "Total",
        "cogs",
        "gross margin percentage",
        "gross income",
    )


def _stratified(lines: pl.DataFrame, draw: _Draws, stream: int, name: str) -> pl.DataFrame:
    """Add uniform draws stratified within each cell: its n lines get one value from each n-th of
    [0, 1), in random order. Each line is still uniform, but a cell's sum is close to its
    expectation, so the price scaling that follows stays near 1."""
    rows = lines.height
    lines = lines.with_columns(draw.uniform(rows, stream).alias(name))
    order = pl.col(name).rank("ordinal").over("cell").cast(pl.Float64) - 1
    return lines.with_columns(((order + draw.uniform(rows, stream + 1)) / pl.len().over("cell")).alias(name))


def _cumulative(weights: tuple[float, ...]) -> pl.Series:
    total, running, bounds = sum(weights), 0.0, []
    for weight in weights[:-1]:
        running += weight / total
        bounds.append(running)
    return pl.Series(bounds, dtype=pl.Float64)


def _minute_weights() -> tuple[float, ...]:
    """Tills are busiest at lunch (≈12:30) and after work (≈18:15)."""
    weights = []
    for minute in range(OPENING_MINUTE, CLOSING_MINUTE):
        lunch = math.exp(-(((minute - 750) / 50) ** 2) / 2)
        evening = math.exp(-(((minute - 1095) / 60) ** 2) / 2)
        weights.append(0.6 + 1.0 * lunch + 1.3 * evening)
    return tuple(weights)


def _labels(indices: pl.Series, labels: tuple[str, ...]) -> pl.Series:
    return pl.Series(labels, dtype=pl.String).gather(indices)


def _invoices(draw: _Draws, lines: pl.DataFrame, *, start: dt.date, seed: int) -> pl.DataFrame:
    """One row per invoice with what its lines share, numbered in till order (day, time)."""
    heads = lines.filter(pl.col("position") == 0).select("invoice", "day", "branch").sort("invoice")
    n = heads.height
    heads = heads.with_columns(
        (draw.choice(n, 50, _minute_weights()) + OPENING_MINUTE).alias("minute"),
        _labels(draw.choice(n, 51, tuple(w for _, w in CUSTOMER_TYPES)), tuple(c for c, _ in CUSTOMER_TYPES)).alias(
            "Customer type"
        ),
        _labels(draw.choice(n, 52, tuple(w for _, w in GENDERS)), tuple(g for g, _ in GENDERS)).alias("Gender"),
        _labels(draw.choice(n, 53, tuple(w for _, w in PAYMENTS)), tuple(p for p, _ in PAYMENTS)).alias("Payment"),
        (((draw.uniform(n, 54) * 61).floor() + 40) / 10).alias("Rating"),  # 4.0 … 10.0
    )
    heads = heads.sort("day", "minute", "branch", "invoice").with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("invoice_rank")
    )
    number = ((pl.col("invoice_rank") + 1 + seed * 104_729 % _ID_SPACE) * _ID_MULTIPLIER) % _ID_SPACE
    digits = number.cast(pl.String).str.zfill(9)
    branch_names = pl.Series([b.name for b in BRANCHES], dtype=pl.String)
    cities = pl.Series([b.city for b in BRANCHES], dtype=pl.String)
    return heads.select(
        "invoice",
        "invoice_rank",
        pl.concat_str(digits.str.slice(0, 3), digits.str.slice(3, 2), digits.str.slice(5, 4), separator="-").alias(
            "Invoice ID"
        ),
        pl.lit(branch_names).gather(pl.col("branch")).alias("Branch"),
        pl.lit(cities).gather(pl.col("branch")).alias("City"),
        "Customer type",
        "Gender",
        (pl.lit(start, dtype=pl.Date) + pl.duration(days=pl.col("day"))).dt.strftime("%Y-%m-%d").alias("Date"),
        pl.concat_str(
            (pl.col("minute") // 60).cast(pl.String).str.zfill(2),
            (pl.col("minute") % 60).cast(pl.String).str.zfill(2),
            separator=":",
        ).alias("Time"),
        "Payment",
        "Rating",
    )
