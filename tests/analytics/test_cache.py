"""The result cache: keyed by spec + datasource version + scope, shared by web and worker processes.

A publish invalidates exactly its datasource: the version token in the key changes, so the next
query misses and reads the new version, while other datasources' entries keep being served.
"""

import datetime as dt
import io
import time
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import BranchScope
from analytics.engines.embedded import EmbeddedEngine
from analytics.query import Breakdown, Comparison, Filters, Summary
from analytics.runner import run_query
from ingestion.models import IngestionTask
from tests.analytics.publishing import rows_totals, sales_rows, synthetic_publish
from tests.factories import UserFactory
from tests.processes import manage_py, running_worker

REAL_REVENUE = 322_966.749


@pytest.fixture
def engine_calls(monkeypatch) -> list[str]:
    """The SQL of every query that reached the engine."""
    calls: list[str] = []
    execute = EmbeddedEngine.execute

    def counting(self, sql: str, params: list) -> list[tuple]:
        calls.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(EmbeddedEngine, "execute", counting)
    return calls


@pytest.fixture
def january(tmp_path: Path) -> list[dict]:
    rows = sales_rows(start=dt.date(2024, 1, 1), days=31, seed=1)
    synthetic_publish(datasource="sales", rows=rows, workdir=tmp_path)
    return rows


@pytest.mark.django_db
def test_identical_query_is_served_from_cache_without_the_engine(january, engine_calls) -> None:
    first = run_query(Summary(datasource="sales"), user=None)
    assert not first.cached
    assert len(engine_calls) == 1
    again = run_query(Summary(datasource="sales"), user=None)
    assert again.cached
    assert len(engine_calls) == 1
    assert again.rows == first.rows
    assert (again.data_version, again.source, again.engine) == (first.data_version, first.source, first.engine)
    assert again.first["revenue"] == pytest.approx(rows_totals(january)["revenue"])


@pytest.mark.django_db
def test_equal_filters_written_differently_share_one_entry(january, engine_calls) -> None:
    run_query(Summary(datasource="sales", filters=Filters(include={"branch": ("B", "A", "A")})), user=None)
    again = run_query(Summary(datasource="sales", filters=Filters(include={"branch": ("A", "B")})), user=None)
    assert again.cached
    assert len(engine_calls) == 1


@pytest.mark.django_db
def test_a_comparison_is_cached_with_its_result(january, engine_calls) -> None:
    spec = Summary(
        datasource="sales",
        filters=Filters(start=dt.date(2024, 1, 16), end=dt.date(2024, 1, 31)),
        comparison=Comparison.PREVIOUS_PERIOD,
    )
    first = run_query(spec, user=None)
    assert len(engine_calls) == 2  # the period and the one before it
    again = run_query(spec, user=None)
    assert again.cached and len(engine_calls) == 2
    assert again.comparison is not None
    assert again.comparison.first == first.comparison.first


@pytest.mark.django_db
@pytest.mark.parametrize(
    "other",
    [
        pytest.param(Summary(datasource="sales", metrics=("revenue",)), id="other-metrics"),
        pytest.param(Breakdown(datasource="sales", by=("branch",)), id="other-kind"),
        pytest.param(Summary(datasource="sales", filters=Filters(start=dt.date(2024, 1, 2))), id="other-range"),
        pytest.param(Summary(datasource="sales", filters=Filters(exclude={"branch": ("A",)})), id="other-exclude"),
        pytest.param(Summary(datasource="sales", comparison=Comparison.PREVIOUS_PERIOD), id="with-comparison"),
    ],
)
def test_a_different_spec_is_a_different_entry(january, engine_calls, other) -> None:
    run_query(Summary(datasource="sales"), user=None)
    calls = len(engine_calls)
    assert not run_query(other, user=None).cached
    assert len(engine_calls) > calls


@pytest.mark.django_db
def test_a_different_scope_is_a_different_entry(january, engine_calls) -> None:
    everyone = run_query(Summary(datasource="sales"), user=None)
    scoped = UserFactory()
    BranchScope.objects.create(user=scoped, branches=["A"])

    mine = run_query(Summary(datasource="sales"), user=scoped)
    assert not mine.cached, "a scoped user must never get the unscoped answer from the cache"
    assert len(engine_calls) == 2
    only_a = [row for row in january if row["branch"] == "A"]
    assert mine.first["revenue"] == pytest.approx(rows_totals(only_a)["revenue"])
    assert mine.first["revenue"] < everyone.first["revenue"]
    assert run_query(Summary(datasource="sales"), user=scoped).cached
    # The unscoped entry is still the unscoped answer.
    assert run_query(Summary(datasource="sales"), user=None).first == everyone.first
    assert len(engine_calls) == 2

    # Another scope is another entry, and an unscoped request for branch A agrees with the A scope.
    other = UserFactory()
    BranchScope.objects.create(user=other, branches=["B"])
    theirs = run_query(Summary(datasource="sales"), user=other)
    assert not theirs.cached
    assert theirs.first["revenue"] == pytest.approx(rows_totals([r for r in january if r["branch"] == "B"])["revenue"])
    asked = run_query(Summary(datasource="sales", filters=Filters(include={"branch": ("A",)})), user=None)
    assert asked.first == mine.first


