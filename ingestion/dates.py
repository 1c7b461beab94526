"""Step 5 of the data flow (DESIGN.md): one date format for the whole column, never a guess per value.

Every candidate format is tried on the column's distinct values; the one that parses the most
rows (to a plausible year) wins. When a day-first and a month-first format tie but read some
value differently ("03/01/19"), the upload is refused with `ambiguous_dates` rather than risk
every date being silently wrong (the CSV-sniffer pitfall).

Dates are business-local: an ISO 8601 time stamp with an offset ("2019-01-01T23:39:00+06:30",
"…Z") keeps the date and time as written, the business day in the file's own offset, never
converted to UTC (which would move a late sale to the next or previous day). A format ending in
`%z` reads such values and requires the offset.

Excel serial day numbers (43466 = 2019-01-01) are read only as a last resort — when no text
format parses anything and every value is a number in the serial range of 1990–2100 — or when
`date_format="excel_serial"` is given, because a column of plain numbers is otherwise more
likely an id than a date. They count days from 1899-12-30, or from 1904-01-01 in a workbook
that uses the 1904 date system (Mac Excel): `date1904`.
"""

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time

import polars as pl

from ingestion.errors import AMBIGUOUS_DATES, INVALID_DATE_FORMAT, MISSING_REQUIRED_COLUMN, IngestionError

EXCEL_SERIAL = "excel_serial"
# Serial 0 of each date system: 1899-12-30 absorbs the 1900 system's fictional 1900-02-29.
EXCEL_EPOCHS: dict[bool, datetime] = {False: datetime(1899, 12, 30), True: datetime(1904, 1, 1)}
_EXCEL_YEARS = (date(1990, 1, 1), date(2100, 12, 31))  # the serial numbers read as dates

# Order matters only between formats that read every value identically: the first is reported.
# Slash and dash dates are written day-first (most of the world) and month-first (the US), so each
# such form has its twin: a column both read, differently, is refused (`ambiguous_dates`) instead of
# read one way by chance. Dotted dates are day-first only (German, Swiss, Nordic, Russian…): no
# locale writes month.day.year, and a twin would refuse every file of a month's first twelve days.
# Year-first forms are year-month-day everywhere.
DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d/%m/%y",
    "%m/%d/%y",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%d/%m/%Y %I:%M %p",
    "%m/%d/%Y %I:%M %p",
    "%d/%m/%y %H:%M",
    "%m/%d/%y %H:%M",
    "%d/%m/%y %I:%M %p",  # "3/1/24 10:15 AM", as Excel shows a US date-time
    "%m/%d/%y %I:%M %p",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d-%m-%Y %H:%M",
    "%m-%d-%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%m-%d-%Y %H:%M:%S",
    "%d.%m.%Y",
    "%d.%m.%y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d-%b-%Y",  # "1-Jan-2019": polars/chrono accepts days without zero padding
    "%d-%b-%y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y%m%d",
)
# Tried only when some value ends with an offset (`_OFFSET_SUFFIX`): most files have none.
OFFSET_DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
)

TIME_FORMATS: tuple[str, ...] = ("%H:%M", "%H:%M:%S", "%H:%M:%S%.f", "%I:%M %p", "%I:%M:%S %p", "%I %p")
# A time of day without its colon, "1039" or "905" (HHMM, HMM): read only when every time of the
# column is written so (`time_values_compact`); "45" or "7" could be minutes or hours.
_COMPACT_TIME = r"^\d{3,4}$"

