"""Other OS processes (a `manage.py` command, a django-q2 cluster) that share the test
database and cache with the test process.

Tests that use these need `transactional_db`: rows must be committed before another
process can see them, and an open test transaction would hold SQLite's write lock.
Settings overridden inside a test (`settings` fixture) are not seen by the other process;
it reads the same environment as the test process, plus DATABASE_URL.
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"


def subprocess_database_url() -> str:
    """A DATABASE_URL for the database this test run uses (the test database, not the real one)."""
    db = connection.settings_dict
    engine = db["ENGINE"]
    name = str(db["NAME"])
    if engine == "django.db.backends.sqlite3":
        if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
            raise RuntimeError(
                "The SQLite test database is in memory, so no other process can see it: give it a file "
                "(DATABASES['default']['TEST']['NAME'], see django_db_modify_db_settings in tests/conftest.py)."
            )
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        credentials = ""
        if db.get("USER"):
            credentials = quote(str(db["USER"]), safe="")
            if db.get("PASSWORD"):
                credentials += ":" + quote(str(db["PASSWORD"]), safe="")
            credentials += "@"
        host = str(db.get("HOST") or "")
        options = {key: str(value) for key, value in (db.get("OPTIONS") or {}).items() if isinstance(value, str | int)}
        if host.startswith("/"):
            # A Unix socket folder does not fit in a URL's host part; psycopg takes it as an option.
            options["host"] = host
            host = ""
        netloc = credentials + host + (f":{db['PORT']}" if db.get("PORT") else "")
        query = f"?{urlencode(options)}" if options else ""
        return f"postgres://{netloc}/{quote(name, safe='')}{query}"
    raise NotImplementedError(f"No DATABASE_URL form for {engine}")


def django_subprocess_env() -> dict[str, str]:
    """os.environ plus DATABASE_URL pointing at the current test database.

    VAR_DIR and SECRET_KEY are already in os.environ (tests/bootstrap.py), so the other
    process also shares the file cache, the storage folder and the signing key.
    """
    return {**os.environ, "DATABASE_URL": subprocess_database_url(), "PYTHONUNBUFFERED": "1"}


def manage_py(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python manage.py ARGS` in another process against the test database; fails on a non-zero exit."""
    completed = subprocess.run(
        [sys.executable, str(MANAGE_PY), *args],
        cwd=settings.BASE_DIR,
        env=django_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited with {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
        )
    return completed


def _our_heartbeats(pid: int) -> list:
    from django_q.status import Stat

    # A cluster's Stat.pid is the pid of the `qcluster` process that started it.
    return [stat for stat in Stat.get_all() if stat.pid == pid]


def _stop(process: subprocess.Popen, grace_seconds: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_seconds)
    # The cluster's sentinel and workers are in the process group created for it: none may outlive the test.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def running_worker(*, timeout: float = 30, workers: int = 1) -> Iterator[subprocess.Popen]:
    """Run `manage.py qcluster` against the test database until the block ends.

    Entered once the cluster's heartbeat is visible in the shared cache, as
    `django_q.status.Stat.get_all()` (and the health check) see it.
    """
    from django_q.brokers import get_broker
    from django_q.status import Stat

    env = {**django_subprocess_env(), "Q_WORKERS": str(workers)}
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "qcluster"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        cluster_ids: set = set()
        try:
            deadline = time.monotonic() + timeout
            while not (heartbeats := _our_heartbeats(process.pid)):
                if process.poll() is not None or time.monotonic() > deadline:
                    _stop(process, grace_seconds=5)
                    log.seek(0)
                    raise AssertionError(
                        f"qcluster (exit code {process.returncode}) showed no heartbeat within {timeout}s:\n"
                        + log.read()
                    )
                time.sleep(0.1)
            cluster_ids.update(stat.cluster_id for stat in heartbeats)
            yield process
        finally:
            _stop(process, grace_seconds=15)
            # The cluster's last heartbeat outlives it by a few seconds; a test that follows
            # must not see a worker that is gone.
            cache = get_broker().cache
            if cache is not None:
                cache.delete_many([Stat.get_key(cluster_id) for cluster_id in cluster_ids])
