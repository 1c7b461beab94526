"""The Druid reconciliation's comparison, with Druid's side given (tests/druid/test_sync.py runs it
against the real Druid)."""

import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analytics.catalogue import datasource_snapshot
from analytics.engines import druid_sync
from tests.analytics.publishing import sales_rows, synthetic_publish

pytestmark = pytest.mark.django_db


def test_rows_moved_between_days_are_found_although_the_totals_agree(tmp_path: Path, monkeypatch) -> None:
    # A day/month fix that reached Druid but not the catalogue: same lines, same revenue in total.
    rows = sales_rows(start=dt.date(2024, 3, 1), days=4, seed=8)
    synthetic_publish(datasource="moved", rows=rows, workdir=tmp_path)
    ours = druid_sync._catalogue_cells(datasource_snapshot(name="moved"))
    first, second = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
    theirs = {
        ((second if day == first else first if day == second else day), branch): cell
        for (day, branch), cell in ours.items()
    }
    monkeypatch.setattr(druid_sync, "_druid_cells", lambda datasource: theirs)

    result = druid_sync.druid_reconcile(datasource_name="moved")

    assert (result.catalogue_lines, result.druid_lines) == (len(rows), len(rows))
    assert result.catalogue_revenue == pytest.approx(result.druid_revenue)
    assert not result.in_sync
    moved_cells = {key for key in ours.keys() | theirs.keys() if key[0] in (first, second)}
    assert result.cells_apart_count == len(moved_cells)
    assert result.cells_apart[0].startswith("2024-03-01 branch ")


def test_only_datasources_of_the_catalogue_are_compared_or_loaded(tmp_path: Path, monkeypatch) -> None:
    # Another application's Druid datasource on a shared cluster is never touched.
    synthetic_publish(datasource="ours", rows=sales_rows(start=dt.date(2024, 3, 1), days=1), workdir=tmp_path)

    def druid_asked(datasource: str) -> dict:
        raise AssertionError(f"Druid was asked about {datasource}")

    monkeypatch.setattr(druid_sync, "_druid_cells", druid_asked)
    with pytest.raises(CommandError, match="Not datasources of this catalogue: theirs"):
        call_command("druid_sync", "--datasource", "theirs", stdout=io.StringIO())
