"""Reads for ingestion: tasks as the API and pages show them."""

from django.db.models import QuerySet

from analytics.models import datasource_name_possible
from ingestion.models import IngestionTask


def ingestion_task_list(*, status: str | None = None, datasource: str | None = None) -> QuerySet[IngestionTask]:
    tasks = IngestionTask.objects.select_related("datasource").order_by("-created_at")
    if status:
        tasks = tasks.filter(status=status)
    if datasource:
        if not datasource_name_possible(datasource):
            return tasks.none()
        tasks = tasks.filter(datasource__name=datasource)
    return tasks


def ingestion_task_get(*, task_id: str) -> IngestionTask | None:
    return IngestionTask.objects.select_related("datasource").filter(pk=task_id).first()
