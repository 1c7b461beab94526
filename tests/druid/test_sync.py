"""Druid's rows against the catalogue's, on the real Druid: found apart, then made equal."""

import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analytics.engines import get_engine
from analytics.engines.druid_sync import druid_reconcile, druid_sync
from analytics.query import Summary
from analytics.runner import run_query
from analytics.services import PublishRequest, datasource_get_or_create, datasource_publish
from tests.analytics.publishing import publish_request, rows_totals, sales_rows, synthetic_publish
from tests.druid.conftest import druid_select

pytestmark = [pytest.mark.druid, pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]


def _served(datasource: str) -> dict:
    first = run_query(
        Summary(datasource=datasource, metrics=("revenue", "units_sold", "lines")), user=None, use_cache=False
    ).first
    return {"revenue": first["revenue"], "units_sold": first["units_sold"], "lines": first["lines"]}


def _assert_served_as(datasource: str, rows: list[dict]) -> None:
    expected = rows_totals(rows)
    served = _served(datasource)
    assert (served["lines"], served["units_sold"]) == (expected["lines"], expected["units_sold"])
    assert served["revenue"] == pytest.approx(expected["revenue"], abs=0.005)


def _druid_only_load(datasource: str, rows: list[dict], workdir: Path) -> PublishRequest:
    """Rows loaded into Druid as a publish loads them, with no catalogue switch after."""
    request = publish_request(datasource=datasource, rows=rows, workdir=workdir)
    get_engine().publish(request=request)
    return request


@pytest.mark.django_db
def test_uploads_published_before_switching_to_druid_are_loaded_by_a_sync(settings, druid_names, tmp_path: Path):
    # The business outgrew one machine: ANALYTICS_ENGINE=druid, and Druid had none of the rows.
    datasource = druid_names("switched")
    settings.ANALYTICS_ENGINE = "embedded"
    first = sales_rows(start=dt.date(2024, 3, 1), days=10, seed=1)
    second = sales_rows(start=dt.date(2024, 3, 11), days=5, seed=2)
    fix = sales_rows(start=dt.date(2024, 3, 4), days=2, per_day=4, seed=3)
    for rows, replace in ((first, False), (second, False), (fix, True)):
        synthetic_publish(datasource=datasource, rows=rows, workdir=tmp_path, replace=replace)
    published = [row for row in first if row["date"] not in {r["date"] for r in fix}] + second + fix
    settings.ANALYTICS_ENGINE = "druid"
    settings.DRUID_PUBLISH_TIMEOUT_SECONDS = 300

    before = druid_reconcile(datasource_name=datasource)
    assert (before.in_sync, before.catalogue_lines, before.druid_lines) == (False, len(published), 0)
    with pytest.raises(CommandError, match=f"Out of sync: {datasource}"):
        call_command("druid_sync", "--datasource", datasource, "--check", stdout=io.StringIO())
    out = io.StringIO()
    call_command("druid_sync", "--datasource", datasource, stdout=out)

    assert f"{datasource}: in sync" in out.getvalue().splitlines()[-1]
    after = druid_reconcile(datasource_name=datasource)
    assert after.in_sync and after.druid_lines == len(published)
    _assert_served_as(datasource, published)


@pytest.mark.django_db
def test_rows_druid_holds_beyond_the_catalogue_are_replaced_by_a_sync(druid_engine, druid_names, tmp_path: Path):
    # Rows that reached Druid while the catalogue never switched them in (a publish that failed
    # after its Druid load), on days inside and outside the published ones.
    datasource = druid_names("leftover")
    published = sales_rows(start=dt.date(2024, 3, 1), days=5, seed=4)
    synthetic_publish(datasource=datasource, rows=published, workdir=tmp_path)
    stray = sales_rows(start=dt.date(2024, 3, 4), days=5, seed=5)
    stray_request = _druid_only_load(datasource, stray, tmp_path)
    before = druid_reconcile(datasource_name=datasource)
    assert (before.catalogue_lines, before.druid_lines) == (len(published), len(published) + len(stray))
    assert before.druid_days == (dt.date(2024, 3, 1), dt.date(2024, 3, 8))

    after = druid_sync(datasource_name=datasource)

    assert after.in_sync and after.druid_lines == len(published)
    _assert_served_as(datasource, published)
    # That upload retried: its Druid load predates the sync, which removed its rows; it loads again.
    datasource_publish(request=stray_request)
    assert druid_reconcile(datasource_name=datasource).in_sync
    _assert_served_as(datasource, published + stray)


