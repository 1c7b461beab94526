"""Alert rules and the events they open."""

from django.conf import settings
from django.db import models

from dashboard.webhooks import webhook_url_validate


class AlertRule(models.Model):
    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "Threshold (above / below a value)"
        CHANGE = "change", "Change vs an earlier period"
        ANOMALY = "anomaly", "Anomaly vs the same weekday in past weeks"
        FRESHNESS = "freshness", "No data for a branch for N days"
        QUALITY = "quality", "Upload quality (rejected rows, failed tasks)"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    name = models.CharField(max_length=120)
    datasource = models.CharField(max_length=63, default="sales")
    metric = models.CharField(max_length=40, default="revenue")
    # `in` lists per dimension, e.g. {"branch": ["A"]}: the rule's scope.
    filters = models.JSONField(default=dict, blank=True)
    # Evaluate separately for each value of this dimension (e.g. each branch); blank: the whole scope.
    group_by = models.CharField(max_length=40, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Condition parameters; see dashboard.alerts.CONDITION_DEFAULTS for each kind's keys.
    params = models.JSONField(default=dict, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    enabled = models.BooleanField(default=True)
    notify_emails = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(blank=True, validators=[webhook_url_validate])
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The branch scope of whoever made or edited the rule, kept with it: a rule a branch-scoped user
    # made never looks past their branches, not when its creator's account is deleted nor when
    # someone else edits it. Null: all branches.
    scope_branches = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["datasource", "name"]

    def __str__(self) -> str:
        return self.name


class AlertEvent(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    # What the event is about within the rule: a day, a branch, a task …; one live event per key.
    key = models.CharField(max_length=200)
    branch = models.CharField(max_length=200, blank=True, help_text="Set when the event concerns one branch.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    day = models.DateField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    expected = models.FloatField(null=True, blank=True)
    message = models.TextField()
    opened_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["rule", "key", "status"])]

    def __str__(self) -> str:
        return f"{self.rule}: {self.key} ({self.status})"


class Notification(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.channel} to {self.target} ({self.status})"
