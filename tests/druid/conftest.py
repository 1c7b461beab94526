"""Fixtures for tests against the real Druid cluster from `make services` (DRUID_ROUTER_URL).

Every test works on Druid datasources of its own (a random suffix) and drops them at the end:
their segments are marked unused and a kill task removes them, and the test's S3 objects are
deleted, so reruns start clean.
"""

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from django.conf import settings

from analytics.engines.druid import sql_parameter

ROUTER_TIMEOUT = 30
WHOLE_TIME = "1000-01-01/3000-01-01"


def router() -> str:
    return os.environ.get("DRUID_ROUTER_URL", "http://127.0.0.1:8888").rstrip("/")


def druid_sql_direct(sql: str, params: list | tuple = ()) -> list[list]:
    """Rows straight from Druid's SQL API (not through the app's engine), exact distinct counts."""
    response = requests.post(
        router() + "/druid/v2/sql",
        json={
            "query": sql,
            "parameters": [sql_parameter(value) for value in params],
            "context": {"useApproximateCountDistinct": False, "useApproximateTopN": False},
            "resultFormat": "array",
        },
        timeout=ROUTER_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


def druid_select(datasource: str, columns: str, *, where: str = "", params: list | tuple = ()) -> list[list]:
    """`SELECT columns FROM datasource [WHERE where]` straight from Druid's SQL API; values stay bound."""
    sql = f'SELECT {columns} FROM "{datasource}"' + (f" WHERE {where}" if where else "")  # noqa: S608
    return druid_sql_direct(sql, params)


def druid_task(task_id: str) -> dict:
    response = requests.get(f"{router()}/druid/indexer/v1/task/{task_id}", timeout=ROUTER_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["payload"]


def druid_task_state(task_id: str) -> str:
    response = requests.get(f"{router()}/druid/indexer/v1/task/{task_id}/status", timeout=ROUTER_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["status"]["status"]


def druid_datasource_drop(name: str) -> None:
    """Mark every segment unused, then kill them (deep storage and metadata)."""
    requests.delete(f"{router()}/druid/coordinator/v1/datasources/{name}", timeout=ROUTER_TIMEOUT)
    requests.post(
        f"{router()}/druid/indexer/v1/task",
        json={"type": "kill", "dataSource": name, "interval": WHOLE_TIME},
        timeout=ROUTER_TIMEOUT,
    )


def s3_prefixes_delete(datasource: str) -> None:
    if not settings.S3_BUCKET:
        return
    from storages.backends.s3 import S3Storage

    from sales_analytics.settings import s3_storage_options

    bucket = S3Storage(**s3_storage_options()).bucket
    for prefix in ("raw", "curated", "reports"):
        bucket.objects.filter(Prefix=f"{prefix}/{datasource}/").delete()


@pytest.fixture
def druid_names() -> Iterator[Callable[[str], str]]:
    """`druid_names("label")` gives a fresh datasource name; each is dropped from Druid and S3 after the test."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield make
    for name in made:
        druid_datasource_drop(name)
        s3_prefixes_delete(name)


@pytest.fixture
def druid_engine(settings) -> None:
    """ANALYTICS_ENGINE=druid for this test, with fast retries."""
    settings.ANALYTICS_ENGINE = "druid"
    settings.DRUID_PUBLISH_TIMEOUT_SECONDS = 300
