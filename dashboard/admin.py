from django.contrib import admin

from accounts.admin import UnscopedStaffAdmin
from dashboard.models import AlertEvent, AlertRule, Notification


@admin.register(AlertRule)
class AlertRuleAdmin(UnscopedStaffAdmin):
    list_display = ("name", "datasource", "metric", "kind", "group_by", "severity", "enabled")
    list_filter = ("kind", "severity", "enabled", "datasource")
    search_fields = ("name",)


@admin.register(AlertEvent)
class AlertEventAdmin(UnscopedStaffAdmin):
    list_display = ("rule", "key", "status", "value", "expected", "opened_at", "resolved_at")
    list_filter = ("status", "rule__kind", "rule__severity")
    search_fields = ("message", "key")
    list_select_related = ("rule",)


@admin.register(Notification)
class NotificationAdmin(UnscopedStaffAdmin):
    list_display = ("event", "channel", "target", "status", "attempts", "sent_at")
    list_filter = ("status", "channel")
    list_select_related = ("event__rule",)
