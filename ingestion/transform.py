"""Step 6 of the data flow (DESIGN.md): one batch of source strings → canonical typed rows + rejects.

A batch is what the readers yield: every source column as pl.String, each cell trimmed and null
when empty, plus an Int64 `__row_number` (1-based row in the source file). Text columns are kept
as they come: trimming them again was a third of this step's time. Each batch is parsed, completed
with the derivable measures, then validated row by row with a Pandera schema on the *collected*
DataFrame: on a LazyFrame Pandera checks the schema only and silently skips value checks.

Every problem becomes one row of the error report (source row number, source column, original
value, reason in plain words); a row with any problem is left out of `valid`.
"""

import dataclasses
import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import pandera.polars as pa
import polars as pl
from django.utils import timezone
from pandera.config import ValidationDepth, config_context

from ingestion.dates import date_format_has_time, date_parse, date_time_merge, time_parse
from ingestion.errors import MIXED_CURRENCIES, IngestionError
from ingestion.mapping import ColumnMapping
from ingestion.readers import TypedColumns, cell_error_column
from ingestion.schema import FIELDS_BY_NAME, MEASURE_FIELDS, FieldKind, normalize_column_name

ROW_NUMBER = "__row_number"
DATE_MIN = date(1990, 1, 1)
# Largest amount (or rating) and quantity a line may carry, far past any sale.
AMOUNT_MAX = 1e15
QUANTITY_MAX = 1_000_000_000

# The published column order; every canonical column is always present (null when the file
# lacks it) so segments of one datasource share a schema. Extras follow in source order.
OUTPUT_FIELDS: tuple[str, ...] = (
    "date",
    "datetime",
    "branch",
    "product_line",
    "quantity",
    "unit_price",
    "revenue",
    "cost",
    "gross_profit",
    "tax",
    "invoice_id",
    "city",
    "customer_type",
    "gender",
    "payment",
    "rating",
)
OUTPUT_TYPES: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
    "quantity": pl.Int64(),
    **{name: pl.Float64() for name in ("unit_price", "revenue", "cost", "gross_profit", "tax", "rating")},
}
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "row_number": pl.Int64(),
    "column": pl.String(),
    "value": pl.String(),
    "reason": pl.String(),
}

# Cells that mean "no value" in exported spreadsheets; only numbers, dates, times and invoice ids
# (a branch literally called "NA" stays a branch).
NULL_TOKENS: tuple[str, ...] = ("", "na", "n/a", "#n/a", "null", "none", "-")
# Text fields whose null tokens mean "none" too: an identifier is never "N/A".
PLACEHOLDER_CLEARED = frozenset({"invoice_id"})
# What spreadsheets label a totals row with; no branch, product line or invoice is called so. Such a
# row with a date and a branch passed as a sale and counted every amount twice.
TOTALS_LABELS: tuple[str, ...] = (
    "total",
    "totals",
    "grand total",
    "sub total",
    "subtotal",
    "sub-total",
    "overall total",
    "sum",
    "total general",
    "totale",
    "totaal",
    "gesamt",
    "summe",
    "gesamtsumme",
    "gesamtbetrag",
    "total général",
)
# Matched as written in the usual cases, with an optional colon: lowering every cell of a large
# file cost a quarter of a second per column, a set lookup a hundredth.
TOTALS_SPELLINGS: frozenset[str] = frozenset(
    spelling + colon
    for label in TOTALS_LABELS
    for spelling in (label, label.upper(), label.title(), label.capitalize())
    for colon in ("", ":")
)

