import uuid

from django.conf import settings
from django.db import models

from analytics.models import Datasource


class IngestionTask(models.Model):
    """One upload's journey from raw file to published rows; the single source of progress."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Stage(models.TextChoices):
        RECEIVING = "receiving"
        STORING_RAW = "storing_raw"
        READING = "reading"
        MAPPING = "mapping"
        VALIDATING = "validating"
        PUBLISHING = "publishing"
        DONE = "done"

    class Mode(models.TextChoices):
        APPEND = "append"
        REPLACE = "replace"

    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    datasource = models.ForeignKey(Datasource, on_delete=models.PROTECT, related_name="ingestion_tasks")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.RECEIVING)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)

    original_filename = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    raw_key = models.CharField(max_length=1024, blank=True)
    error_report_key = models.CharField(max_length=1024, blank=True)

    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.APPEND)
    options = models.JSONField(default=dict, blank=True, help_text="Upload options: mapping, date_format, sheet…")

    detected_format = models.CharField(max_length=16, blank=True)
    detected_encoding = models.CharField(max_length=32, blank=True)
    detected_delimiter = models.CharField(max_length=4, blank=True)
    detected_sheet = models.CharField(max_length=255, blank=True)
    detected_header_row = models.PositiveIntegerField(null=True, blank=True)
    detected_date_format = models.CharField(max_length=64, blank=True)
    applied_mapping = models.JSONField(default=dict, blank=True)

    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    rows_valid = models.PositiveBigIntegerField(null=True, blank=True)
    rows_rejected = models.PositiveBigIntegerField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="The first rejected rows.")
    notes = models.JSONField(default=list, blank=True, help_text="Things worth knowing, e.g. schema drift.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent per stage.")
    engine_task_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    # Who runs the task and when it last showed it is alive: a worker killed outright writes nothing,
    # so these tell the reaper (ingestion.liveness) that the task was left behind.
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.original_filename} → {self.datasource.name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES

    @property
    def stage_label(self) -> str:
        """The stage as people read it. A task still at `storing_raw` had its raw file stored during
        the upload: it waits for a worker (a new upload or a retry), is being taken up by one, or
        ended before any worker read it; "Storing raw" said none of these."""
        if self.stage != self.Stage.STORING_RAW:
            return self.get_stage_display()
        return _NOT_STARTED_LABELS.get(self.status, "Not started")


_NOT_STARTED_LABELS = {IngestionTask.Status.QUEUED: "Waiting for a worker", IngestionTask.Status.RUNNING: "Starting"}


class ColumnMapping(models.Model):
    """The last confirmed mapping of a datasource: canonical field → source column."""

    datasource = models.OneToOneField(Datasource, on_delete=models.CASCADE, related_name="column_mapping")
    mapping = models.JSONField(default=dict)
    source_columns = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"mapping for {self.datasource.name}"