# A candidate's parse counts only when the year is plausible: "%d/%m/%Y" reads "03/01/19" as
# year 19, which must not tie with "%d/%m/%y". Out-of-range business dates are rejected later.
_PLAUSIBLE = (datetime(1900, 1, 1), datetime(2200, 1, 1))
_TIME_DIRECTIVES = re.compile(r"%[-_0^#]?(H|I|M|S|T|R|p|P|X|c|k|l|s)")
# An offset at the end of a value: "Z", "+06:30", "-0500", "+06" (a space before it is allowed).
_OFFSET_SUFFIX = r"\s?(?:Z|[+-]\d{2}(?::?\d{2})?)$"
# The offset directive a format may end with: %z, %:z or %#z.
_OFFSET_DIRECTIVE = re.compile(r"%[:#]?z$")
# Separators a format matches as written: a column whose values hold none of a format's cannot be
# read by it, and trying it costs a parse of every distinct value (0.1 s per million date-times).
_SEPARATORS = "/.:-,"
_DIRECTIVE = re.compile(r"%[-_0^#]?[.:#]?\d?[A-Za-z%]")


@dataclass(frozen=True)
class DateChoice:
    """The format chosen for a date column and how well it fits."""

    format: str
    has_time: bool
    parsed: int  # rows the format reads
    total: int  # rows with a value
    unparsed_examples: tuple[str, ...]  # a few values that will become rejected rows


def date_format_choose(values: pl.Series, *, explicit: str | None = None, date1904: bool = False) -> DateChoice:
    """Choose the date format of a whole column (or validate the explicit one)."""
    return date_format_choose_counted(date_value_counts(values), explicit=explicit, date1904=date1904)


def date_format_choose_counted(
    counts: pl.DataFrame, *, explicit: str | None = None, date1904: bool = False
) -> DateChoice:
    """`date_format_choose` from the column's `date_value_counts`, which a reader can build block
    by block: a large file's date column is never held whole. `date1904`: serial numbers count
    from 1904 (module docstring)."""
    if explicit is not None:
        fmt = date_format_validate(explicit)
        parsed = (
            _excel_parse(counts["value"], date1904) if fmt == EXCEL_SERIAL else _datetime_parse(counts["value"], fmt)
        )
        return _choice_make(fmt, counts, parsed)
    if counts.is_empty():
        raise IngestionError(MISSING_REQUIRED_COLUMN, "The date column has no values.")
    offsets = counts["value"].str.contains(_OFFSET_SUFFIX).any()
    candidates = _formats_possible(counts["value"], (*DATE_FORMATS, *OFFSET_DATE_FORMATS) if offsets else DATE_FORMATS)
    scored = [(fmt, _datetime_parse(counts["value"], fmt)) for fmt in candidates]
    weights = counts["count"]
    totals = [int(weights.filter(_plausible(parsed)).sum()) for _, parsed in scored]
    best = max(totals, default=0)
    if best == 0:
        return _excel_or_refuse(counts, date1904)
    leaders = [(fmt, parsed) for (fmt, parsed), total in zip(scored, totals, strict=True) if total == best]
    _ambiguity_check(counts["value"], leaders)
    fmt, parsed = leaders[0]
    return _choice_make(fmt, counts, parsed)


def date_format_validate(fmt: str) -> str:
    """An explicit strftime format must round-trip a day, a month and a year."""
    if fmt == EXCEL_SERIAL:
        return fmt
    sample = datetime(2019, 1, 23, 13, 8, 5)  # day > 12 so day and month cannot swap unnoticed
    local_format, offset = _offset_split(fmt)
    try:
        # Polars writes no offset for a time without a zone: the offset is added as a file has it.
        text = pl.Series([sample]).dt.strftime(local_format) + ("+06:30" if offset else "")
        back = _datetime_parse(text, fmt)[0]
    except pl.exceptions.PolarsError as error:
        raise _invalid_format(fmt, "it is not valid strftime syntax") from error
    if back is None or back.date() != sample.date():
        raise _invalid_format(fmt, "it must contain a day, a month and a year")
    return fmt


def date_format_has_time(fmt: str) -> bool:
    return fmt == EXCEL_SERIAL or _TIME_DIRECTIVES.search(fmt) is not None


def date_parse(values: pl.Series, fmt: str, *, date1904: bool = False) -> pl.Series:
    """Parse strings with `fmt`: Date, or Datetime when the format has a time; null if unparseable.
    `date1904`: serial numbers count from 1904 (module docstring)."""
    if fmt == EXCEL_SERIAL:
        return _excel_parse(values, date1904)
    parsed = _datetime_parse(values, fmt)
    return parsed if date_format_has_time(fmt) else parsed.dt.date()


