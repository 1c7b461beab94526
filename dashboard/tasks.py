"""Background entry points for alerts (django-q2): take ids or names, call one service."""

import datetime as dt

from django_q.tasks import async_task

from sales_analytics.observability import log_context


def alerts_evaluate_task(datasource: str, day: str | None = None) -> None:
    from dashboard.alerts import alerts_evaluate

    with log_context(f"t-alerts-{datasource}"):
        alerts_evaluate(datasource=datasource, day=dt.date.fromisoformat(day) if day else None)


def alerts_evaluate_all_task() -> None:
    from analytics.catalogue import datasource_list
    from dashboard.models import AlertRule

    # A datasource with rules but no published data yet (every upload failed) is evaluated too.
    names = {datasource.name for datasource in datasource_list()}
    names |= set(AlertRule.objects.filter(enabled=True).values_list("datasource", flat=True))
    for name in sorted(names):
        alerts_evaluate_task(name)


def notifications_send_task() -> None:
    from dashboard.notifications import notifications_send_due

    with log_context("t-notifications"):
        notifications_send_due()


def notifications_queue() -> None:
    async_task("dashboard.tasks.notifications_send_task", task_name="send alert notifications", group="alerts")


def alerts_evaluate_queue(*, datasource: str) -> None:
    async_task("dashboard.tasks.alerts_evaluate_task", datasource, task_name=f"alerts {datasource}", group="alerts")
