"""Request and task ids on log lines (JSON format) and on responses (X-Request-ID)."""

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED_REQUEST_ID = re.compile(r"r-[0-9a-f]{16}")

# Runs inside `manage.py shell`: one request through the whole middleware stack, then one
# log line written the way background tasks write theirs.
SHELL_SCRIPT = """
import logging
from django.test import Client
from sales_analytics.observability import log_context

Client().get("/api/health", HTTP_X_REQUEST_ID="caller-id-123")
Client().get("/api/no-such-endpoint", HTTP_X_REQUEST_ID="caller-id-404")
with log_context("t-task-456"):
    logging.getLogger("ingestion.tasks").info("task step done")
"""


@pytest.fixture(scope="module")
def json_log_lines(tmp_path_factory) -> list[dict]:
    var_dir = tmp_path_factory.mktemp("logging-var")
    environment = {
        **os.environ,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "VAR_DIR": str(var_dir),
        # A fresh SQLite file: /api/health only needs `SELECT 1` and a writable storage folder.
        "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
        "ALLOWED_HOSTS": "testserver",
    }
    for name in ("REDIS_URL", "S3_BUCKET", "ANALYTICS_ENGINE", "DEBUG"):
        environment.pop(name, None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "--no-startup", "--verbosity=0", "-c", SHELL_SCRIPT],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"nothing was logged to stdout; stderr: {result.stderr}"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"stdout line is not JSON: {line!r}")
    return parsed


def test_every_stdout_line_is_a_json_object_with_a_request_id(json_log_lines):
    for record in json_log_lines:
        assert isinstance(record, dict)
        assert record.get("request_id"), record
        assert {"levelname", "name", "message", "asctime"} <= record.keys()


def test_the_access_line_carries_the_callers_request_id(json_log_lines):
    access = [
        record
        for record in json_log_lines
        if record["name"] == "sales_analytics.access" and record["request_id"] == "caller-id-123"
    ]
    assert len(access) == 1
    assert access[0]["request_id"] == "caller-id-123"
    assert access[0]["message"].startswith("GET /api/health ")
    assert access[0]["status"] in (200, 503)


def test_django_s_response_log_line_carries_the_request_s_id(json_log_lines):
    # Django writes it once the middleware has returned, outside the request's log context.
    not_found = [record for record in json_log_lines if record["name"] == "django.request"]
    assert [(record["message"], record["request_id"]) for record in not_found] == [
        ("Not Found: /api/no-such-endpoint", "caller-id-404")
    ]


def test_lines_written_inside_log_context_carry_the_task_id(json_log_lines):
    task_lines = [record for record in json_log_lines if record["message"] == "task step done"]
    assert [record["request_id"] for record in task_lines] == ["t-task-456"]


@pytest.mark.django_db
def test_a_response_without_a_caller_id_gets_a_generated_one(client):
    response = client.get("/api/health")
    assert GENERATED_REQUEST_ID.fullmatch(response["X-Request-ID"])


@pytest.mark.django_db
def test_each_request_gets_its_own_id(client):
    first = client.get("/api/health")["X-Request-ID"]
    second = client.get("/api/health")["X-Request-ID"]
    assert first != second


@pytest.mark.django_db
@pytest.mark.parametrize("caller_id", ["abc-123", "7f3e2a9c.retry_2", "A" * 64])
def test_a_safe_caller_id_is_echoed(client, caller_id):
    response = client.get("/api/health", headers={"X-Request-ID": caller_id})
    assert response["X-Request-ID"] == caller_id


@pytest.mark.django_db
@pytest.mark.parametrize(
    "caller_id",
    [
        "has spaces",
        "line\nbreak",
        "trailing-newline\n",
        "forged\r\nSet-Cookie: x=1",
        '"quoted"',
        "<script>",
        "A" * 65,
        "",
    ],
)
def test_an_unsafe_caller_id_is_replaced(client, caller_id):
    response = client.get("/api/health", headers={"X-Request-ID": caller_id})
    assert response["X-Request-ID"] != caller_id
    assert GENERATED_REQUEST_ID.fullmatch(response["X-Request-ID"])


FORGED = "x%0a2026-11-26 12:00:00,000 INFO sales_analytics.access [r-forged] POST /admin/ 200"


@pytest.mark.django_db
def test_access_log_escapes_control_characters_in_the_path(caplog) -> None:
    from django.test import Client

    with caplog.at_level(logging.INFO, logger="sales_analytics.access"):
        Client().get(f"/api/{FORGED}%0d%1b%e2%80%a8")
    (line,) = [record.getMessage() for record in caplog.records if record.name == "sales_analytics.access"]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert line.startswith("GET /api/x\\x0a2026-11-26 12:00:00,000 INFO sales_analytics.access [r-forged] POST /admin/")
    assert line.split(" ")[-2:-1] == ["404"]
    assert "\\x0d\\x1b\\u2028 404" in line


def test_every_log_line_escapes_request_derived_arguments() -> None:
    """File names, error texts and the like reach log lines as arguments: one record, one line."""
    from django.conf import settings as django_settings

    from sales_analytics.observability import ContextFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter(django_settings.LOGGING["formatters"]["text"]["format"]))
    logger = logging.getLogger("tests.log_injection")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("reading %s failed after %d s: %s", "a.csv\nERROR forged line", 3, ValueError("bad\r\nvalue"))
        logger.info("%(name)s uploaded", {"name": "b.csv\x85forged"})
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("reading a.csv\\x0aERROR forged line failed after 3 s: bad\\x0d\\x0avalue")
    assert lines[1].endswith("b.csv\\x85forged uploaded")
