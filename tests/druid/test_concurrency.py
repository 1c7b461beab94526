"""Two workers publishing different uploads to the same days at once (Q_WORKERS=2 by default)."""

import datetime as dt
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from django.db import connection

from analytics.engines import EngineError
from analytics.query import Summary
from analytics.runner import run_query
from analytics.services import PublishRequest, datasource_publish
from tests.analytics.helpers import sales_frame

pytestmark = [pytest.mark.druid, pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]


def _rows(seed: int) -> list[dict]:
    first = dt.date(2024, 1, 1)
    return [
        {
            "date": first + dt.timedelta(days=day),
            "branch": "A",
            "product_line": "Food",
            "quantity": 1,
            "revenue": float(seed),
            "invoice_id": f"{seed}-{day}",
        }
        for day in range(10)
    ]


def _publish(datasource: str, rows: list[dict], workdir: str, outcomes: dict[str, str], label: str) -> None:
    path = Path(workdir) / f"{label}.parquet"
    sales_frame(rows).write_parquet(path)
    try:
        datasource_publish(
            request=PublishRequest(
                datasource_name=datasource,
                upload_id=uuid.uuid4(),
                upload_name=f"{label}.csv",
                uploaded_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                curated_path=path,
                rows=len(rows),
                interval_start=rows[0]["date"],
                interval_end=rows[-1]["date"],
                replace=False,
            )
        )
        outcomes[label] = "published"
    except EngineError as exc:
        outcomes[label] = f"{type(exc).__name__}: {exc.detail}"
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_uploads_to_the_same_days_at_once_both_publish(druid_engine, druid_names) -> None:
    # Druid gave one of the two tasks the days' lock and failed the other ("Failed to get locks
    # for intervals"); the embedded engine plans again. The failed one is now submitted again.
    datasource = druid_names("concurrent")
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as workdir:
        _publish(datasource, _rows(1), workdir, outcomes, "base")
        threads = [
            threading.Thread(target=_publish, args=(datasource, _rows(seed), workdir, outcomes, f"u{seed}"))
            for seed in (2, 3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert set(outcomes.values()) == {"published"}, outcomes
    summary = run_query(Summary(datasource=datasource, metrics=("lines", "revenue")), user=None, use_cache=False)
    assert (summary.first["lines"], summary.first["revenue"]) == (30, 60.0)