# A number after currency symbols and spaces are removed. Thousands separators must group by
# three, so "12,50" read without decimal_comma is refused instead of silently becoming 1250; or,
# as India writes lakhs and crores, by two before the last three ("1,23,456.00").
_NUMBER_DOT = r"^[+-]?(\d+|\d{1,3}(,\d{3})+|\d{1,2}(,\d{2})+,\d{3})?(\.\d*)?([eE][+-]?\d+)?$"
_NUMBER_COMMA = r"^[+-]?(\d+|\d{1,3}(\.\d{3})+)?(,\d*)?([eE][+-]?\d+)?$"
# Currency signs (also after a country's letters: "US$", "R$") and codes, spaces.
_NOISE = r"[A-Z]{1,3}\p{Sc}|[\p{Sc}\s\x{00a0}\x{202f}'’]|^[A-Z]{3}|[A-Z]{3}$"
# The currency an amount is written with: a sign, a sign after a country's letters, or an ISO 4217
# code before or after the number ("EUR 100.00", "100.00 CHF").
_CURRENCY_MARK = r"([A-Z]{0,3}\p{Sc}|^[A-Z]{3}|[A-Z]{3}$)"
# The code of each sign that stands for one currency; "$" is the US dollar's, as "US$" is. Any other
# mark (a code, a sign not listed) stands for itself.
CURRENCY_SIGNS: dict[str, str] = {
    "$": "USD",
    "US$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "CN¥": "CNY",
    "₹": "INR",
    "A$": "AUD",
    "AU$": "AUD",
    "C$": "CAD",
    "CA$": "CAD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "S$": "SGD",
    "R$": "BRL",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "₱": "PHP",
    "฿": "THB",
    "₫": "VND",
    "₦": "NGN",
    "₴": "UAH",
}
# Names of a column that says which currency each row's amounts are in.
CURRENCY_COLUMN_NAMES = frozenset(
    {"currency", "currency code", "ccy", "curr", "waehrung", "wahrung", "devise", "moneda", "divisa", "valuta"}
)

# For a derived measure, problems are reported against the source column it was computed from.
_DERIVED_FROM: dict[str, str] = {
    "revenue": "unit_price",
    "unit_price": "revenue",
    "cost": "gross_profit",
    "gross_profit": "cost",
}


@dataclass(frozen=True)
class TransformPlan:
    """Everything decided once per file and applied to each of its batches."""

    mapping: ColumnMapping
    date_format: str
    decimal_comma: bool = False
    time_column: str | None = None  # a separate time-of-day column; default: the mapped `time` field
    # The uploader's branch scope: rows of other branches are rejected (None: every branch).
    branches: tuple[str, ...] | None = None
    # The time column is written "1039" throughout (dates.time_values_compact).
    time_compact: bool = False
    # Excel serial dates count from 1904 (the workbook's date system: DetectedSource.date1904).
    date1904: bool = False

    @classmethod
    def from_mapping(
        cls,
        *,
        mapping: ColumnMapping,
        date_format: str,
        decimal_comma: bool = False,
        branches: tuple[str, ...] | None = None,
        date1904: bool = False,
    ) -> "TransformPlan":
        """The plan for a resolved mapping; its `time` field, if any, becomes the time column."""
        return cls(
            mapping=mapping, date_format=date_format, decimal_comma=decimal_comma, branches=branches, date1904=date1904
        )

    @property
    def time_source(self) -> str | None:
        return self.time_column or self.mapping.fields.get("time")

    @property
    def number_sources(self) -> list[str]:
        """The source columns of the number fields (whose decimal mark matters)."""
        kinds = (FieldKind.INTEGER, FieldKind.DECIMAL)
        return sorted({source for field, source in self.mapping.fields.items() if FIELDS_BY_NAME[field].kind in kinds})

    def typed_columns(self) -> TypedColumns:
        """The source columns of number fields, for a CSV reader to give as numbers (a decimal
        comma needs the rules), and which typed blocks to keep (`typed_block_plain`)."""
        if self.decimal_comma:
            return TypedColumns(dtypes={}, accept=lambda frame: False)
        sources = list(self.mapping.fields.values())
        typed_fields = {
            field: source
            for field, source in self.mapping.fields.items()
            if FIELDS_BY_NAME[field].kind in (FieldKind.INTEGER, FieldKind.DECIMAL)
            and field not in PLACEHOLDER_CLEARED
            and sources.count(source) == 1
        }
        dtypes: dict[str, pl.DataType] = {
            source: pl.Int64() if FIELDS_BY_NAME[field].kind == FieldKind.INTEGER else pl.Float64()
            for field, source in typed_fields.items()
        }
        return TypedColumns(
            dtypes=dtypes,
            accept=functools.partial(typed_block_plain, fields=typed_fields, derived=self.mapping.derived),
        )


