"""Signals ingestion sends; receivers only enqueue (STYLE.md)."""

from django.dispatch import Signal

# A task ended `failed`: kwargs datasource_name, task_id.
task_failed = Signal()
