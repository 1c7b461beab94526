"""Appending an upload builds the new version's rollups from the previous ones and the added rows."""

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from analytics import rollups, services
from analytics.models import Rollup
from analytics.query import Breakdown, Filters, Summary
from analytics.runner import run_query
from tests.analytics.publishing import sales_rows, synthetic_publish

pytestmark = pytest.mark.django_db


def _transactions_by_branch(rows: list[dict]) -> dict[str, int]:
    invoices: dict[str, set[str]] = {}
    for row in rows:
        invoices.setdefault(row["branch"], set()).add(row["invoice_id"])
    return {branch: len(ids) for branch, ids in invoices.items()}


def _rollups_answer_as_the_rows(datasource: str, rows: list[dict]) -> None:
    """Totals and per-branch transactions, answered from rollups, equal those of `rows`."""
    summary = run_query(Summary(datasource=datasource, metrics=("revenue", "transactions", "lines")), user=None)
    assert summary.source != "raw"
    assert summary.first["transactions"] == len({row["invoice_id"] for row in rows})
    assert summary.first["lines"] == len(rows)
    assert summary.first["revenue"] == pytest.approx(sum(row["revenue"] for row in rows), abs=0.005)
    breakdown = run_query(Breakdown(datasource=datasource, by=("branch",), metrics=("transactions",)), user=None)
    assert breakdown.source != "raw"
    assert {row["branch"]: row["transactions"] for row in breakdown.rows} == _transactions_by_branch(rows)


def _facts_builds_spied(monkeypatch) -> list[list[Path]]:
    """The rows each build of a version's facts reads, from now on."""
    built_from: list[list[Path]] = []
    build = rollups.version_facts_build

    def spy(*, segment_paths: list[Path], workdir: Path) -> rollups.VersionFacts:
        built_from.append(segment_paths)
        return build(segment_paths=segment_paths, workdir=workdir)

    for module in (rollups, services):  # services calls it for a full rebuild
        monkeypatch.setattr(module, "version_facts_build", spy)
    return built_from


def test_an_append_aggregates_only_the_added_rows(tmp_path: Path, monkeypatch) -> None:
    january = sales_rows(start=dt.date(2024, 1, 1), days=31, seed=1)
    february = sales_rows(start=dt.date(2024, 2, 1), days=29, seed=2)
    synthetic_publish(datasource="shop", rows=january, workdir=tmp_path)
    built_from = _facts_builds_spied(monkeypatch)

    synthetic_publish(datasource="shop", rows=february, workdir=tmp_path)

    assert len(built_from) == 1 and len(built_from[0]) == 1, "only the added rows are aggregated"
    assert "curated-" in built_from[0][0].name
    rows = january + february
    _rollups_answer_as_the_rows("shop", rows)


def test_an_invoice_split_across_uploads_is_counted_once(tmp_path: Path, monkeypatch) -> None:
    first_line = sales_rows(start=dt.date(2024, 3, 1), days=1, per_day=1, seed=3)[0]
    second_line = {**first_line, "product_line": "Sports and travel", "revenue": 5.0, "quantity": 1}
    synthetic_publish(datasource="split", rows=[first_line], workdir=tmp_path)
    appended = []
    append = services.version_facts_append
    monkeypatch.setattr(
        services, "version_facts_append", lambda **kwargs: appended.append(result := append(**kwargs)) or result
    )

    synthetic_publish(datasource="split", rows=[second_line], workdir=tmp_path)

    assert appended == [None], "an invoice on both sides is rebuilt from every row"
    summary = run_query(Summary(datasource="split", metrics=("transactions", "lines")), user=None)
    assert (summary.first["transactions"], summary.first["lines"]) == (1, 2)
    by_branch = run_query(Breakdown(datasource="split", by=("branch",), metrics=("transactions",)), user=None)
    assert [row["transactions"] for row in by_branch.rows] == [1]


def test_a_lost_rollup_file_of_the_previous_version_does_not_fail_an_append(tmp_path: Path, caplog) -> None:
    january = sales_rows(start=dt.date(2024, 1, 1), days=31, seed=4)
    february = sales_rows(start=dt.date(2024, 2, 1), days=29, seed=5)
    synthetic_publish(datasource="lost", rows=january, workdir=tmp_path)
    rollup = Rollup.objects.filter(datasource__name="lost").order_by("rows").first()
    default_storage.delete(rollup.path)
    # With S3 storage the embedded engine also keeps a local copy.
    (Path(settings.VAR_DIR) / "engine" / "files" / rollup.path).unlink(missing_ok=True)

    outcome = synthetic_publish(datasource="lost", rows=february, workdir=tmp_path)

    assert outcome.data_version == 2
    assert "building from every row" in caplog.text
    rows = january + february
    by_branch = run_query(Breakdown(datasource="lost", by=("branch",), metrics=("transactions",)), user=None)
    assert by_branch.source != "raw"
    assert {row["branch"]: row["transactions"] for row in by_branch.rows} == _transactions_by_branch(rows)


def test_a_replace_aggregates_only_the_added_rows(tmp_path: Path, monkeypatch) -> None:
    # Correcting a week of a quarter used to rebuild the version's facts from every row.
    quarter = sales_rows(start=dt.date(2024, 1, 1), days=91, seed=6)
    week = sales_rows(start=dt.date(2024, 2, 5), days=7, per_day=5, seed=7)
    synthetic_publish(datasource="fixed", rows=quarter, workdir=tmp_path)
    built_from = _facts_builds_spied(monkeypatch)

    synthetic_publish(datasource="fixed", rows=week, workdir=tmp_path, replace=True)

    assert len(built_from) == 1 and len(built_from[0]) == 1, "only the added rows are aggregated"
    days = {row["date"] for row in week}
    rows = [row for row in quarter if not min(days) <= row["date"] <= max(days)] + week
    _rollups_answer_as_the_rows("fixed", rows)
    february = run_query(
        Summary(
            datasource="fixed", metrics=("lines",), filters=Filters(start=dt.date(2024, 2, 1), end=dt.date(2024, 2, 29))
        ),
        user=None,
    )
    assert february.first["lines"] == sum(1 for row in rows if row["date"].month == 2)
