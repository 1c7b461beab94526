"""A retry after Druid loaded an upload and the catalogue never switched it in (the worker died):
the earlier load is reused only when it still stands for exactly the rows being published."""

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from analytics.engines import get_engine
from analytics.engines.druid_ingestion import druid_task_id
from analytics.engines.druid_sync import druid_reconcile
from analytics.services import PublishRequest, datasource_publish
from tests.analytics.publishing import curated_write, publish_request, rows_totals, sales_rows, synthetic_publish
from tests.druid.conftest import druid_select

pytestmark = [pytest.mark.druid, pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]


def _retried_with(first: PublishRequest, rows: list[dict], workdir: Path, *, replace: bool) -> PublishRequest:
    """The same upload run again with other options: other curated rows (another date format,
    another mapping) or another mode."""
    return dataclasses.replace(
        first,
        curated_path=curated_write(rows, workdir / "retry.parquet"),
        rows=len(rows),
        interval_start=min(row["date"] for row in rows),
        interval_end=max(row["date"] for row in rows),
        replace=replace,
    )


def _druid_holds(datasource: str, rows: list[dict]) -> None:
    expected = rows_totals(rows)
    [[lines, units, revenue]] = druid_select(datasource, "SUM(lines), SUM(quantity_sum), SUM(revenue_sum)")
    assert (lines, units) == (expected["lines"], expected["units_sold"])
    assert revenue == pytest.approx(expected["revenue"], abs=0.005)
    assert druid_reconcile(datasource_name=datasource).in_sync


@pytest.mark.django_db
def test_a_retry_with_another_date_format_replaces_what_the_first_attempt_loaded(
    druid_engine, druid_names, tmp_path: Path
):
    datasource = druid_names("redated")
    published = sales_rows(start=dt.date(2020, 1, 1), days=5, seed=1)
    synthetic_publish(datasource=datasource, rows=published, workdir=tmp_path)
    # Read month-first: the days land elsewhere (January 2 to October 2, some on published days).
    misread = sales_rows(start=dt.date(2020, 1, 2), days=4, seed=2) + sales_rows(
        start=dt.date(2020, 10, 2), days=1, seed=3
    )
    first = publish_request(datasource=datasource, rows=misread, workdir=tmp_path)
    get_engine().publish(request=first)  # Druid loaded it; the worker died before the switch
    corrected = sales_rows(start=dt.date(2020, 2, 1), days=10, seed=4)

    outcome = datasource_publish(request=_retried_with(first, corrected, tmp_path, replace=False))

    assert outcome.engine_task_id == druid_task_id(datasource=datasource, upload_id=first.upload_id, attempt=2)
    _druid_holds(datasource, published + corrected)
    assert druid_select(datasource, "COUNT(*)", where="__time >= '2020-10-01'") == [[0]]


@pytest.mark.django_db
def test_a_retry_switched_to_replace_does_not_keep_the_appended_load(druid_engine, druid_names, tmp_path: Path):
    datasource = druid_names("remoded")
    published = sales_rows(start=dt.date(2024, 3, 1), days=5, seed=5)
    synthetic_publish(datasource=datasource, rows=published, workdir=tmp_path)
    fix = sales_rows(start=dt.date(2024, 3, 2), days=2, per_day=2, seed=6)
    first = publish_request(datasource=datasource, rows=fix, workdir=tmp_path)
    get_engine().publish(request=first)  # appended in Druid, never switched

    datasource_publish(request=_retried_with(first, fix, tmp_path, replace=True))

    kept = [row for row in published if row["date"] not in {dt.date(2024, 3, 2), dt.date(2024, 3, 3)}]
    _druid_holds(datasource, kept + fix)


@pytest.mark.django_db
def test_a_retry_whose_rows_a_later_replace_dropped_loads_them_again(druid_engine, druid_names, tmp_path: Path):
    datasource = druid_names("dropped")
    rows = sales_rows(start=dt.date(2024, 3, 1), days=5, seed=7)
    first = publish_request(datasource=datasource, rows=rows, workdir=tmp_path)
    get_engine().publish(request=first)  # loaded, never switched
    # Another upload replaces those days meanwhile: Druid drops every row of them, this load's too.
    replacement = sales_rows(start=dt.date(2024, 3, 1), days=5, per_day=2, seed=8)
    synthetic_publish(datasource=datasource, rows=replacement, workdir=tmp_path, replace=True)

    outcome = datasource_publish(request=first)

    assert outcome.engine_task_id == druid_task_id(datasource=datasource, upload_id=first.upload_id, attempt=2)
    _druid_holds(datasource, replacement + rows)


@pytest.mark.django_db
def test_a_retry_of_the_very_rows_nothing_removed_reuses_the_load(druid_engine, druid_names, tmp_path: Path):
    datasource = druid_names("reused")
    published = sales_rows(start=dt.date(2024, 3, 1), days=3, seed=9)
    synthetic_publish(datasource=datasource, rows=published, workdir=tmp_path)
    rows = sales_rows(start=dt.date(2024, 4, 1), days=3, seed=10)
    first = publish_request(datasource=datasource, rows=rows, workdir=tmp_path)
    first_task = get_engine().publish(request=first)
    # Published meanwhile on other days: it cannot have touched this load's rows.
    other = sales_rows(start=dt.date(2024, 5, 1), days=2, seed=11)
    synthetic_publish(datasource=datasource, rows=other, workdir=tmp_path)

    outcome = datasource_publish(request=first)

    assert outcome.engine_task_id == first_task
    _druid_holds(datasource, published + rows + other)
