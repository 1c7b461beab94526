"""Date format choice over the whole column, and date/time parsing (DESIGN.md step 5)."""

from datetime import date, datetime, time

import polars as pl
import pytest

from ingestion.dates import (
    EXCEL_SERIAL,
    date_format_choose,
    date_format_validate,
    date_parse,
    date_time_merge,
    time_parse,
    time_values_compact,
)
from ingestion.errors import AMBIGUOUS_DATES, INVALID_DATE_FORMAT, IngestionError


def choose(values: list[str | None], **options) -> str:
    return date_format_choose(pl.Series("Date", values, dtype=pl.String), **options).format


def test_day_first_two_digit_years_are_not_read_as_year_first():
    # The sniffer pitfall: "%y/%m/%d" would read these as 2003-01-19, 2013-01-19, 2025-12-19.
    values = pl.Series(["03/01/19", "13/01/19", "25/12/19"])
    choice = date_format_choose(values)
    assert choice.format == "%d/%m/%y"
    assert date_parse(values, choice.format).to_list() == [date(2019, 1, 3), date(2019, 1, 13), date(2019, 12, 25)]


def test_month_first_wins_when_it_parses_more():
    assert choose(["03/01/2019", "12/31/2019", "01/13/2019"]) == "%m/%d/%Y"


def test_a_column_readable_both_ways_is_ambiguous_and_says_what_to_pass():
    with pytest.raises(IngestionError) as caught:
        choose(["01/02/19", "03/04/19"])
    assert caught.value.code == AMBIGUOUS_DATES
    assert "date_format" in caught.value.detail
    assert "%d/%m/%y" in caught.value.detail
    assert '"01/02/19"' in caught.value.detail


def test_a_column_mixing_both_orders_is_ambiguous():
    with pytest.raises(IngestionError) as caught:
        choose(["13/01/19", "01/13/19"])
    assert caught.value.code == AMBIGUOUS_DATES


def test_identical_readings_are_not_ambiguous():
    assert choose(["01/01/19", "02/02/19"]) == "%d/%m/%y"


def test_explicit_format_settles_ambiguity():
    choice = date_format_choose(pl.Series(["01/02/19", "03/04/19"]), explicit="%m/%d/%y")
    assert (choice.format, choice.parsed, choice.total) == ("%m/%d/%y", 2, 2)


def test_real_file_format_with_unpadded_days():
    values = pl.Series(["1-Jan-2019", "13-Feb-2019", "5-mar-2019"])
    assert choose(values.to_list()) == "%d-%b-%Y"
    assert date_parse(values, "%d-%b-%Y").to_list() == [date(2019, 1, 1), date(2019, 2, 13), date(2019, 3, 5)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2019-01-03", "2019-12-31"], "%Y-%m-%d"),
        (["2019-01-03 10:00:00", "2019-12-31 23:59:59"], "%Y-%m-%d %H:%M:%S"),
        (["2019-01-03T10:00:00", "2019-12-31T23:59:59"], "%Y-%m-%dT%H:%M:%S"),
        (["2019-01-03T10:00:00.250", "2019-12-31T23:59:59"], "%Y-%m-%dT%H:%M:%S%.f"),
        (["3.1.2019", "31.12.2019"], "%d.%m.%Y"),
        (["31-12-2019", "3-1-2019"], "%d-%m-%Y"),
        (["2019/12/31"], "%Y/%m/%d"),
        (["Dec 31, 2019", "Jan 3, 2019"], "%b %d, %Y"),
        (["31 Dec 2019"], "%d %b %Y"),
        (["31 December 2019"], "%d %B %Y"),
        (["20191231", "20190103"], "%Y%m%d"),
    ],
)
def test_candidate_formats(values, expected):
    assert choose(values) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2019-01-01T10:39:00Z", "2019-01-02T23:10:00Z"], "%Y-%m-%dT%H:%M:%S%z"),
        (["2019-01-01T10:39:00+06:30", "2019-01-02T23:10:00-05:00"], "%Y-%m-%dT%H:%M:%S%z"),
        (["2019-01-01T10:39:00.123Z", "2019-01-02T23:10:00.5+0100"], "%Y-%m-%dT%H:%M:%S%.f%z"),
        (["2019-01-01 10:39:00+00:00", "2019-01-02 23:10:00+00:00"], "%Y-%m-%d %H:%M:%S%z"),
    ],
)
def test_iso_timestamps_with_an_offset_are_detected(values, expected):
    assert choose(values) == expected


