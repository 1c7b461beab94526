"""Recurring work, defined in code and installed by `manage.py install_schedules` (safe to re-run)."""

from dataclasses import dataclass

from django_q.models import Schedule


@dataclass(frozen=True)
class RecurringTask:
    name: str
    func: str
    minutes: int


RECURRING_TASKS: tuple[RecurringTask, ...] = (
    RecurringTask("Evaluate alert rules", "dashboard.tasks.alerts_evaluate_all_task", 60),
    RecurringTask("Send and retry alert notifications", "dashboard.tasks.notifications_send_task", 5),
    RecurringTask("Fail tasks a vanished worker left running", "ingestion.tasks.ingestion_tasks_reap_task", 1),
    # The name stays: schedules are found by it (one installed before keeps its row, with this func).
    RecurringTask("Delete files no data version needs", "ingestion.tasks.disk_sweep_task", 24 * 60),
)


def schedules_install() -> list[Schedule]:
    """Create or update each recurring task; schedules no longer defined here are left alone."""
    installed = []
    for task in RECURRING_TASKS:
        schedule, _ = Schedule.objects.update_or_create(
            name=task.name,
            defaults={"func": task.func, "schedule_type": Schedule.MINUTES, "minutes": task.minutes, "repeats": -1},
        )
        installed.append(schedule)
    return installed
