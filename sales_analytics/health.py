"""Health checks for `/api/health`: database and storage are vital, the rest degrade."""

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django_q.brokers import get_broker
from django_q.status import Stat

from analytics.engines import get_engine

VITAL_CHECKS = ("database", "storage")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


def _failure(what: str, exc: BaseException) -> CheckResult:
    # Only the exception's class: messages can carry hosts, keys or connection strings.
    return CheckResult(ok=False, detail=f"{what} ({type(exc).__name__})")


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _failure("database unreachable", exc)
    return CheckResult(ok=True, detail=f"{connection.vendor} reachable")


def check_storage() -> CheckResult:
    """Write, read back and delete a probe object."""
    probe_name = f"health/probe-{uuid.uuid4().hex}.txt"
    payload = uuid.uuid4().bytes
    try:
        saved_name = default_storage.save(probe_name, ContentFile(payload))
        try:
            with default_storage.open(saved_name, "rb") as probe:
                read_back = probe.read()
        finally:
            default_storage.delete(saved_name)
    except Exception as exc:
        return _failure("storage unreachable", exc)
    if read_back != payload:
        return CheckResult(ok=False, detail="storage returned different bytes than were written")
    return CheckResult(ok=True, detail="storage write, read and delete succeeded")


def check_engine() -> CheckResult:
    try:
        health = get_engine().health()
    except Exception as exc:
        return _failure("engine check failed", exc)
    return CheckResult(ok=health.ok, detail=health.detail)


def check_broker() -> CheckResult:
    try:
        reachable = bool(get_broker().ping())
    except Exception as exc:
        return _failure("task broker unreachable", exc)
    return CheckResult(ok=reachable, detail="task broker reachable" if reachable else "task broker unreachable")


def check_worker() -> CheckResult:
    """A running django-q2 cluster refreshes its heartbeat in the shared cache."""
    try:
        clusters = Stat.get_all()
    except Exception as exc:
        return _failure("worker status unavailable", exc)
    if not clusters:
        return CheckResult(ok=False, detail="no background worker is running; uploads will wait in the queue")
    return CheckResult(ok=True, detail=f"{len(clusters)} worker cluster(s) running")


HEALTH_CHECKS: dict[str, Callable[[], CheckResult]] = {
    "database": check_database,
    "storage": check_storage,
    "engine": check_engine,
    "broker": check_broker,
    "worker": check_worker,
}


@dataclass(frozen=True)
class HealthReport:
    status: str  # "ok", "degraded" or "down"
    checks: dict[str, dict]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "down" else 200


def health_report() -> HealthReport:
    results = {name: check() for name, check in HEALTH_CHECKS.items()}
    if any(not results[name].ok for name in VITAL_CHECKS):
        status = "down"
    elif all(result.ok for result in results.values()):
        status = "ok"
    else:
        status = "degraded"
    return HealthReport(status=status, checks={name: asdict(result) for name, result in results.items()})