def test_an_offset_keeps_the_local_date_and_time_as_written():
    # The business day in the file's own offset: 23:10 at -05:00 is 04:10 the next day in UTC,
    # but the sale happened on the 2nd.
    values = pl.Series(["2019-01-01T10:39:00+06:30", "2019-01-02T23:10:00.250-05:00", "2019-01-03T00:20:00Z"])
    choice = date_format_choose(values)
    assert date_parse(values, choice.format).to_list() == [
        datetime(2019, 1, 1, 10, 39),
        datetime(2019, 1, 2, 23, 10, 0, 250000),
        datetime(2019, 1, 3, 0, 20),
    ]


def test_an_explicit_offset_format_is_accepted_and_requires_the_offset():
    assert date_format_validate("%Y-%m-%dT%H:%M:%S%z") == "%Y-%m-%dT%H:%M:%S%z"
    values = pl.Series(["2019-01-01T10:39:00+06:30", "2019-01-01T10:39:00Z", "2019-01-01T10:39:00"])
    choice = date_format_choose(values, explicit="%Y-%m-%dT%H:%M:%S%z")
    assert (choice.parsed, choice.total) == (2, 3)
    assert date_parse(values, "%Y-%m-%dT%H:%M:%S%z").to_list() == [datetime(2019, 1, 1, 10, 39)] * 2 + [None]


def test_values_without_an_offset_keep_their_formats():
    assert choose(["2019-01-03T10:00:00", "2019-12-31T23:59:59"]) == "%Y-%m-%dT%H:%M:%S"
    assert choose(["2019-01-03", "2019-01-04"]) == "%Y-%m-%d"  # "-03" is a day, not an offset


def test_most_rows_win_and_the_rest_are_counted_as_unparsed():
    choice = date_format_choose(pl.Series(["2019-01-03"] * 5 + ["03/01/2019", "soon", None, ""]))
    assert choice.format == "%Y-%m-%d"
    assert (choice.parsed, choice.total) == (5, 7)
    assert set(choice.unparsed_examples) == {"03/01/2019", "soon"}


def test_rows_not_distinct_values_decide():
    # Two distinct values each, but day-first covers more rows: counts are weighted.
    choice = date_format_choose(pl.Series(["25/12/2019"] * 3 + ["12/25/2019"]))
    assert (choice.format, choice.parsed) == ("%d/%m/%Y", 3)


def test_nothing_readable_is_invalid_date_format():
    with pytest.raises(IngestionError) as caught:
        choose(["soon", "later"])
    assert caught.value.code == INVALID_DATE_FORMAT
    assert "date_format" in caught.value.detail


def test_excel_serials_only_when_nothing_else_reads_the_column():
    choice = date_format_choose(pl.Series(["43466", "43831.5"]))
    assert (choice.format, choice.has_time) == (EXCEL_SERIAL, True)
    parsed = date_parse(pl.Series(["43466", "43831.5", "12"]), EXCEL_SERIAL)
    assert parsed.to_list() == [datetime(2019, 1, 1), datetime(2020, 1, 1, 12), None]
    with pytest.raises(IngestionError):
        choose(["43466", "7"])  # 7 is no plausible serial: not a serial column


def test_excel_serials_of_a_1904_workbook_count_from_1904():
    serials = pl.Series(["43982", "43982.25"])  # 2024-06-01 in Mac Excel's date system, 2020-05-31 in 1900's
    assert date_format_choose(serials, date1904=True).format == EXCEL_SERIAL
    assert date_parse(serials, EXCEL_SERIAL, date1904=True).to_list() == [datetime(2024, 6, 1), datetime(2024, 6, 1, 6)]
    assert date_parse(serials, EXCEL_SERIAL).to_list() == [datetime(2020, 5, 31), datetime(2020, 5, 31, 6)]
    # The range of plausible serials moves with the epoch: 1990-01-01 is serial 31412 in 1904's system.
    assert date_parse(pl.Series(["31412"]), EXCEL_SERIAL, date1904=True).to_list() == [datetime(1990, 1, 1)]