def time_parse(values: pl.Series, *, compact: bool = False) -> pl.Series:
    """Parse a time-of-day column ("13:08", "1:08:00 PM"); null where no format reads it.

    `compact`: also "1039" and "905" (10:39, 9:05), for a column written that way throughout.
    """
    text = values.cast(pl.String).str.strip_chars()
    attempts = [text.str.to_time(fmt, strict=False) for fmt in TIME_FORMATS]
    if compact:
        digits = pl.select(pl.when(pl.lit(text).str.contains(_COMPACT_TIME)).then(pl.lit(text))).to_series()
        attempts.append(digits.str.zfill(4).str.to_time("%H%M", strict=False))
    return pl.select(pl.coalesce(attempts)).to_series().alias(values.name)


def time_values_compact(values: pl.Series) -> tuple[int, int]:
    """(times written, those written compactly like "1039") in part of a time column; placeholders
    such as "n/a" hold no digit and are not times written."""
    text = values.cast(pl.String).str.strip_chars()
    written = text.str.contains(r"\d").fill_null(False)
    compact = text.str.contains(_COMPACT_TIME).fill_null(False)
    return int(written.sum()), int(compact.sum())


def date_time_merge(dates: pl.Series, times: pl.Series) -> pl.Series:
    """Combine a Date (or Datetime) column with a Time column into a Datetime.

    Where the time is null the result keeps the date's own time if it has one, else null:
    midnight would be an invented time of day.
    """
    frame = pl.DataFrame({"d": dates, "t": times.cast(pl.Time)})
    day = pl.col("d").cast(pl.Date).cast(pl.Datetime("us"))
    own = pl.col("d").cast(pl.Datetime("us")) if dates.dtype == pl.Datetime else pl.lit(None, pl.Datetime("us"))
    merged = pl.when(pl.col("t").is_null()).then(own).otherwise(day + pl.col("t").cast(pl.Duration("us")))
    return frame.select(merged).to_series().alias(dates.name)


def date_value_counts(values: pl.Series) -> pl.DataFrame:
    """Distinct non-empty values (`value`) with their row counts (`count`), most frequent first.

    Distinct values carry the work; their counts weight the score so "most rows" wins.
    """
    text = values.cast(pl.String).str.strip_chars()
    text = text.filter(text.is_not_null() & (text != ""))
    return text.alias("value").value_counts(name="count", sort=True).with_columns(pl.col("count").cast(pl.Int64))


