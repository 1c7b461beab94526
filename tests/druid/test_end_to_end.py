"""The shared real CSV through the REST API into a real Druid: PostgreSQL, S3 storage, ANALYTICS_ENGINE=druid.

Totals are the file's own literals (computed from the CSV, see tests/ingestion/test_upload_api.py),
read twice: straight from Druid's SQL API, and from /api/metrics/summary through the app's engine.
"""

import datetime as dt
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from analytics.engines.druid_s3 import s3_object_key
from analytics.models import Datasource
from ingestion.models import IngestionTask
from tests.druid.conftest import druid_select, druid_task, druid_task_state

pytestmark = [
    pytest.mark.druid,
    pytest.mark.s3,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

REVENUE = 322_966.749
UNITS = 5_510
LINES = 1_000
BRANCH_A_REVENUE = 106_200.3705
JANUARY_REVENUE = 116_291.868
CENT = 0.005


def upload(client, path: Path, **fields):
    handle = io.BytesIO(path.read_bytes())
    handle.name = path.name
    return client.post("/api/ingest/upload", {"file": handle, **fields})


def status_of(client, task_id: str) -> dict:
    response = client.get(f"/api/ingest/status/{task_id}")
    assert response.status_code == 200
    return response.json()


def summary(client, query: str) -> dict:
    response = client.get(f"/api/metrics/summary{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_real_file_through_the_api_into_druid(uploader_api, real_file, tasks_inline, druid_engine, druid_names):
    datasource = druid_names("e2e")

    response = upload(uploader_api, real_file, datasource_name=datasource)

    assert response.status_code == 202, response.content
    task_id = response.json()["task_id"]
    status = status_of(uploader_api, task_id)
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_total"], status["rows_valid"], status["rows_rejected"]) == (1000, 1000, 0)

    # The raw file, byte for byte, at the documented key of the S3 bucket.
    task = IngestionTask.objects.get(pk=task_id)
    yyyy_mm = task.created_at.strftime("%Y/%m")
    assert task.raw_key == f"raw/{datasource}/{yyyy_mm}/{task_id}/supermarket_sales.csv"
    client = default_storage.connection.meta.client
    raw = client.get_object(Bucket=settings.S3_BUCKET, Key=s3_object_key(default_storage, task.raw_key))
    assert raw["Body"].read() == real_file.read_bytes()

    # The Druid task the upload shows, as Druid itself describes it: an s3 input source, succeeded.
    engine_task_id = status["engine_task_id"]
    assert engine_task_id == f"sales_analytics_{datasource}_{task.pk.hex}_1"
    payload = druid_task(engine_task_id)
    source = payload["spec"]["ioConfig"]["inputSource"]
    assert source["type"] == "s3"
    assert source["uris"] == [
        f"s3://{settings.S3_BUCKET}/{s3_object_key(default_storage, f'curated/{datasource}/{task_id}/druid-1.json')}"
    ]
    assert payload["spec"]["ioConfig"]["appendToExisting"] is True
    assert druid_task_state(engine_task_id) == "SUCCESS"
    assert {m["type"] for m in payload["spec"]["dataSchema"]["metricsSpec"]} >= {"doubleSum", "longSum", "count"}
    assert "floatSum" not in str(payload["spec"]["dataSchema"]["metricsSpec"])

    # Totals straight from Druid's SQL API.
    [[revenue, units, lines, invoices]] = druid_select(
        datasource, "SUM(revenue_sum), SUM(quantity_sum), SUM(lines), COUNT(DISTINCT invoice_id)"
    )
    assert revenue == pytest.approx(REVENUE, abs=CENT)
    assert (units, lines, invoices) == (UNITS, LINES, 1000)
    [[branch_a]] = druid_select(datasource, "SUM(revenue_sum)", where="branch = ?", params=["A"])
    assert branch_a == pytest.approx(BRANCH_A_REVENUE, abs=CENT)
    [[january]] = druid_select(
        datasource,
        "SUM(revenue_sum)",
        where="__time >= ? AND __time < ?",
        params=[dt.date(2019, 1, 1), dt.date(2019, 2, 1)],
    )
    assert january == pytest.approx(JANUARY_REVENUE, abs=CENT)

    # The same through the app's API, which says Druid answered.
    totals = summary(uploader_api, f"?datasource={datasource}")
    assert (totals["engine"], totals["source"]) == ("druid", "druid")
    assert totals["total_revenue"] == pytest.approx(REVENUE, abs=CENT)
    assert (totals["units_sold"], totals["lines"], totals["transactions"]) == (UNITS, LINES, 1000)
    assert totals["data_version"] == Datasource.objects.get(name=datasource).data_version == 1
    branch_a_totals = summary(uploader_api, f"?datasource={datasource}&branch=A")
    assert branch_a_totals["total_revenue"] == pytest.approx(BRANCH_A_REVENUE, abs=CENT)
    january_totals = summary(uploader_api, f"?datasource={datasource}&start=2019-01-01&end=2019-01-31")
    assert january_totals["total_revenue"] == pytest.approx(JANUARY_REVENUE, abs=CENT)


def test_replace_upload_rewrites_only_its_days(uploader_api, real_file, tasks_inline, druid_engine, druid_names):
    """The same file again with mode=replace: the upload's days are rewritten, nothing is counted twice."""
    datasource = druid_names("replace")
    first = upload(uploader_api, real_file, datasource_name=datasource).json()["task_id"]
    assert status_of(uploader_api, first)["status"] == "succeeded"

    second = upload(uploader_api, real_file, datasource_name=datasource, mode="replace", force="true")
    status = status_of(uploader_api, second.json()["task_id"])

    assert status["status"] == "succeeded", status["message"]
    payload = druid_task(status["engine_task_id"])
    assert payload["spec"]["ioConfig"]["dropExisting"] is True
    granularity = payload["spec"]["dataSchema"]["granularitySpec"]
    assert granularity["intervals"] == ["2019-01-01T00:00:00.000Z/2019-03-31T00:00:00.000Z"]
    totals = summary(uploader_api, f"?datasource={datasource}")
    assert totals["engine"] == "druid"
    assert totals["total_revenue"] == pytest.approx(REVENUE, abs=CENT)
    assert (totals["lines"], totals["data_version"]) == (LINES, 2)
    [[lines]] = druid_select(datasource, "SUM(lines)")
    assert lines == LINES


@pytest.mark.django_db(transaction=True)
def test_pages_render_before_druid_sync_loaded_the_datasource(viewer, settings, druid_names, tmp_path):
    """Switched to Druid before `manage.py druid_sync`: Druid does not know the datasource
    ("Object not found"); the pages still render, saying what is missing."""
    from django.test import Client

    from dashboard.views import FILTER_OPTIONS_UNAVAILABLE
    from tests.analytics.publishing import sales_rows, synthetic_publish

    datasource = druid_names("unsynced")
    settings.ANALYTICS_ENGINE = "embedded"
    synthetic_publish(datasource=datasource, rows=sales_rows(start=dt.date(2024, 3, 1), days=3), workdir=tmp_path)
    settings.ANALYTICS_ENGINE = "druid"
    client = Client()
    client.force_login(viewer)

    response = client.get(f"/?datasource={datasource}")

    html = response.content.decode()
    assert response.status_code == 200, html[:2000]
    assert FILTER_OPTIONS_UNAVAILABLE in html
    assert "This panel could not be loaded (DruidRequestError)" in html
