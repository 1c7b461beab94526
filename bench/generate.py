"""Seeded synthetic sales data shaped like the real supermarket file.

`sales_frame_generate(rows, seed)` returns the same columns, in the same order and with the same
value styles as `supermarket_sales.csv` (dates written `1-Jan-2019`, times `10:39`, amounts with
their natural decimals), but any number of rows and several years of dates. Invoices have one
to six lines; the lines of an invoice share its id, branch, customer, date, time, payment and
rating, and invoices are in chronological order, as a till export would be.

Everything is vectorised (pyarrow's seeded generator + Polars), so 3.8 M rows take seconds, and
the output depends only on `rows`, `seed` and the keyword options: benchmarks, `load_demo` and
tests can regenerate the same file anywhere. numpy is not a dependency of the project, which is
why the random numbers come from `pyarrow.compute.random`.
"""

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow.compute as pc

# The real file's 17 columns, declared once with the demo generator.
from ingestion.demo import COLUMNS

# The real file's date style; ISO_DATE is the other common one.
REAL_DATE = "%-d-%b-%Y"
ISO_DATE = "%Y-%m-%d"
DEFAULT_START = dt.date(2019, 1, 1)
DEFAULT_DAYS = (dt.date(2022, 1, 1) - DEFAULT_START).days  # 2019 to 2021

# (branch, city, share of invoices)
BRANCHES: tuple[tuple[str, str, float], ...] = (
    ("A", "Yangon", 0.36),
    ("B", "Mandalay", 0.33),
    ("C", "Naypyitaw", 0.31),
)
# (product line, share of lines, lowest and highest unit price)
PRODUCT_LINES: tuple[tuple[str, float, float, float], ...] = (
    ("Fashion accessories", 0.18, 10.0, 99.99),
    ("Food and beverages", 0.17, 10.0, 99.99),
    ("Electronic accessories", 0.17, 10.0, 99.99),
    ("Sports and travel", 0.166, 10.0, 99.99),
    ("Home and lifestyle", 0.16, 10.0, 99.99),
    ("Health and beauty", 0.154, 10.0, 99.99),
)
CUSTOMER_TYPES: tuple[tuple[str, float], ...] = (("Member", 0.5), ("Normal", 0.5))
GENDERS: tuple[tuple[str, float], ...] = (("Female", 0.5), ("Male", 0.5))
PAYMENTS: tuple[tuple[str, float], ...] = (("Ewallet", 0.345), ("Cash", 0.344), ("Credit card", 0.311))
# Share of invoices with 1, 2, … 6 lines (mean ≈ 2.4 lines per invoice).
LINES_PER_INVOICE: tuple[float, ...] = (0.35, 0.25, 0.17, 0.11, 0.07, 0.05)
OPENING_MINUTE, CLOSING_MINUTE = 10 * 60, 21 * 60  # tills ring from 10:00 to 20:59
TAX_RATE = 0.05
GROSS_MARGIN_PERCENTAGE = 4.761904762  # the real file's constant: tax / total × 100
# 3**18 is coprime with 10**9, so invoice number → id is a bijection: ids never repeat.
_ID_MULTIPLIER, _ID_SPACE = 387_420_489, 1_000_000_000


def sales_frame_generate(
    rows: int,
    seed: int,
    *,
    start: dt.date = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    date_format: str = REAL_DATE,
) -> pl.DataFrame:
    """`rows` sale lines in the real file's columns; the same arguments give the same frame."""
    if rows < 0 or seed < 0 or days < 1:
        raise ValueError("rows and seed must be ≥ 0 and days ≥ 1")
    if rows == 0:
        return _empty_frame()
    draw = _Draws(seed)
    invoice_of_row, invoices = _invoice_layout(rows, draw)
    header = _invoice_headers(invoices, draw, start=start, days=days, date_format=date_format, seed=seed)
    lines = _lines(rows, draw)
    frame = pl.concat([lines, header.select(pl.all().gather(invoice_of_row))], how="horizontal")
    return frame.select(COLUMNS)