# Bounds of the numbers a typed block may hold: products of two stay far inside AMOUNT_MAX.
TYPED_AMOUNT_MAX = 1e9
TYPED_QUANTITY_MAX = 100_000


def typed_block_plain(frame: pl.DataFrame, *, fields: dict[str, str], derived: Collection[str]) -> bool:
    """Whether a block read with its number columns typed (TypedColumns) gives exactly what its
    text would: the same rows, rejects and error report.

    Typed cells parse as `decimal_parse` reads their text (both are Polars' number parsing). The
    text is needed where a rule could quote a typed cell in the report (`-5.50`, not `-5.5`):
    a negative or non-finite or huge number, a computed revenue missing for want of a quantity,
    a computed unit price below zero. Such blocks are refused, so they are read as text.
    """
    present = {field: pl.col(source) for field, source in fields.items() if source in frame.columns}
    checks = [
        (
            column.is_finite()
            & (column >= 0)
            & (column <= (TYPED_QUANTITY_MAX if field == "quantity" else TYPED_AMOUNT_MAX))
        )
        .fill_null(True)
        .all()
        for field, column in present.items()
    ]
    if "quantity" in present:
        checks.append(present["quantity"].is_not_null().all())
    if "unit_price" in derived and "revenue" in present and "tax" in present:
        checks.append((present["revenue"] >= present["tax"]).fill_null(True).all())
    return not checks or all(frame.select(check.alias(f"check_{i}") for i, check in enumerate(checks)).row(0))


@dataclass(frozen=True)
class BatchResult:
    valid: pl.DataFrame
    rejected: pl.DataFrame
    # The currencies each amount column's cells are written with (source column → codes), where any.
    currencies: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)


def batch_transform(batch: pl.DataFrame, plan: TransformPlan) -> BatchResult:
    """Parse, derive and validate one batch; every row ends in exactly one of valid / rejected."""
    parsed, parse_problems, currencies = _batch_parse(batch, plan)
    parsed = _measures_derive(parsed, plan.mapping)
    check_problems = _batch_validate(parsed, batch, plan.mapping, branches=plan.branches)
    rejected = _problems_merge(parse_problems, check_problems, plan.mapping, batch.columns)
    if rejected.height:
        bad_rows = rejected["row_number"].unique()
        parsed = parsed.filter(~pl.col(ROW_NUMBER).is_in(bad_rows.implode()))
    return BatchResult(valid=_output_select(parsed, plan.mapping), rejected=rejected, currencies=currencies)


def decimal_parse(values: pl.Series, *, decimal_comma: bool) -> pl.Series:
    """Strings like "$1,234.50", "€ 12,50" or "(3.10)" → Float64 (null when not a number)."""
    return amounts_parse(values, decimal_comma=decimal_comma)[0]


def amounts_parse(values: pl.Series, *, decimal_comma: bool) -> tuple[pl.Series, frozenset[str]]:
    """`decimal_parse`, and the currencies the numbers are written with (codes: CURRENCY_SIGNS)."""
    if decimal_comma:
        return _decimal_parse_full(values, decimal_comma)
    # Fast path: nearly every cell of a real file is a plain number like "12.5", which a direct
    # cast reads exactly as the full rules do, about 30× faster than the rules' regexes. Only
    # the cells the cast does not read as a finite number (null tokens, currency signs, "1,234",
    # "(3.10)", but also "inf" and "NaN", which the rules refuse) go through the full rules. A
    # plain number names no currency, so only those cells can.
    quick = values.cast(pl.Float64, strict=False)
    retry = values.is_not_null() & ~quick.is_finite().fill_null(False)
    if not retry.any():
        return quick.alias(values.name), frozenset()
    positions = retry.arg_true()
    numbers, currencies = _decimal_parse_full(values.gather(positions), decimal_comma)
    return quick.scatter(positions, numbers).alias(values.name), currencies


