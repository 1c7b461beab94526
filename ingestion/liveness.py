"""Is the worker running a task still there? The task row records the worker's host and pid when
it starts and a heartbeat while it runs: a worker killed outright (kill -9, out of memory, a native
crash) writes nothing more, so these are how the reaper notices the task it left behind."""

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from ingestion.models import IngestionTask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    host: str
    pid: int


def this_worker() -> Worker:
    return Worker(host=socket.gethostname()[:255], pid=os.getpid())


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine. A zombie (dead, not yet collected by
    its parent: django-q2's sentinel collects a killed worker only on its next round) is not."""
    if pid <= 0:
        return False  # 0 and negative pids name process groups to os.kill
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process, alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal found it
    state = stat.rpartition(")")[2].split()[:1]
    return state not in (["Z"], ["X"])


def worker_lost_after() -> dt.timedelta:
    return dt.timedelta(seconds=settings.INGEST_WORKER_LOST_SECONDS)


def heartbeat_interval() -> float:
    """Seconds between heartbeats: several fit in `worker_lost_after`, so one slow write
    (a busy database) does not make a live worker look lost."""
    return max(settings.INGEST_WORKER_LOST_SECONDS / 6, 0.5)


def stale_without_heartbeat_after() -> dt.timedelta:
    """A task started before workers kept a heartbeat: past django-q2's time limit, which kills
    the worker without a word to the task, no run can be alive."""
    return dt.timedelta(seconds=settings.Q_CLUSTER["timeout"]) + dt.timedelta(minutes=5)


def task_worker_gone(
    *,
    task: IngestionTask,
    now: dt.datetime,
    here: Worker,
    alive: Callable[[int], bool] = process_alive,
) -> str | None:
    """Why the worker of this running task is gone (a phrase for the task's message), or None
    while it may still be running it."""
    if task.status != IngestionTask.Status.RUNNING:
        return None
    if task.worker_pid and task.worker_host == here.host and not alive(task.worker_pid):
        return f"its process {task.worker_pid} on {task.worker_host} no longer exists"
    if task.heartbeat_at is not None:
        silent = now - task.heartbeat_at
        if silent > worker_lost_after():
            return f"it gave no sign of life for {int(silent.total_seconds())} s"
        return None
    if task.started_at is not None and now - task.started_at > stale_without_heartbeat_after():
        return f"it was still running {int((now - task.started_at).total_seconds() // 60)} minutes after it started"
    return None


class TaskHeartbeat:
    """Refreshes a running task's `heartbeat_at` from a thread of its own, so that a long single
    step that writes no progress (one large sheet read, publishing) does not look like a lost
    worker. It beats only while the task is still this run's (`attempt`)."""

    def __init__(self, *, task_id: object, attempt: int, interval: float | None = None) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.interval = heartbeat_interval() if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ingest-heartbeat", daemon=True)

    def __enter__(self) -> "TaskHeartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # A beat waiting on a busy database must not hold up the task's end: the thread is a
        # daemon and writes nothing once the task is no longer running.
        self._thread.join(timeout=self.interval)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    beating = IngestionTask.objects.filter(
                        pk=self.task_id, status=IngestionTask.Status.RUNNING, attempts=self.attempt
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError:
                    logger.warning("task %s: its heartbeat could not be written", self.task_id, exc_info=True)
                    continue
                if not beating:
                    return  # finished, cancelled or reaped: nothing left to keep alive
        finally:
            connection.close()  # this thread's own connection
