"""Shared fixtures, and the service rules: a test marked `postgres`, `s3` or `druid` runs
against the real service when its variables are set and is skipped with a reason otherwise;
with REQUIRE_SERVICES=1 (CI) a missing service fails the test and any skip fails the run."""

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import UserFactory

SERVICE_MARKERS = ("postgres", "s3", "druid")
# CI lays `shared/` beside the clone, as on a developer's machine.
REAL_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "supermarket_sales.csv"


def service_available(service: str) -> tuple[bool, str]:
    """Whether the real service is configured for this run, and what to set if not."""
    if service == "postgres":
        ok = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
        return ok, "DATABASE_URL does not point at PostgreSQL (run `make services`)"
    if service == "s3":
        return bool(settings.S3_BUCKET), "S3_BUCKET is not set (run `make services`)"
    if service == "druid":
        return bool(os.environ.get("DRUID_ROUTER_URL")), "DRUID_ROUTER_URL is not set (run `make services`)"
    raise ValueError(service)


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


_ran_against: Counter[str] = Counter()


def pytest_runtest_setup(item: pytest.Item) -> None:
    for service in SERVICE_MARKERS:
        if item.get_closest_marker(service) is None:
            continue
        ok, reason = service_available(service)
        if ok:
            continue
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.passed:
        for service in SERVICE_MARKERS:
            if item.get_closest_marker(service) is not None:
                _ran_against[service] += 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.section("services")
    for service in SERVICE_MARKERS:
        ok, reason = service_available(service)
        state = "configured" if ok else f"not configured: {reason}"
        terminalreporter.write_line(f"{service}: {_ran_against[service]} tests passed against it ({state})")
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    storage = "S3" if settings.S3_BUCKET else "local folder"
    terminalreporter.write_line(f"whole suite ran with database={engine}, storage={storage}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if services_required() and skipped:
        reporter.write_line(f"REQUIRE_SERVICES=1: {skipped} skipped test(s) fail the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def viewer(role_groups):
    return UserFactory(role="viewer")


@pytest.fixture
def uploader(role_groups):
    return UserFactory(role="uploader")


@pytest.fixture
def admin_user(role_groups):
    return UserFactory(role="admin", is_staff=True)


@pytest.fixture
def roleless_user(role_groups):
    return UserFactory()


def login_post(client: Client, *, username: str, password: str, path: str = "/accounts/login/", **extra):
    """Post the login form as a browser does: urlencoded (multipart from an anonymous client is refused)."""
    return client.post(
        path,
        urlencode({"username": username, "password": password}),
        content_type="application/x-www-form-urlencoded",
        **extra,
    )


def token_client(raw_token: str) -> Client:
    """A test client that authenticates like a program: bearer token, no session."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")


@pytest.fixture
def viewer_api(viewer) -> Client:
    from accounts.services import api_token_create

    return token_client(api_token_create(user=viewer)[1])


@pytest.fixture
def uploader_api(uploader) -> Client:
    from accounts.services import api_token_create

    return token_client(api_token_create(user=uploader)[1])


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _plain_static_storage(settings) -> None:
    # The manifest storage needs `collectstatic` first; tests render templates without it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request: pytest.FixtureRequest) -> None:
    """Keep the SQLite test database in a file under VAR_DIR, not in memory.

    Tests that start other processes (tests/processes.py: a worker, `manage.py shell`) must
    reach the same database; Django's default SQLite test database is in-memory and private
    to this process.
    """
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3" and not database.get("TEST", {}).get("NAME"):
        database.setdefault("TEST", {})["NAME"] = str(settings.VAR_DIR / "test.sqlite3")
    # pytest-django's own override point: xdist/tox workers get a suffixed database each.
    request.getfixturevalue("django_db_modify_db_settings_parallel_suffix")


@pytest.fixture(scope="session", autouse=True)
def _test_database_sessions_ended(django_db_setup, django_db_blocker) -> Iterator[None]:
    """End other sessions on the PostgreSQL test database before it is dropped.

    The live server (browser tests) answers each request in a thread of its own, whose connection
    can outlive the test; dropping the database then failed ("is being accessed by other users")
    and left it behind. Runs before pytest-django's teardown: it depends on its setup.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def role_groups(db) -> None:
    """The role groups, also in a `transactional_db` test that runs after another one.

    A transactional test ends by flushing every table, rows from data migrations included, and
    `serialized_rollback` then collides with the content types the flush recreated. This reruns
    the roles migration's own (idempotent) code instead; request it before the role fixtures.
    """
    from importlib import import_module

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    roles_migration = import_module("accounts.migrations.0002_roles")
    roles_migration.create_roles(loader.project_state(("accounts", "0002_roles")).apps, None)
    ingestion_grants = import_module("ingestion.migrations.0002_admin_role_permissions")
    ingestion_grants.grant(loader.project_state(("ingestion", "0002_admin_role_permissions")).apps, None)
    alert_grants = import_module("dashboard.migrations.0002_admin_role_alert_permissions")
    alert_grants.grant(loader.project_state(("dashboard", "0002_admin_role_alert_permissions")).apps, None)


@pytest.fixture
def tasks_inline(monkeypatch):
    """Queued tasks run at once in this process, through django-q2's real entry point."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def real_file() -> Path:
    assert REAL_FILE.exists(), f"missing {REAL_FILE}"
    return REAL_FILE


def storage_backend_class() -> type:
    """The class of the storage in use (a local folder, or S3 in CI), for tests that make it fail."""
    from django.core.files.storage import default_storage
    from django.utils.functional import empty

    if default_storage._wrapped is empty:
        default_storage._setup()
    return type(default_storage._wrapped)


def stored_keys(prefix: str) -> list[str]:
    """Every key stored under `prefix`, whatever the storage (listdir works for local folders and S3)."""
    from django.core.files.storage import default_storage

    try:
        folders, files = default_storage.listdir(prefix)
    except FileNotFoundError:  # a local folder not made yet
        return []
    keys = [f"{prefix}/{name}" for name in files]
    for folder in folders:
        keys += stored_keys(f"{prefix}/{folder}")
    return sorted(keys)