def _decimal_parse_full(values: pl.Series, decimal_comma: bool) -> tuple[pl.Series, frozenset[str]]:
    text = pl.lit(values)
    frame = pl.select(number=_decimal_expr(text, decimal_comma), mark=text.str.extract(_CURRENCY_MARK, 1))
    # Only a mark beside a number: "NIL" or "TBD" in an amount column is no currency.
    marks = frame.filter(pl.col("number").is_not_null())["mark"].drop_nulls().unique()
    return frame["number"].alias(values.name), frozenset(CURRENCY_SIGNS.get(mark, mark) for mark in marks)


def currencies_mixed_refuse(found: Mapping[str, Collection[str]]) -> None:
    """Refuse amounts written in more than one currency (`found`: source column → currencies):
    their sums would add euros to yen. Plain numbers beside one currency are that currency."""
    if len(set().union(*found.values())) < 2:
        return
    listing = "; ".join(f"column '{column}' holds {_listed(currencies)}" for column, currencies in found.items())
    raise IngestionError(
        MIXED_CURRENCIES,
        f"The amounts are in more than one currency ({listing}), and totals would add them up as if they were "
        "one. Convert the amounts to one currency, or upload each currency's rows to a datasource of its own. "
        "Nothing was published.",
    )


def currency_columns(mapping: ColumnMapping) -> dict[str, str]:
    """The extra dimensions (name → source column) that say which currency a row is in."""
    return {
        name: source
        for name, source in mapping.extras.items()
        if normalize_column_name(source) in CURRENCY_COLUMN_NAMES
    }


def currency_column_note(column: str, dimension: str, values: Collection[str]) -> str:
    """The warning for a currency column naming several currencies (amounts are summed all the same)."""
    return (
        f"Column '{column}' names {len(values)} currencies ({_listed(values)}): revenue, cost and profit add up "
        f"amounts in different currencies. The column is kept as the dimension '{dimension}': filter by it to see "
        "each currency's figures."
    )


def _listed(values: Collection[str]) -> str:
    ordered = sorted(values)
    return ordered[0] if len(ordered) == 1 else f"{', '.join(ordered[:-1])} and {ordered[-1]}"


# --- parsing -----------------------------------------------------------------------------------


def _batch_parse(
    batch: pl.DataFrame, plan: TransformPlan
) -> tuple[pl.DataFrame, list[pl.DataFrame], dict[str, frozenset[str]]]:
    """Typed canonical columns + extras, the cells that had a value but could not be read, and the
    currencies of the amount columns."""
    columns: list[pl.Series] = [batch[ROW_NUMBER].cast(pl.Int64)]
    # First, so that a cell's error value is its reason, not the "missing" its empty text gives.
    problems: list[pl.DataFrame] = _cell_errors_find(batch, plan.mapping)
    currencies: dict[str, frozenset[str]] = {}
    for name, source in plan.mapping.fields.items():
        if name in ("date", "time"):
            continue
        series, failures, written_in = _field_parse(batch[source], name, plan.decimal_comma)
        columns.append(series.alias(name))
        problems += [_problems_make(batch, source, mask, reason) for mask, reason in failures]
        if written_in and name in MEASURE_FIELDS:
            currencies[source] = written_in
    date_columns, date_failures = _dates_parse(batch, plan)
    columns += date_columns
    problems += date_failures
    columns += [batch[source].alias(name) for name, source in plan.mapping.extras.items()]
    return pl.DataFrame(columns), problems, currencies


def _cell_errors_find(batch: pl.DataFrame, mapping: ColumnMapping) -> list[pl.DataFrame]:
    """A mapped Excel cell holding an error value (#REF!, #N/A…) rejects its row, even for an
    optional field: its value is unknown, not absent (a cost read as none inflates the profit)."""
    problems = []
    for source in dict.fromkeys(mapping.fields.values()):
        errors = cell_error_column(source)
        if errors not in batch.columns:
            continue
        cells = batch.select(pl.col(ROW_NUMBER).cast(pl.Int64).alias("row_number"), pl.col(errors).alias("value"))
        cells = cells.filter(pl.col("value").is_not_null())
        problems.append(
            cells.select(
                "row_number",
                pl.lit(source, dtype=pl.String).alias("column"),
                "value",
                pl.format("cell holds {}", "value").alias("reason"),
            )
        )
    return problems