@pytest.mark.django_db
def test_a_datasource_with_nothing_published_keeps_its_druid_rows_unless_told(
    druid_engine, druid_names, tmp_path: Path
):
    # They may be a first upload's, loaded and about to be switched in.
    datasource = druid_names("unpublished")
    _druid_only_load(datasource, sales_rows(start=dt.date(2024, 3, 1), days=2), tmp_path)
    assert druid_reconcile(datasource_name=datasource).druid_lines == 6

    kept = druid_sync(datasource_name=datasource)
    assert not kept.in_sync and kept.druid_lines == 6
    dropped = druid_sync(datasource_name=datasource, drop_unpublished=True)

    assert dropped.in_sync and (dropped.druid_lines, dropped.druid_days) == (0, None)


@pytest.mark.django_db
def test_rows_with_a_wrong_product_line_are_found_and_repaired(druid_engine, druid_names, tmp_path: Path):
    # Druid holds the published sales, one of them under another product line: every amount per
    # day and branch still agrees.
    datasource = druid_names("relabel")
    published = sales_rows(start=dt.date(2024, 3, 1), days=3, seed=6)
    synthetic_publish(datasource=datasource, rows=published, workdir=tmp_path)
    relabelled = [{**published[0], "product_line": "Electronic accessories"}, *published[1:]]
    get_engine().publish(
        request=publish_request(datasource=datasource, rows=relabelled, workdir=tmp_path, replace=True)
    )

    before = druid_reconcile(datasource_name=datasource)
    assert (before.cells_apart_count, before.values_apart_count) == (0, 2)
    with pytest.raises(CommandError, match=f"Out of sync: {datasource}"):
        call_command("druid_sync", "--datasource", datasource, "--check", stdout=io.StringIO())
    call_command("druid_sync", "--datasource", datasource, stdout=io.StringIO())

    assert druid_reconcile(datasource_name=datasource).in_sync
    relabelled_lines = druid_select(
        datasource, "COUNT(*)", where='"product_line" = ?', params=["Electronic accessories"]
    )
    assert relabelled_lines == [[0]]


@pytest.mark.django_db
def test_force_reloads_a_datasource_found_in_sync(druid_engine, druid_names, tmp_path: Path):
    datasource = druid_names("forced")
    published = sales_rows(start=dt.date(2024, 3, 1), days=2, seed=7)
    synthetic_publish(datasource=datasource, rows=published, workdir=tmp_path)
    assert druid_reconcile(datasource_name=datasource).in_sync

    out = io.StringIO()
    call_command("druid_sync", "--datasource", datasource, "--force", stdout=out)

    assert "loading the catalogue's version 1 into Druid" in out.getvalue()
    assert "submitted" in out.getvalue()  # a Druid task loaded the rows again
    assert druid_reconcile(datasource_name=datasource).in_sync
    _assert_served_as(datasource, published)


@pytest.mark.django_db
def test_answers_cached_before_a_sync_are_not_served_after_it(druid_engine, druid_names, tmp_path: Path):
    datasource = druid_names("cached")
    published = sales_rows(start=dt.date(2024, 3, 1), days=4, seed=8)
    synthetic_publish(datasource=datasource, rows=published, workdir=tmp_path)
    _druid_only_load(datasource, sales_rows(start=dt.date(2024, 3, 2), days=2, seed=9), tmp_path)
    summary = Summary(datasource=datasource, metrics=("lines",))
    assert run_query(summary, user=None).first["lines"] == len(published) + 6  # Druid's stray rows, cached

    druid_sync(datasource_name=datasource)

    answer = run_query(summary, user=None)
    assert (answer.cached, answer.first["lines"]) == (False, len(published))


@pytest.mark.django_db
def test_a_sync_with_nothing_published_says_only_what_it_does(druid_engine, druid_names, tmp_path: Path):
    datasource = druid_names("nothing")
    datasource_get_or_create(name=datasource)
    _druid_only_load(datasource, sales_rows(start=dt.date(2024, 3, 1), days=2), tmp_path)

    out = io.StringIO()
    with pytest.raises(CommandError, match=f"Out of sync: {datasource}"):
        call_command("druid_sync", "--datasource", datasource, stdout=out)

    assert "loading" not in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "  nothing is published: --drop-unpublished drops Druid's rows of it"