@pytest.mark.django_db
def test_a_publish_invalidates_only_its_datasource(january, tmp_path: Path, engine_calls) -> None:
    other_rows = sales_rows(start=dt.date(2024, 1, 1), days=5, seed=2)
    synthetic_publish(datasource="other", rows=other_rows, workdir=tmp_path)
    run_query(Summary(datasource="sales"), user=None)
    run_query(Summary(datasource="other"), user=None)
    assert len(engine_calls) == 2

    february = sales_rows(start=dt.date(2024, 2, 1), days=29, seed=3)
    synthetic_publish(datasource="sales", rows=february, workdir=tmp_path)

    fresh = run_query(Summary(datasource="sales"), user=None)
    assert not fresh.cached
    assert fresh.data_version == 2
    assert fresh.first["revenue"] == pytest.approx(rows_totals(january + february)["revenue"])
    kept = run_query(Summary(datasource="other"), user=None)
    assert kept.cached
    assert kept.first["revenue"] == pytest.approx(rows_totals(other_rows)["revenue"])
    assert len(engine_calls) == 3


def _two_datasources_cached(tmp_path: Path, engine_calls: list[str]) -> tuple[list[dict], list[dict]]:
    web_rows = sales_rows(start=dt.date(2024, 1, 1), days=31, seed=4)
    other_rows = sales_rows(start=dt.date(2024, 1, 1), days=10, seed=5)
    synthetic_publish(datasource="web_sales", rows=web_rows, workdir=tmp_path)
    synthetic_publish(datasource="other", rows=other_rows, workdir=tmp_path)
    for name in ("web_sales", "other"):
        assert not run_query(Summary(datasource=name), user=None).cached
        assert run_query(Summary(datasource=name), user=None).cached
    assert len(engine_calls) == 2
    return web_rows, other_rows


def _after_worker_publish(web_rows: list[dict], other_rows: list[dict], engine_calls: list[str]) -> None:
    """What the web process sees once a worker published the real file into `web_sales`."""
    fresh = run_query(Summary(datasource="web_sales"), user=None)
    assert not fresh.cached, "the worker's publish must invalidate what the web process cached"
    assert fresh.data_version == 2
    assert fresh.first["revenue"] == pytest.approx(rows_totals(web_rows)["revenue"] + REAL_REVENUE, abs=0.005)
    assert fresh.first["lines"] == len(web_rows) + 1000
    assert fresh.first["units_sold"] == rows_totals(web_rows)["units_sold"] + 5510
    assert len(engine_calls) == 3
    assert run_query(Summary(datasource="web_sales"), user=None).cached

    kept = run_query(Summary(datasource="other"), user=None)
    assert kept.cached, "a publish must not invalidate another datasource"
    assert kept.data_version == 1
    assert kept.first["revenue"] == pytest.approx(rows_totals(other_rows)["revenue"])
    assert len(engine_calls) == 3


@pytest.mark.django_db(transaction=True)
def test_publish_by_ingest_command_in_another_process_invalidates_exactly_its_datasource(
    tmp_path: Path, real_file: Path, engine_calls
) -> None:
    web_rows, other_rows = _two_datasources_cached(tmp_path, engine_calls)
    completed = manage_py("ingest", str(real_file), "--datasource", "web_sales")
    assert "Published 1,000 rows" in completed.stdout
    _after_worker_publish(web_rows, other_rows, engine_calls)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_publish_by_qcluster_worker_invalidates_exactly_its_datasource(
    tmp_path: Path, real_file: Path, engine_calls, uploader_api: Client
) -> None:
    web_rows, other_rows = _two_datasources_cached(tmp_path, engine_calls)
    with running_worker():
        response = uploader_api.post(
            "/api/ingest/upload",
            {"file": _named("supermarket_sales.csv", real_file.read_bytes()), "datasource_name": "web_sales"},
        )
        assert response.status_code == 202, response.content
        task = _finished(response.json()["task_id"], timeout=60)
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    _after_worker_publish(web_rows, other_rows, engine_calls)


def _named(name: str, content: bytes) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def _finished(task_id: str, *, timeout: float) -> IngestionTask:
    deadline = time.monotonic() + timeout
    finished = (IngestionTask.Status.SUCCEEDED, IngestionTask.Status.FAILED, IngestionTask.Status.CANCELLED)
    while time.monotonic() < deadline:
        task = IngestionTask.objects.get(pk=task_id)
        if task.status in finished:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still {task.status}/{task.stage} after {timeout}s: {task.message}")
