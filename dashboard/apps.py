from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboards and alerts"

    def ready(self) -> None:
        from analytics.signals import publish_completed
        from ingestion.signals import task_failed

        publish_completed.connect(_on_publish, dispatch_uid="dashboard-alerts-on-publish")
        task_failed.connect(_on_publish, dispatch_uid="dashboard-alerts-on-task-failed")


def _on_publish(sender, *, datasource_name: str, **kwargs) -> None:
    """Signals only enqueue: alert evaluation runs as its own task (after a publish, or a failed
    upload, which the upload-quality rules watch)."""
    from dashboard.tasks import alerts_evaluate_queue

    alerts_evaluate_queue(datasource=datasource_name)
