"""Settings as a fresh process sees them: each test starts Python in a subprocess with exactly
the environment it gives, because settings are read once, at import."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

# A developer's .env must not leak into these checks: the environment passed is the whole truth.
PRELUDE = """
import json
import environ
environ.Env.read_env = lambda *args, **kwargs: None
import django
django.setup()
from django.conf import settings
from django.db import connection
"""
# Only what Python itself needs; every setting comes from the test.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def django_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` after django.setup() in a new Python process with only `env` set."""
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code],
        cwd=settings.BASE_DIR,
        env={
            **{name: os.environ[name] for name in INHERITED if name in os.environ},
            "DJANGO_SETTINGS_MODULE": "sales_analytics.settings",
            "PYTHONPATH": str(settings.BASE_DIR),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def django_json(code: str, **env: str) -> dict:
    """Run `code`, which prints one JSON object as its last line, and return that object."""
    completed = django_python(code, **env)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


SQLITE_REPORT = """
import sqlite3
from django.db import transaction

with connection.cursor() as cursor:
    pragmas = {}
    for pragma in ("journal_mode", "busy_timeout", "synchronous"):
        cursor.execute(f"PRAGMA {pragma}")
        pragmas[pragma] = cursor.fetchone()[0]

# IMMEDIATE takes the write lock as the transaction begins, before any write: another
# connection that wants to write must find the database locked.
with transaction.atomic():
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        locked_by_open_transaction = False
    except sqlite3.OperationalError as exc:
        locked_by_open_transaction = "locked" in str(exc)
    finally:
        other.close()

print(json.dumps({
    "engine": connection.settings_dict["ENGINE"],
    "vendor": connection.vendor,
    "name": str(connection.settings_dict["NAME"]),
    "transaction_mode_option": connection.settings_dict["OPTIONS"].get("transaction_mode"),
    "transaction_mode": connection.transaction_mode,
    "timeout": connection.settings_dict["OPTIONS"].get("timeout"),
    "locked_by_open_transaction": locked_by_open_transaction,
    **pragmas,
}))
"""


def test_sqlite_is_the_default_with_wal_immediate_and_busy_timeout(tmp_path: Path) -> None:
    report = django_json(SQLITE_REPORT, VAR_DIR=str(tmp_path), SECRET_KEY="settings-test-key")

    assert report["engine"] == "django.db.backends.sqlite3"
    assert report["vendor"] == "sqlite"
    assert report["name"] == str(tmp_path / "db.sqlite3")
    assert report["journal_mode"] == "wal"
    assert report["transaction_mode_option"] == "IMMEDIATE"
    assert report["transaction_mode"] == "IMMEDIATE"
    assert report["locked_by_open_transaction"] is True
    assert report["busy_timeout"] >= 5000
    assert report["timeout"] >= 5
    assert report["synchronous"] == 1  # NORMAL: safe with WAL, far fewer fsyncs than FULL
    assert (tmp_path / "db.sqlite3-wal").exists() or (tmp_path / "db.sqlite3").exists()


POSTGRES_REPORT = """
with connection.cursor() as cursor:
    cursor.execute("SELECT version()")
    version = cursor.fetchone()[0]
print(json.dumps({
    "vendor": connection.vendor,
    "driver": connection.Database.__name__,
    "version": version,
    "conn_max_age": connection.settings_dict["CONN_MAX_AGE"],
    "conn_health_checks": connection.settings_dict["CONN_HEALTH_CHECKS"],
    "options": sorted(connection.settings_dict.get("OPTIONS", {})),
}))
"""


@pytest.mark.postgres
def test_postgres_from_database_url_uses_persistent_connections_not_a_pool(tmp_path: Path) -> None:
    database_url = os.environ.get("DATABASE_URL") or pytest.fail("PostgreSQL is configured but not by DATABASE_URL")

    report = django_json(
        POSTGRES_REPORT, DATABASE_URL=database_url, VAR_DIR=str(tmp_path), SECRET_KEY="settings-test-key"
    )

    assert report["vendor"] == "postgresql"
    assert report["driver"] == "psycopg"  # psycopg 3, not psycopg2
    assert report["version"].startswith("PostgreSQL ")
    assert report["conn_max_age"] > 0
    assert report["conn_health_checks"] is True
    # Django refuses psycopg's pool together with CONN_MAX_AGE.
    assert "pool" not in report["options"]


@pytest.mark.parametrize("debug", ["0", "1"])
def test_startup_without_secret_key_fails_even_with_a_kept_key_file(tmp_path: Path, debug: str) -> None:
    """Secrets come only from the environment: the key file `make run` keeps is its launcher's business."""
    (tmp_path / "secret_key").write_text("kept-key-from-an-earlier-make-run\n")
    completed = django_python("print('started')", VAR_DIR=str(tmp_path), DEBUG=debug)

    assert completed.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set: secrets are read only from the environment." in (
        completed.stderr
    )
    assert "started" not in completed.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["secret_key"]


