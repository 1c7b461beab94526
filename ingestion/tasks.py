"""Background entry points (django-q2): take an id, call one service."""

import datetime as dt
import logging

from django.conf import settings
from django_q.tasks import async_task

from sales_analytics.observability import log_context

logger = logging.getLogger(__name__)


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


def worker_warm_up(sender: object, **kwargs) -> None:
    """django-q2's `post_spawn`: a new worker imports the pipeline and readies validation while
    it is idle. Workers are replaced after a large upload (Q_MAX_RSS_MB), so otherwise the next
    upload's task paid ~0.4 s of imports (Pandera's backends bring in Hypothesis) in its run."""
    try:
        import ingestion.pipeline  # noqa: F401  (the import is the warm-up)
        from ingestion.transform import validation_warm_up

        validation_warm_up()
    except Exception:  # a worker that dies here is respawned, and would die again, forever
        logger.exception("worker warm-up failed; its first task will import what it needs")
