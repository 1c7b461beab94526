from django.contrib import admin
from django.http import HttpRequest

from accounts.admin import UnscopedStaffAdmin
from dashboard.alerts import alert_rule_save
from dashboard.forms import AlertRuleForm
from dashboard.models import AlertEvent, AlertRule, Notification


@admin.register(AlertRule)
class AlertRuleAdmin(UnscopedStaffAdmin):
    """Rules checked as the Alerts page's editor checks them; only unscoped staff reach this admin,
    so the form's branch limits (for scoped users) do not apply."""

    form = AlertRuleForm
    list_display = ("name", "datasource", "metric", "kind", "group_by", "severity", "enabled")
    list_filter = ("kind", "severity", "enabled", "datasource")
    search_fields = ("name",)

    def save_model(self, request: HttpRequest, obj: AlertRule, form: AlertRuleForm, change: bool) -> None:
        alert_rule_save(rule=obj, user=request.user)


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
