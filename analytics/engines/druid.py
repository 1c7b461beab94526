"""Apache Druid, reached through its router: the SQL API for queries, the task API for publishing.

Druid keeps the rows of a datasource rolled up by day at ingestion (analytics.engines.druid_ingestion),
with one metric column per additive part of analytics.metrics, named like the part. Queries go
through the same builder as the embedded engine (analytics.sql.compile_spec) with this dialect.
"""

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings

from analytics.catalogue import Snapshot
from analytics.engines import EngineError, EngineHealth, EngineProgress
from analytics.metrics import ADDITIVE_PARTS
from analytics.models import Rollup
from analytics.query import Grain
from analytics.sql import Source, quote

logger = logging.getLogger(__name__)

# Seconds before the first retry of an unreachable router; doubled for each further retry.
BACKOFF_SECONDS = 0.5
# HTTP statuses that mean "try again": the router could not reach the service behind it.
RETRY_STATUSES = frozenset({502, 503})
QUERY_CONTEXT = {
    # Exact answers only (DESIGN.md): distinct counts and rankings are never approximated.
    "useApproximateCountDistinct": False,
    "useApproximateTopN": False,
    "sqlTimeZone": "Etc/UTC",
}

# Every part is a rolled-up metric column of the same name, re-summed at query time, except
# `invoices`: as analytics.metrics defines it, the exact number of distinct invoice ids plus one
# per line without an id, computed from the `invoice_id` dimension and the `lines` count.
PART_SQL: dict[str, str] = {part: f"SUM({quote(part)})" for part in ADDITIVE_PARTS} | {
    # Rows loaded by a release before this column have none (NULL): their cell's revenue counts
    # when the cell has a gross profit. Exact unless one Druid cell (a day, an hour and every
    # string dimension alike, invoice id included) mixed lines with and without one;
    # `manage.py druid_sync` reloads such rows with the column.
    "revenue_with_profit": 'SUM(COALESCE("revenue_with_profit", '
    'CASE WHEN "gross_profit_sum" IS NOT NULL THEN "revenue_sum" END))',
    # Druid turns the CASE into a filtered aggregator, which is NULL (not 0) when no line lacks an id.
    "invoices": 'COUNT(DISTINCT "invoice_id") '
    '+ COALESCE(SUM(CASE WHEN "invoice_id" IS NULL THEN "lines" ELSE 0 END), 0)',
}


class DruidUnavailable(EngineError):
    code = "druid_unavailable"


class DruidTimeout(DruidUnavailable):
    """Druid took the request but did not answer in time."""


class DruidRequestError(EngineError):
    """Druid answered, with an error (a refused query or task, an unknown datasource…)."""

    code = "druid_error"

    def __init__(self, detail: str, *, status: int, body: Any = None) -> None:
        super().__init__(detail)
        self.status = status
        self.body = body


class DruidIngestionFailed(EngineError):
    code = "druid_ingestion_failed"


def router_url() -> str:
    return settings.DRUID_ROUTER_URL.rstrip("/")


def router_url_shown() -> str:
    """The router's URL without any user or password in it, for messages and logs."""
    parts = urlsplit(router_url())
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


def druid_datasource(name: str) -> str:
    """The Druid datasource that holds an analytics datasource's rows (the same name)."""
    return name


