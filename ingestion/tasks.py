"""Background entry points (django-q2): take an id, call one service."""

import datetime as dt

from django.conf import settings
from django_q.tasks import async_task

from sales_analytics.observability import log_context


def ingestion_task_execute(task_id: str) -> None:
    from ingestion.services import ingestion_task_run

    with log_context(f"t-{task_id}"):
        ingestion_task_run(task_id=task_id)


def ingestion_task_queue(*, task_id: str) -> None:
    async_task("ingestion.tasks.ingestion_task_execute", task_id, task_name=f"ingest {task_id}", group="ingestion")


def ingestion_task_engine_rows_remove_task(task_id: str) -> None:
    from ingestion.services import ingestion_task_engine_rows_remove

    with log_context(f"t-{task_id}"):
        ingestion_task_engine_rows_remove(task_id=task_id)


def ingestion_task_engine_rows_remove_queue(*, task_id: str) -> None:
    async_task(
        "ingestion.tasks.ingestion_task_engine_rows_remove_task",
        task_id,
        task_name=f"remove engine rows of {task_id}",
        group="ingestion",
    )


def ingestion_tasks_reap_task() -> int:
    from ingestion.services import ingestion_tasks_reap

    return ingestion_tasks_reap()


def disk_sweep_task() -> str:
    """The daily sweep (dashboard.schedules): stored files no version needs, killed runs' work folders."""
    from ingestion.housekeeping import disk_sweep

    return disk_sweep(grace=dt.timedelta(hours=settings.FILES_SWEEP_GRACE_HOURS)).describe()