def _field_parse(
    values: pl.Series, field: str, decimal_comma: bool
) -> tuple[pl.Series, list[tuple[pl.Series, str]], frozenset[str]]:
    """One column by the kind of its field → (typed values, [(failure mask, reason)], currencies written)."""
    kind = FIELDS_BY_NAME[field].kind
    if values.dtype.is_numeric():  # read as a number by the reader (TypedColumns): nothing failed
        return values.cast(pl.Int64 if kind == FieldKind.INTEGER else pl.Float64), [], frozenset()
    if field in PLACEHOLDER_CLEARED:
        # "N/A" or "-" is no invoice: kept, every such line would be one invoice (transactions
        # undercounted) and one already published in every later file.
        return _null_tokens_clear(values), [], frozenset()
    if kind == FieldKind.STRING:
        return values, [], frozenset()
    number, currencies = amounts_parse(values, decimal_comma=decimal_comma)
    failures = [(_unreadable(values, number), "not a number")]
    if kind == FieldKind.DECIMAL:
        return number, failures, currencies
    fraction = number.is_not_null() & (number != number.round(0)).fill_null(True)
    failures.append((fraction, f"{field} must be a whole number"))
    whole = pl.select(pl.when(~fraction).then(pl.lit(number))).to_series()
    return whole.cast(pl.Int64, strict=False), failures, currencies


def _dates_parse(batch: pl.DataFrame, plan: TransformPlan) -> tuple[list[pl.Series], list[pl.DataFrame]]:
    """`date` (always a Date) and `datetime` (when the format or a time column gives a time)."""
    source = plan.mapping.fields["date"]
    # Null tokens ("n/a", "-") hold no digits, so no date or time format reads them: parsing the
    # cells as they are gives the same nulls as clearing the tokens first, without that pass.
    values = batch[source]
    parsed = parse_distinct(values, lambda distinct: date_parse(distinct, plan.date_format, date1904=plan.date1904))
    problems = [_problems_make(batch, source, _unreadable(values, parsed), _date_reason(plan.date_format))]
    moment = parsed if date_format_has_time(plan.date_format) else pl.Series([None] * len(parsed), dtype=pl.Datetime)
    if plan.time_source:
        times = parse_distinct(batch[plan.time_source], functools.partial(time_parse, compact=plan.time_compact))
        problems.append(
            _problems_make(
                batch,
                plan.time_source,
                _unreadable(batch[plan.time_source], times),
                "not a time of day (e.g. 13:08 or 1:08 PM)",
            )
        )
        moment = date_time_merge(parsed, times)
    date_only = parsed.dt.date() if parsed.dtype == pl.Datetime else parsed
    return [date_only.alias("date"), moment.cast(pl.Datetime("us")).alias("datetime")], problems


# Parsing each distinct value once pays when values repeat at least this many times on average.
DISTINCT_PARSE_MIN_REPEATS = 4