def test_secret_key_comes_from_the_environment(tmp_path: Path) -> None:
    print_key = "print(json.dumps({'key': settings.SECRET_KEY}))"
    assert django_json(print_key, VAR_DIR=str(tmp_path), SECRET_KEY="from-the-environment")["key"] == (
        "from-the-environment"
    )


TIME_ZONE_REPORT = "print(json.dumps({'time_zone': settings.TIME_ZONE, 'use_tz': settings.USE_TZ}))"


def test_the_display_time_zone_comes_from_the_environment_and_storage_stays_utc(tmp_path: Path) -> None:
    default = django_json(TIME_ZONE_REPORT, VAR_DIR=str(tmp_path), SECRET_KEY="settings-test-key")
    berlin = django_json(
        TIME_ZONE_REPORT, VAR_DIR=str(tmp_path), SECRET_KEY="settings-test-key", TIME_ZONE="Europe/Berlin"
    )

    assert default == {"time_zone": "UTC", "use_tz": True}
    assert berlin == {"time_zone": "Europe/Berlin", "use_tz": True}


def test_an_unknown_time_zone_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    completed = django_python(
        "print('started')", VAR_DIR=str(tmp_path), SECRET_KEY="settings-test-key", TIME_ZONE="Europe/Berln"
    )

    assert completed.returncode != 0
    assert "TIME_ZONE 'Europe/Berln' is not a time zone: use an IANA name" in completed.stderr
    assert "started" not in completed.stdout


def test_worker_is_replaced_after_a_task_that_passed_the_memory_limit(monkeypatch) -> None:
    from django_q.conf import Conf
    from django_q.worker import rss_check

    assert Conf.MAX_RSS == 400 * 1024  # Q_MAX_RSS_MB's default reaches django-q2, in KB
    monkeypatch.setattr(Conf, "MAX_RSS", 1024)
    assert rss_check()  # past the limit: the worker leaves its loop after the task and is replaced


def test_polars_returns_freed_memory_quickly_in_every_process_unless_told_otherwise(settings) -> None:
    import subprocess
    import sys

    from tests.processes import django_subprocess_env

    probe = "import sales_analytics, os; print(os.environ['_RJEM_MALLOC_CONF'])"
    env = {key: value for key, value in django_subprocess_env().items() if key != "_RJEM_MALLOC_CONF"}
    run = {"cwd": settings.BASE_DIR, "capture_output": True, "text": True, "check": True}
    default = subprocess.run([sys.executable, "-c", probe], env=env, **run)
    assert "dirty_decay_ms:1000" in default.stdout  # seconds, not jemalloc's 10 s default
    chosen = subprocess.run([sys.executable, "-c", probe], env={**env, "_RJEM_MALLOC_CONF": "narenas:1"}, **run)
    assert chosen.stdout.strip() == "narenas:1"