@pytest.mark.parametrize("fmt", ["%Q", "%", "%d/%m", "hello", "%H:%M"])
def test_invalid_explicit_format(fmt):
    with pytest.raises(IngestionError) as caught:
        date_format_choose(pl.Series(["x"]), explicit=fmt)
    assert caught.value.code == INVALID_DATE_FORMAT
    assert fmt in caught.value.detail


def test_valid_explicit_formats():
    for fmt in ("%d/%m/%y", "%F", "%e %b %Y", "%Y-%m-%d %I:%M %p", EXCEL_SERIAL):
        assert date_format_validate(fmt) == fmt


def test_date_parse_types():
    assert date_parse(pl.Series(["2019-01-03", "x", None]), "%Y-%m-%d").dtype == pl.Date
    with_time = date_parse(pl.Series([" 2019-01-03 10:00 ", "x"]), "%Y-%m-%d %H:%M")
    assert with_time.dtype == pl.Datetime("us")
    assert with_time.to_list() == [datetime(2019, 1, 3, 10), None]


def test_time_column_merge():
    times = time_parse(pl.Series(["13:08", "1:08:00 PM", "9:05:30", "1:08 am", None, "25:00"]))
    assert times.to_list() == [time(13, 8), time(13, 8), time(9, 5, 30), time(1, 8), None, None]
    days = pl.Series([date(2019, 1, 1)] * 6)
    merged = date_time_merge(days, times)
    assert merged.dtype == pl.Datetime("us")
    assert merged.to_list()[:5] == [
        datetime(2019, 1, 1, 13, 8),
        datetime(2019, 1, 1, 13, 8),
        datetime(2019, 1, 1, 9, 5, 30),
        datetime(2019, 1, 1, 1, 8),
        None,  # no time: no invented midnight
    ]


def test_time_column_replaces_the_time_of_a_datetime_but_keeps_it_when_missing():
    moments = pl.Series([datetime(2019, 1, 1, 10), datetime(2019, 1, 2, 11)])
    merged = date_time_merge(moments, pl.Series([time(13, 8), None]))
    assert merged.to_list() == [datetime(2019, 1, 1, 13, 8), datetime(2019, 1, 2, 11)]


def test_counts_merged_from_parts_choose_as_the_whole_column() -> None:
    from ingestion.dates import date_format_choose_counted, date_value_counts, date_value_counts_merge

    values = ["25/12/2019", "01/02/2019", " 25/12/2019 ", None, "", "soon", "13/01/2020"] * 3
    whole = date_format_choose(pl.Series(values))
    parts = [pl.Series(values[start : start + 4]) for start in range(0, len(values), 4)]
    merged = date_value_counts_merge(date_value_counts(part) for part in parts)
    assert dict(merged.iter_rows()) == {"25/12/2019": 6, "01/02/2019": 3, "soon": 3, "13/01/2020": 3}
    assert date_format_choose_counted(merged) == whole


def test_serial_numbers_outside_the_range_are_unreadable_not_a_crash() -> None:
    # A Unix time, 1e30, inf and NaN did not fit the day-offset cast (an internal error, a 500 on preview).
    parsed = date_parse(pl.Series(["43466", "1546646400", "1e30", "inf", "NaN", "-1e300"]), EXCEL_SERIAL)
    assert parsed.to_list() == [datetime(2019, 1, 1), None, None, None, None, None]


def test_compact_times_are_read_only_when_asked():
    values = pl.Series(["1039", "905", "0007", "2359", "2400", "1075", "13:08", None])
    assert time_parse(values).to_list() == [None, None, None, None, None, None, time(13, 8), None]
    assert time_parse(values, compact=True).to_list() == [
        time(10, 39), time(9, 5), time(0, 7), time(23, 59), None, None, time(13, 8), None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "counted"),
    [
        (["1039", "905", " 0007 ", None, "n/a"], (3, 3)),  # every time written compactly
        (["1039", "45"], (2, 1)),  # "45": minutes or hours? The column is not compact.
        (["1039", "10:39"], (2, 1)),
        ([None, "-"], (0, 0)),
    ],
)
def test_compact_times_counted(values, counted):
    assert time_values_compact(pl.Series(values, dtype=pl.String)) == counted