def parse_distinct(values: pl.Series, parse: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """`parse(values)`, computed on the distinct values and mapped back.

    Dates and times repeat heavily (a year of sales has 365 dates, a day 1,440 minutes) and
    trying several formats on each distinct value is far cheaper than on every row.
    """
    distinct = values.unique()
    if len(distinct) * DISTINCT_PARSE_MIN_REPEATS > len(values):
        return parse(values)
    parsed = parse(distinct)
    lookup = pl.DataFrame({"value": distinct, "parsed": parsed})
    mapped = values.to_frame("value").join(lookup, on="value", how="left", maintain_order="left")
    return mapped["parsed"].alias(values.name)


def _date_reason(fmt: str) -> str:
    return f"not a date in format {fmt}"


def _decimal_expr(text: pl.Expr, decimal_comma: bool) -> pl.Expr:
    cleaned = _null_token_expr(text).str.replace_all(_NOISE, "")
    cleaned = cleaned.str.replace_all("\u2212", "-", literal=True)  # the typographic minus: −457.44
    cleaned = cleaned.str.replace(r"^([\d.,]*\d)-$", "-$1")  # a trailing minus (SAP and other ERPs): 457.44-
    cleaned = cleaned.str.replace(r"^\((.*)\)$", "-$1")  # accounting negatives: (12.50)
    valid = cleaned.str.contains(_NUMBER_COMMA if decimal_comma else _NUMBER_DOT)
    if decimal_comma:
        cleaned = cleaned.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
    else:
        cleaned = cleaned.str.replace_all(",", "", literal=True)
    return pl.when(valid).then(cleaned.cast(pl.Float64, strict=False))


def _null_token_expr(text: pl.Expr) -> pl.Expr:
    stripped = text.str.strip_chars()
    return pl.when(stripped.str.to_lowercase().is_in(NULL_TOKENS)).then(None).otherwise(stripped)


def _null_tokens_clear(values: pl.Series) -> pl.Series:
    return pl.select(_null_token_expr(pl.lit(values))).to_series().alias(values.name)


def _present(values: pl.Series) -> pl.Series:
    """Cells that hold a value (not empty, not a null token): a parse failure there is a reject."""
    return _null_tokens_clear(values).is_not_null()


def _unreadable(values: pl.Series, parsed: pl.Series) -> pl.Series:
    """Cells that hold a value but did not parse.

    A null cell always parses to null, so when both have as many nulls they are the same cells
    and nothing failed: the null-token pass over the whole column is skipped in that usual case.
    """
    if parsed.null_count() == values.null_count():
        return pl.repeat(False, len(values), eager=True)
    return _present(values) & parsed.is_null()


def _problems_make(batch: pl.DataFrame, source: str, mask: pl.Series, reason: str) -> pl.DataFrame:
    mask = mask.fill_null(False)
    if not mask.any():
        return pl.DataFrame(schema=REJECTED_SCHEMA)  # the usual case: nothing to gather
    rows = batch.select(ROW_NUMBER, source).filter(mask)
    return pl.DataFrame(
        {
            "row_number": rows[ROW_NUMBER].cast(pl.Int64),
            "column": pl.Series([source] * len(rows), dtype=pl.String),
            "value": rows[source].cast(pl.String),
            "reason": pl.Series([reason] * len(rows), dtype=pl.String),
        },
        schema=REJECTED_SCHEMA,
    )


# --- derivations -------------------------------------------------------------------------------


def _measures_derive(frame: pl.DataFrame, mapping: ColumnMapping) -> pl.DataFrame:
    """Fill the measures the file lacks; `mapping.derived` says which ones can be computed."""
    for name in ("unit_price", "revenue", "cost", "gross_profit", "tax"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(name))
    tax = pl.col("tax").fill_null(0.0)
    # Order matters: revenue first, since unit_price, cost and gross_profit may need it.
    formulas = {
        "revenue": pl.col("unit_price") * pl.col("quantity") + tax,
        # Inverse of the revenue rule, so unit_price × quantity + tax gives the revenue back.
        "unit_price": pl.when(pl.col("quantity") != 0).then((pl.col("revenue") - tax) / pl.col("quantity")),
        "cost": pl.col("revenue") - pl.col("gross_profit"),
        "gross_profit": pl.col("revenue") - pl.col("cost"),
    }
    for name, formula in formulas.items():
        if name in mapping.derived:
            frame = frame.with_columns(formula.cast(pl.Float64).alias(name))
    return frame


# --- validation --------------------------------------------------------------------------------


def date_max(today: date | None = None) -> date:
    """Latest acceptable business date: one year ahead (orders dated in advance), no more.

    "Today" is the site's (settings.TIME_ZONE), the business's calendar, as for freshness alerts,
    not the server clock's zone."""
    base = today or timezone.localdate()
    return base + timedelta(days=366) if (base.month, base.day) == (2, 29) else base.replace(year=base.year + 1)


def sales_schema(today: date | None = None, branches: tuple[str, ...] | None = None) -> pa.DataFrameSchema:
    """The row rules; built per call because the date bound moves with today. `branches`: the
    only branches a (branch-scoped) uploader may load rows for."""

    def finite() -> pa.Check:
        return pa.Check(lambda data: data.lazyframe.select(pl.col(data.key).is_finite()), name="finite")

    def plausible(limit: float = AMOUNT_MAX) -> pa.Check:
        # Sums of amounts near the float limit overflow to infinity, which JSON cannot carry.
        return pa.Check(lambda data: data.lazyframe.select(pl.col(data.key).abs() <= limit), name="plausible")

    def measure(*checks: pa.Check, nullable: bool = True) -> pa.Column:
        return pa.Column(pl.Float64, checks=[*checks, finite(), plausible()], nullable=nullable)

    def not_totals() -> pa.Check:
        return pa.Check(
            lambda data: data.lazyframe.select(~pl.col(data.key).is_in(list(TOTALS_SPELLINGS)).fill_null(False)),
            name="not_totals",
        )

    return pa.DataFrameSchema(
        {
            "date": pa.Column(pl.Date, pa.Check.in_range(DATE_MIN, date_max(today)), nullable=False),
            "datetime": pa.Column(pl.Datetime("us"), nullable=True),
            "branch": pa.Column(
                pl.String, [not_totals(), *([pa.Check.isin(branches)] if branches is not None else [])], nullable=False
            ),
            "product_line": pa.Column(pl.String, not_totals(), nullable=False),
            "invoice_id": pa.Column(pl.String, not_totals(), nullable=True),
            "quantity": pa.Column(pl.Int64, plausible(QUANTITY_MAX), nullable=False),
            "unit_price": measure(pa.Check.ge(0)),  # null only when quantity is 0
            "revenue": measure(nullable=False),
            "cost": measure(),
            "gross_profit": measure(),
            "tax": measure(),
            "rating": measure(),
        },
        strict=False,  # extras and optional text fields pass through unchecked
        coerce=False,  # types were set by parsing; coercion here would hide parse failures
    )


def validation_warm_up() -> None:
    """Validate an empty frame, so Pandera registers its Polars backends (and imports what they
    need) now instead of in the first batch a process validates."""
    schema = sales_schema()
    empty = pl.DataFrame(schema={name: column.dtype.type for name, column in schema.columns.items()})
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        schema.validate(empty, lazy=True)


def _batch_validate(
    parsed: pl.DataFrame, batch: pl.DataFrame, mapping: ColumnMapping, *, branches: tuple[str, ...] | None
) -> pl.DataFrame:
    """Pandera failure cases of the collected frame → report rows against source columns."""
    frame = _output_select(parsed, mapping, keep_row_number=True)
    # Depth forced: a PANDERA_VALIDATION_DEPTH=SCHEMA_ONLY environment must not skip value checks.
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            sales_schema(branches=branches).validate(frame, lazy=True)
        except pa.errors.SchemaErrors as errors:
            return _failures_report(errors.failure_cases, frame, batch, mapping, branches=branches)
    return pl.DataFrame(schema=REJECTED_SCHEMA)


def _failures_report(
    failures: pl.DataFrame,
    frame: pl.DataFrame,
    batch: pl.DataFrame,
    mapping: ColumnMapping,
    *,
    branches: tuple[str, ...] | None,
) -> pl.DataFrame:
    if failures["index"].is_null().any():
        # A dtype or column failure means parsing built a wrong frame: a bug, not a bad row.
        raise RuntimeError(f"sales schema mismatch: {failures.filter(pl.col('index').is_null()).rows()}")
    reports = [pl.DataFrame(schema=REJECTED_SCHEMA)]
    # A computed measure fails with its input (a revenue past the limit gives a unit price past it),
    # and both are reported against the input's column, of which one report per row is kept: the
    # input's own failures come first, so the reason names the field the file holds.
    failures = failures.sort(pl.col("column").is_in(list(mapping.derived)), maintain_order=True)
    # Grouped by (field, check) so each group is one vectorised gather, even for a batch of bad rows.
    for (field, check), group in failures.group_by("column", "check", maintain_order=True):
        indices = group["index"].cast(pl.Int64)
        source = _report_source(str(field), mapping)
        values = batch[source].gather(indices) if source in batch.columns else pl.repeat(None, len(indices), eager=True)
        report = pl.DataFrame(
            {
                "row_number": frame[ROW_NUMBER].gather(indices),
                "column": pl.repeat(source, len(indices), eager=True),
                "value": values.cast(pl.String),
                "reason": pl.repeat(_reason(str(field), str(check), mapping, branches), len(indices), eager=True),
            }
        )
        reports.append(report.cast(REJECTED_SCHEMA))  # type: ignore[arg-type]
    return pl.concat(reports)


def _report_source(field: str, mapping: ColumnMapping) -> str:
    if field == "datetime":
        field = "date"
    if field in mapping.derived:
        return mapping.fields.get(_DERIVED_FROM[field], field)
    return mapping.fields.get(field, field)


def _reason(field: str, check: str, mapping: ColumnMapping, branches: tuple[str, ...] | None = None) -> str:
    words = field.replace("_", " ")
    if field in mapping.derived:
        words += " (computed)"
    if check == "not_nullable":
        return f"{words} is missing"
    if check.startswith("in_range"):
        return f"{words} must be between {DATE_MIN.isoformat()} and {date_max().isoformat()}"
    if check.startswith("greater_than_or_equal_to"):
        return f"{words} must not be negative"
    if check == "finite":
        return f"{words} is not a finite number"
    if check == "not_totals":
        return f"{words} names a totals row, not a sale"
    if check.startswith("isin"):
        return f"{words} is not one of your branches ({', '.join(branches or ())})"
    if check == "plausible":
        return f"{words} is beyond ±{QUANTITY_MAX if field == 'quantity' else AMOUNT_MAX:,.0f}"
    return f"{words} fails check {check}"


def _problems_merge(
    parse: list[pl.DataFrame], checks: pl.DataFrame, mapping: ColumnMapping, columns: list[str]
) -> pl.DataFrame:
    """One report row per problem, in source order: a cell that failed parsing is not reported again."""
    parse = [frame for frame in parse if frame.height]
    if not parse and not checks.height:
        return pl.DataFrame(schema=REJECTED_SCHEMA)  # the usual clean batch: nothing to sort out
    parsed = pl.concat([pl.DataFrame(schema=REJECTED_SCHEMA), *parse])
    # A computed measure is null because an input failed: the input's own report says why.
    derived_sources = [_report_source(name, mapping) for name in mapping.derived]
    consequence = pl.col("column").is_in(derived_sources) & pl.col("row_number").is_in(parsed["row_number"].implode())
    checks = checks.filter(~(consequence & pl.col("reason").str.ends_with("is missing")))
    merged = pl.concat([parsed, checks]).unique(subset=["row_number", "column"], keep="first", maintain_order=True)
    position = pl.col("column").replace_strict(columns, range(len(columns)), default=len(columns))
    return merged.sort(pl.col("row_number"), position, maintain_order=True)


# --- output ------------------------------------------------------------------------------------


def _output_select(frame: pl.DataFrame, mapping: ColumnMapping, *, keep_row_number: bool = False) -> pl.DataFrame:
    """Canonical columns in fixed order (nulls for what the file lacks), then the extras."""
    columns = [
        pl.col(name) if name in frame.columns else pl.lit(None, OUTPUT_TYPES.get(name, pl.String())).alias(name)
        for name in OUTPUT_FIELDS
    ]
    columns += [pl.col(name) for name in mapping.extras]
    if keep_row_number:
        columns.insert(0, pl.col(ROW_NUMBER))
    return frame.select(columns)
