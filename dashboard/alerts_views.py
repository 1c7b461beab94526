"""The Alerts page: open and recent events, acknowledge/resolve, and the rule editor for admins."""

import datetime as dt
import json
from urllib.parse import urlencode

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import capability_required
from accounts.roles import Capability, permission_name
from accounts.selectors import user_allowed_branches
from analytics.metrics import METRICS
from analytics.query import Filters, Grain, QueryError, TimeSeries
from analytics.runner import run_query
from dashboard.alerts import (
    CONDITION_DEFAULTS,
    alert_event_acknowledge,
    alert_event_resolve,
    alert_events_visible,
    alert_rule_save,
    alert_rule_visible_get,
    alert_rules_visible,
)
from dashboard.forms import AlertRuleForm
from dashboard.models import AlertEvent, AlertRule

CHARTED_EVENTS = 20


def _trend_chart(event: AlertEvent, user) -> str:
    """Eight weeks of the rule's metric around the event, scoped like the page."""
    rule = event.rule
    end = event.day or timezone.localdate()
    include = _event_scope(event)
    try:
        result = run_query(
            TimeSeries(
                datasource=rule.datasource,
                metrics=(rule.metric,),
                grain=Grain.DAY,
                filters=Filters(start=end - dt.timedelta(days=55), end=end, include=include),
            ),
            user=user,
        )
    except QueryError:
        return ""
    option = {
        "grid": {"left": 50, "right": 10, "top": 10, "bottom": 20},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [row["bucket"].isoformat() for row in result.rows]},
        "yAxis": {"type": "value"},
        "series": [{"type": "line", "data": [row[rule.metric] for row in result.rows], "showSymbol": False}],
    }
    kind = "percent" if METRICS[rule.metric].is_ratio else "currency" if METRICS[rule.metric].is_currency else "number"
    return json.dumps({"valueKind": kind, "option": option}, cls=DjangoJSONEncoder)


def _event_scope(event: AlertEvent) -> dict[str, tuple[str, ...]]:
    """The rows an event is about: the rule's filters, the group that fired, the branch named."""
    rule = event.rule
    include = {name: tuple(values) for name, values in (rule.filters or {}).items() if values}
    if rule.group_by and event.key.split("|")[0]:
        include[rule.group_by] = (event.key.split("|")[0],)
    if event.branch:  # a freshness event is about one branch without grouping by it
        include["branch"] = (event.branch,)
    return include


def _dashboard_link(event: AlertEvent) -> str:
    params: dict[str, object] = {"datasource": event.rule.datasource, **_event_scope(event)}
    if event.day:
        params.update(preset="custom", start=event.day - dt.timedelta(days=27), end=event.day)
    return "/?" + urlencode(params, doseq=True)


@require_GET
@capability_required(Capability.VIEW_DASHBOARDS)
def alerts_page(request: HttpRequest) -> HttpResponse:
    live = list(
        alert_events_visible(user=request.user, statuses=[AlertEvent.Status.OPEN, AlertEvent.Status.ACKNOWLEDGED])[:200]
    )
    recent = list(alert_events_visible(user=request.user, statuses=[AlertEvent.Status.RESOLVED])[:50])
    for index, event in enumerate(live):
        event.chart_json = _trend_chart(event, request.user) if index < CHARTED_EVENTS else ""
        event.dashboard_link = _dashboard_link(event)
    for event in recent:
        event.dashboard_link = _dashboard_link(event)
    can_manage = request.user.has_perm(permission_name(Capability.MANAGE_ALERTS))
    return render(
        request,
        "dashboard/alerts.html",
        {
            "page": "alerts",
            "live": live,
            "recent": recent,
            "can_manage": can_manage,
            "rules": alert_rules_visible(user=request.user) if can_manage else [],
        },
    )


@require_POST
@capability_required(Capability.VIEW_DASHBOARDS)
def alert_event_action(request: HttpRequest, event_id: int, action: str) -> HttpResponse:
    event = alert_events_visible(user=request.user).filter(pk=event_id).first()
    if event is None:
        raise Http404("No such alert")
    if action == "acknowledge":
        alert_event_acknowledge(event=event, user=request.user)
    elif action == "resolve":
        alert_event_resolve(event=event)
    else:
        raise Http404("Unknown action")
    return redirect("dashboard:alerts")


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_ALERTS)
def alert_rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = _rule_or_404(request, rule_id) if rule_id else None
    form = AlertRuleForm(request.POST or None, instance=rule, allowed_branches=user_allowed_branches(user=request.user))
    if request.method == "POST" and form.is_valid():
        saved = alert_rule_save(rule=form.save(commit=False), user=request.user)
        messages.success(request, f"Saved rule “{saved.name}”.")
        return redirect("dashboard:alerts")
    return render(
        request,
        "dashboard/alert_rule.html",
        {"page": "alerts", "form": form, "rule": rule, "defaults": CONDITION_DEFAULTS},
    )


@require_POST
@capability_required(Capability.MANAGE_ALERTS)
def alert_rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    _rule_or_404(request, rule_id).delete()
    messages.success(request, "Rule deleted.")
    return redirect("dashboard:alerts")


def _rule_or_404(request: HttpRequest, rule_id: int) -> AlertRule:
    rule = alert_rule_visible_get(user=request.user, rule_id=rule_id)
    if rule is None:
        raise Http404("No such alert rule")
    return rule