def test_a_day_first_date_time_with_am_pm_is_ambiguous_not_read_month_first():
    # A day's till export: every day ≤ 12, so both orders read every value, as different dates.
    values = [
        f"05/03/2024 {hour:02d}:{minute:02d}:00 {half}M" for hour in (4, 10) for minute in (5, 37) for half in "AP"
    ]
    with pytest.raises(IngestionError) as caught:
        choose(values)
    assert caught.value.code == AMBIGUOUS_DATES
    assert set(caught.value.choices) == {"%d/%m/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M:%S %p"}


def test_day_first_date_times_with_am_pm_are_read_day_first():
    values = pl.Series(["13/03/2024 04:37 PM", "05/03/2024 10:30 AM"])
    choice = date_format_choose(values)
    assert choice.format == "%d/%m/%Y %I:%M %p"
    assert date_parse(values, choice.format).to_list() == [datetime(2024, 3, 13, 16, 37), datetime(2024, 3, 5, 10, 30)]


def _day_month_swapped(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def test_every_slash_or_dash_date_has_its_twin_in_the_other_order():
    # Without the twin, a column of days ≤ 12 is read in the one order the table knows, silently.
    from ingestion.dates import DATE_FORMATS

    both_orders = [fmt for fmt in DATE_FORMATS if fmt.startswith(("%d/%m/", "%m/%d/", "%d-%m-", "%m-%d-"))]
    assert len(both_orders) >= 20
    missing = [fmt for fmt in both_orders if _day_month_swapped(fmt) not in DATE_FORMATS]
    assert missing == []


@pytest.mark.parametrize(
    ("values", "expected", "first"),
    [
        (["13.03.2024 14:05", "01.04.2024 09:00"], "%d.%m.%Y %H:%M", datetime(2024, 3, 13, 14, 5)),
        (["13.03.2024 14:05:30"], "%d.%m.%Y %H:%M:%S", datetime(2024, 3, 13, 14, 5, 30)),
        (["2024/03/01 10:15:22", "2024/03/02 08:00:00"], "%Y/%m/%d %H:%M:%S", datetime(2024, 3, 1, 10, 15, 22)),
        (["2024/03/01 10:15"], "%Y/%m/%d %H:%M", datetime(2024, 3, 1, 10, 15)),
        (["13-03-2024 10:15", "01-04-2024 11:00"], "%d-%m-%Y %H:%M", datetime(2024, 3, 13, 10, 15)),
        (["03-13-2024 10:15:00"], "%m-%d-%Y %H:%M:%S", datetime(2024, 3, 13, 10, 15)),
        (["3/13/24 10:15 AM", "12/1/24 1:05 PM"], "%m/%d/%y %I:%M %p", datetime(2024, 3, 13, 10, 15)),
        (["13/3/24 10:15"], "%d/%m/%y %H:%M", datetime(2024, 3, 13, 10, 15)),
    ],
)
def test_common_date_times_are_detected(values, expected, first):
    assert choose(values) == expected
    assert date_parse(pl.Series(values), expected)[0] == first


@pytest.mark.parametrize("values", [["3/1/24 10:15 AM", "4/2/24 11:00 AM"], ["01-03-2024 10:15", "02-03-2024 10:15"]])
def test_new_date_times_readable_both_ways_are_ambiguous(values):
    with pytest.raises(IngestionError) as caught:
        choose(values)
    assert caught.value.code == AMBIGUOUS_DATES


def test_formats_needing_a_separator_no_value_holds_are_not_tried(monkeypatch):
    # Each format tried parses every distinct value; a column of "1-Jan-2019" needs no slash format.
    import ingestion.dates as dates

    tried: list[str] = []
    real_parse = dates._datetime_parse

    def recording(text, fmt):
        tried.append(fmt)
        return real_parse(text, fmt)

    monkeypatch.setattr(dates, "_datetime_parse", recording)
    assert choose(["1-Jan-2019", "13-Feb-2019"]) == "%d-%b-%Y"
    assert tried and not [fmt for fmt in tried if "/" in fmt or "." in fmt.replace("%.f", "") or ":" in fmt]