def date_value_counts_merge(parts: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """One `date_value_counts` from those of consecutive parts of a column.

    Grouped once over all parts: merging part by part regrouped everything counted so far each
    time, quadratic for date-times that rarely repeat (3 M of them: 21 s instead of 0.4 s).
    """
    empty = pl.DataFrame(schema={"value": pl.String, "count": pl.Int64})
    merged = pl.concat([empty, *parts]).group_by("value").agg(pl.col("count").sum())
    return merged.sort(["count", "value"], descending=[True, False])


def _formats_possible(values: pl.Series, formats: tuple[str, ...]) -> list[str]:
    """The formats whose separators all occur in some value; the others would read nothing."""
    present = {char for char in _SEPARATORS if values.str.contains(char, literal=True).any()}
    return [fmt for fmt in formats if _format_separators(fmt) <= present]


@functools.cache
def _format_separators(fmt: str) -> frozenset[str]:
    return frozenset(char for char in _DIRECTIVE.sub("", fmt) if char in _SEPARATORS)


def _datetime_parse(text: pl.Series, fmt: str) -> pl.Series:
    text = text.str.strip_chars()
    local_format, offset = _offset_split(fmt)
    if offset:
        # The local date and time as written: the offset is required, then dropped (module docstring).
        with_offset = text.str.contains(_OFFSET_SUFFIX)
        text = pl.select(pl.when(with_offset).then(pl.lit(text).str.replace(_OFFSET_SUFFIX, ""))).to_series()
    return text.str.to_datetime(local_format, strict=False, time_unit="us")


def _offset_split(fmt: str) -> tuple[str, bool]:
    """The format without a final offset directive, and whether it had one."""
    local_format = _OFFSET_DIRECTIVE.sub("", fmt)
    return local_format, local_format != fmt


def _plausible(parsed: pl.Series) -> pl.Series:
    return parsed.is_between(*_PLAUSIBLE, closed="left").fill_null(False)


def _plausible_only(parsed: pl.Series) -> pl.Series:
    return pl.select(pl.when(_plausible(parsed)).then(parsed)).to_series()


def _ambiguity_check(values: pl.Series, leaders: list[tuple[str, pl.Series]]) -> None:
    """Refuse when equally good formats read some values as different dates."""
    first_fmt, first = leaders[0]
    for fmt, parsed in leaders[1:]:
        # A value read by only one of them counts too: a column mixing both orders is ambiguous.
        differs = _plausible_only(first).ne_missing(_plausible_only(parsed))
        if differs.any():
            examples = ", ".join(f'"{value}"' for value in values.filter(differs).head(3))
            raise IngestionError(
                AMBIGUOUS_DATES,
                f"The dates can be read as {first_fmt} or as {fmt}, giving different dates (e.g. {examples}). "
                f"Pass date_format in strftime syntax to say which, e.g. {first_fmt}.",
                choices=(first_fmt, fmt),
            )


def _choice_make(fmt: str, counts: pl.DataFrame, parsed: pl.Series) -> DateChoice:
    ok = _plausible(parsed)
    bad = counts["value"].filter(~ok).head(5).to_list()
    return DateChoice(
        format=fmt,
        has_time=_has_time_values(fmt, parsed),
        parsed=int(counts["count"].filter(ok).sum()),
        total=int(counts["count"].sum()),
        unparsed_examples=tuple(bad),
    )


def _has_time_values(fmt: str, parsed: pl.Series) -> bool:
    if fmt != EXCEL_SERIAL:
        return date_format_has_time(fmt)
    return bool((parsed.dt.time() != time(0)).any())


def _excel_or_refuse(counts: pl.DataFrame, date1904: bool) -> DateChoice:
    parsed = _excel_parse(counts["value"], date1904)
    if parsed.is_not_null().all():
        return _choice_make(EXCEL_SERIAL, counts, parsed)
    examples = ", ".join(f'"{value}"' for value in counts["value"].head(3))
    raise IngestionError(
        INVALID_DATE_FORMAT,
        f"No known date format reads the date column (e.g. {examples}). "
        "Pass date_format in strftime syntax, e.g. %d/%m/%Y.",
    )


def _excel_parse(values: pl.Series, date1904: bool) -> pl.Series:
    """Excel serial day numbers → Datetime (fraction = time of day); null outside 1990–2100."""
    number = values.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    epoch_day = EXCEL_EPOCHS[date1904].date()
    first, last = ((day - epoch_day).days for day in _EXCEL_YEARS)
    in_range = number.is_between(first, last).fill_null(False)
    # Out-of-range numbers (a Unix time, 1e30, inf) do not fit the cast: they become null first.
    kept = pl.select(pl.when(in_range).then(pl.lit(number))).to_series()
    offset = (kept * 86_400_000_000).round(0).cast(pl.Int64).cast(pl.Duration("us"))
    epoch = pl.lit(EXCEL_EPOCHS[date1904], dtype=pl.Datetime("us"))
    return pl.select(epoch + pl.lit(offset)).to_series().alias(values.name)


def _invalid_format(fmt: str, why: str) -> IngestionError:
    return IngestionError(
        INVALID_DATE_FORMAT,
        f"date_format '{fmt}' cannot be used: {why}. Use strftime syntax, e.g. %d/%m/%Y or %Y-%m-%d.",
    )