def sales_csv_write(path: Path, *, rows: int, seed: int, **options) -> pl.DataFrame:
    """Write the generated frame as CSV (like the real export) and return it, e.g. for reconciling totals."""
    frame = sales_frame_generate(rows, seed, **options)
    frame.write_csv(path)
    return frame


def sales_xlsx_write(path: Path, frame: pl.DataFrame, *, sheet: str = "Sales") -> None:
    """Write the frame as an .xlsx workbook: dates as real Excel dates, numbers as numbers.

    openpyxl (a dev dependency) in write-only mode streams rows to the file, so memory stays
    flat; polars' own `write_excel` would need xlsxwriter, which the project does not install.
    """
    from openpyxl import Workbook

    columns = list(frame.columns)
    date_position = columns.index("Date") if "Date" in columns else None
    if date_position is not None and frame["Date"].dtype == pl.String:
        frame = frame.with_columns(_date_values(frame["Date"]).alias("Date"))
    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    worksheet.append(columns)
    for row in frame.iter_rows():
        worksheet.append(row)
    workbook.save(path)


# --- internals -----------------------------------------------------------------------------------


class _Draws:
    """Independent seeded uniform [0, 1) streams, one per purpose, so adding a column later
    does not change the values of the others."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, n: int, stream: int) -> pl.Series:
        return pl.Series(pc.random(n, initializer=self.seed * 1_000 + stream), dtype=pl.Float64)

    def choice(self, n: int, stream: int, weights: tuple[float, ...]) -> pl.Series:
        """Indices 0..len(weights)-1 drawn with the given weights."""
        total = sum(weights)
        bounds, running = [], 0.0
        for weight in weights[:-1]:
            running += weight / total
            bounds.append(running)
        return pl.Series(bounds, dtype=pl.Float64).search_sorted(self.uniform(n, stream), side="right").cast(pl.Int64)


def _invoice_layout(rows: int, draw: "_Draws") -> tuple[pl.Series, int]:
    """Which invoice each row belongs to, and how many invoices there are.

    Every invoice has at least one line, so `rows` invoices always suffice; only the first
    ones needed are kept (the last may be cut short).
    """
    lines_per_invoice = draw.choice(rows, 1, LINES_PER_INVOICE) + 1
    ends = lines_per_invoice.cum_sum()
    invoices = int(ends.search_sorted(rows, side="left")) + 1
    invoice_of_row = ends.head(invoices).search_sorted(pl.int_range(0, rows, eager=True), side="right")
    return invoice_of_row.cast(pl.Int64), invoices


def _day_weights(start: dt.date, days: int) -> tuple[float, ...]:
    """Busier weekends and Decembers, and 10 % growth a year: dashboards get something to show."""
    weights = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        weight = 1.25 if day.weekday() >= 5 else 1.0
        weight *= 1.3 if day.month == 12 else 1.0
        weight *= 1.0 + 0.1 * offset / 365
        weights.append(weight)
    return tuple(weights)


def _labels(indices: pl.Series, labels: tuple[str, ...]) -> pl.Series:
    return pl.Series(labels, dtype=pl.String).gather(indices)


def _invoice_headers(
    invoices: int, draw: "_Draws", *, start: dt.date, days: int, date_format: str, seed: int
) -> pl.DataFrame:
    """One row per invoice, in chronological order, with what all its lines share."""
    branch = draw.choice(invoices, 2, tuple(weight for _, _, weight in BRANCHES))
    frame = pl.DataFrame(
        {
            "day": draw.choice(invoices, 3, _day_weights(start, days)),
            "minute": (draw.uniform(invoices, 4) * (CLOSING_MINUTE - OPENING_MINUTE)).floor().cast(pl.Int64)
            + OPENING_MINUTE,
            "Branch": _labels(branch, tuple(name for name, _, _ in BRANCHES)),
            "City": _labels(branch, tuple(city for _, city, _ in BRANCHES)),
            "Customer type": _labels(
                draw.choice(invoices, 5, tuple(w for _, w in CUSTOMER_TYPES)), tuple(n for n, _ in CUSTOMER_TYPES)
            ),
            "Gender": _labels(draw.choice(invoices, 6, tuple(w for _, w in GENDERS)), tuple(n for n, _ in GENDERS)),
            "Payment": _labels(draw.choice(invoices, 7, tuple(w for _, w in PAYMENTS)), tuple(n for n, _ in PAYMENTS)),
            "Rating": ((draw.uniform(invoices, 8) * 61).floor() + 40) / 10,  # 4.0 … 10.0
        }
    ).sort("day", "minute", maintain_order=True)
    number = ((pl.int_range(0, pl.len(), dtype=pl.Int64) + 1 + seed * 104_729 % _ID_SPACE) * _ID_MULTIPLIER) % _ID_SPACE
    digits = number.cast(pl.String).str.zfill(9)
    start_literal = pl.lit(start, dtype=pl.Date)
    return frame.select(
        pl.concat_str(digits.str.slice(0, 3), digits.str.slice(3, 2), digits.str.slice(5, 4), separator="-").alias(
            "Invoice ID"
        ),
        "Branch",
        "City",
        "Customer type",
        "Gender",
        (start_literal + pl.duration(days=pl.col("day"))).dt.strftime(date_format).alias("Date"),
        pl.concat_str(
            (pl.col("minute") // 60).cast(pl.String).str.zfill(2),
            (pl.col("minute") % 60).cast(pl.String).str.zfill(2),
            separator=":",
        ).alias("Time"),
        "Payment",
        "Rating",
    )


def _lines(rows: int, draw: "_Draws") -> pl.DataFrame:
    """What varies per line: product, price, quantity and the amounts derived from them."""
    product = draw.choice(rows, 9, tuple(weight for _, weight, _, _ in PRODUCT_LINES))
    low = pl.Series([low for _, _, low, _ in PRODUCT_LINES], dtype=pl.Float64).gather(product)
    high = pl.Series([high for _, _, _, high in PRODUCT_LINES], dtype=pl.Float64).gather(product)
    frame = pl.DataFrame(
        {
            "Product line": _labels(product, tuple(name for name, _, _, _ in PRODUCT_LINES)),
            "Unit price": ((low + (high - low) * draw.uniform(rows, 10)) * 100).round(0) / 100,
            "Quantity": (draw.uniform(rows, 11) * 10).floor().cast(pl.Int64) + 1,
        }
    )
    cogs = (pl.col("Unit price") * pl.col("Quantity")).round(2)
    # Exact to 4 decimals already (2-decimal price × whole quantity × 0.05); rounding only
    # drops binary noise so the CSV shows 21.783, not 21.783000000000005.
    tax = (cogs * TAX_RATE).round(4)
    return frame.with_columns(
        tax.alias("Tax 5%"),
        (cogs + tax).round(4).alias("Total"),
        cogs.alias("cogs"),
        pl.lit(GROSS_MARGIN_PERCENTAGE).alias("gross margin percentage"),
        tax.alias("gross income"),
    )


def _date_values(text: pl.Series) -> pl.Series:
    for fmt in (REAL_DATE.replace("%-d", "%d"), ISO_DATE):
        parsed = text.str.to_date(fmt, strict=False)
        if parsed.null_count() == text.null_count():
            return parsed
    return text


def _empty_frame() -> pl.DataFrame:
    schema = {name: pl.String for name in COLUMNS}
    schema.update({name: pl.Float64 for name in ("Unit price", "Tax 5%", "Total", "cogs", "gross margin percentage")})
    schema.update({"gross income": pl.Float64, "Rating": pl.Float64, "Quantity": pl.Int64})
    return pl.DataFrame(schema=schema)