def druid_call(
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> requests.Response:
    """One HTTP call to the router, retried with backoff while the router is unreachable.

    Any answer from Druid (even an error) is returned; only "no answer" is retried. A POST is
    safe to retry here: tasks carry deterministic ids, which Druid refuses to run twice.
    """
    retries = settings.DRUID_RETRIES if retries is None else retries
    timeout = settings.DRUID_TIMEOUT_SECONDS if timeout is None else timeout
    url = router_url() + path
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            response = requests.request(method, url, json=json, params=params, timeout=timeout)
        except requests.ReadTimeout:
            # Druid got the request and is working on it: asking again would only pile up work.
            raise DruidTimeout(
                f"Druid's router at {router_url_shown()} did not answer within {timeout:g} s — raise "
                "DRUID_TIMEOUT_SECONDS or check that the Druid cluster is not overloaded."
            ) from None
        except requests.RequestException as exc:
            reason = type(exc).__name__
        else:
            if response.status_code not in RETRY_STATUSES:
                return response
            reason = f"HTTP {response.status_code}"
        logger.warning("Druid %s %s: no answer (%s), attempt %s of %s", method, path, reason, attempt + 1, retries + 1)
    raise DruidUnavailable(
        f"Druid's router at {router_url_shown()} did not answer after {retries + 1} attempts ({reason}) — "
        "check DRUID_ROUTER_URL and that the Druid cluster is running."
    )


def druid_error_text(response: requests.Response) -> str:
    """Druid's own error message from an error response (JSON or plain text)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("errorMessage", "error", "message"):
            if body.get(key):
                return str(body[key])[:500]
    return str(body)[:500]


def sql_parameter(value: Any) -> dict:
    """A value as one of Druid's typed SQL parameters."""
    if isinstance(value, bool):
        return {"type": "BOOLEAN", "value": value}
    if isinstance(value, int):
        return {"type": "BIGINT", "value": value}
    if isinstance(value, float):
        return {"type": "DOUBLE", "value": value}
    if isinstance(value, dt.datetime):
        return {"type": "TIMESTAMP", "value": value.strftime("%Y-%m-%d %H:%M:%S")}
    if isinstance(value, dt.date):
        return {"type": "TIMESTAMP", "value": f"{value.isoformat()} 00:00:00"}
    if isinstance(value, str):
        return {"type": "VARCHAR", "value": value}
    raise TypeError(f"Druid SQL cannot take a {type(value).__name__} parameter.")


def druid_sql(sql: str, params: list, *, context: dict | None = None) -> list[tuple]:
    """Rows of a Druid SQL query with bound parameters; TIMESTAMP columns come back as naive UTC datetimes."""
    body = {
        "query": sql,
        "parameters": [sql_parameter(value) for value in params],
        "context": {**QUERY_CONTEXT, "timeout": settings.DRUID_TIMEOUT_SECONDS * 1000, **(context or {})},
        "resultFormat": "array",
        "header": True,
        "sqlTypesHeader": True,
    }
    response = druid_call("POST", "/druid/v2/sql", json=body)
    if response.status_code != 200:
        raise DruidRequestError(
            f"Druid refused the query: {druid_error_text(response)}", status=response.status_code, body=response.text
        )
    _names, types, *rows = response.json()
    timestamps = [index for index, sql_type in enumerate(types) if sql_type == "TIMESTAMP"]
    if not timestamps:
        return [tuple(row) for row in rows]
    return [_with_datetimes(row, timestamps) for row in rows]


def _with_datetimes(row: list, indexes: list[int]) -> tuple:
    for index in indexes:
        if row[index] is not None:
            row[index] = dt.datetime.fromisoformat(row[index]).replace(tzinfo=None)
    return tuple(row)


class DruidDialect:
    name = "druid"
    date_column = "__time"
    time_grains = {grain: f"TIME_FLOOR({{column}}, '{grain.value}')" for grain in Grain}
    # `hour` (0–23) is stored at ingestion from the sale's time; HOUR is a keyword, so it is quoted.
    virtual_dimensions = {"weekday": "TIME_EXTRACT(__time, 'ISODOW')", "hour": '"hour"'}

    def parameter(self, params: list, value: Any) -> str:
        params.append(value)  # typed when sent (sql_parameter)
        return "?"

    def date_range(self, params: list, start: dt.date | None, end: dt.date | None) -> list[str]:
        # __time is midnight UTC of the sale's day: whole days are [start, end + 1 day).
        clauses = []
        if start is not None:
            clauses.append(f"{self.date_column} >= {self.parameter(params, start)}")
        if end is not None and end < dt.date.max:
            clauses.append(f"{self.date_column} < {self.parameter(params, end + dt.timedelta(days=1))}")
        return clauses

    def order_term(self, sql: str, *, direction: str | None = None) -> str:
        # Druid sorts NULL lowest and refuses "ASC NULLS LAST": descending already puts NULLs
        # last; ascending sorts on "is it NULL" first.
        if direction == "DESC":
            return f"{sql} DESC"
        return f"{sql} IS NULL, {sql}" + (f" {direction}" if direction else "")


class DruidEngine:
    name = "druid"
    dialect = DruidDialect()
    uses_rollup_files = False
    loads_before_switch = True
    title = "Druid"

    def health(self) -> EngineHealth:
        from analytics.engines.druid_preflight import druid_health

        return druid_health()

    def source(self, *, snapshot: Snapshot, rollup: Rollup | None) -> Source:
        # Druid rolled the rows up at ingestion: every question reads the one datasource.
        table = quote(druid_datasource(snapshot.datasource.name))
        return Source(name="druid", table_sql=table, part_sql=PART_SQL)

    def execute(self, sql: str, params: list) -> list[tuple]:
        return druid_sql(sql, params)

    def publish(
        self,
        *,
        request: Any,
        check_cancelled: Callable[[], None] | None = None,
        on_progress: EngineProgress | None = None,
    ) -> str:
        from analytics.engines.druid_ingestion import upload_ingest

        return upload_ingest(request=request, check_cancelled=check_cancelled, on_progress=on_progress)

    def publish_undo(self, *, datasource_name: str, upload_id: Any) -> bool:
        from analytics.engines.druid_sync import upload_unload

        return upload_unload(datasource_name=datasource_name, upload_id=upload_id) is not None
