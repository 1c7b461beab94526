"""Reads for ingestion: tasks as the API and pages show them."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from accounts.selectors import user_allowed_branches
from analytics.models import datasource_name_possible
from ingestion.models import IngestionTask


def ingestion_tasks_visible(*, user: AbstractBaseUser | None) -> QuerySet[IngestionTask]:
    """The tasks `user` may see: all of them, or a branch-scoped user's own uploads only.

    A task shows its file's row counts, rejected values, error report and raw file, which hold
    every branch's numbers: a scoped user never sees another branch's (DESIGN.md, security).
    """
    tasks = IngestionTask.objects.select_related("datasource")
    if user_allowed_branches(user=user) is None:
        return tasks
    return tasks.filter(created_by_id=user.pk) if user is not None and user.is_authenticated else tasks.none()


def ingestion_task_list(
    *, user: AbstractBaseUser | None, status: str | None = None, datasource: str | None = None
) -> QuerySet[IngestionTask]:
    tasks = ingestion_tasks_visible(user=user).order_by("-created_at")
    if status:
        tasks = tasks.filter(status=status)
    if datasource:
        if not datasource_name_possible(datasource):
            return tasks.none()
        tasks = tasks.filter(datasource__name=datasource)
    return tasks


def ingestion_task_get(*, user: AbstractBaseUser | None, task_id: str) -> IngestionTask | None:
    return ingestion_tasks_visible(user=user).filter(pk=task_id).first()
