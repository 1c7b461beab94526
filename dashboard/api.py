"""REST endpoints for alerts: /api/alerts."""

import datetime as dt

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.pagination import paginate

from accounts.roles import Capability
from dashboard.alerts import alert_event_acknowledge, alert_event_resolve, alert_events_visible, alert_rules_visible
from dashboard.models import AlertEvent
from sales_analytics.errors import ApiError, error_responses, require_capability
from sales_analytics.pagination import BoundedLimitOffsetPagination
from sales_analytics.query_params import blank_parameters_dropped, unknown_parameters_refused

router = Router(tags=["alerts"])
router.add_decorator(blank_parameters_dropped, mode="view")
router.add_decorator(unknown_parameters_refused, mode="operation")


class AlertOut(Schema):
    id: int
    rule: str
    kind: str
    severity: str
    datasource: str
    metric: str
    key: str
    branch: str
    day: dt.date | None
    status: str
    value: float | None
    expected: float | None
    message: str
    opened_at: dt.datetime
    resolved_at: dt.datetime | None

    @staticmethod
    def resolve_rule(event: AlertEvent) -> str:
        return event.rule.name

    @staticmethod
    def resolve_kind(event: AlertEvent) -> str:
        return event.rule.kind

    @staticmethod
    def resolve_severity(event: AlertEvent) -> str:
        return event.rule.severity

    @staticmethod
    def resolve_datasource(event: AlertEvent) -> str:
        return event.rule.datasource

    @staticmethod
    def resolve_metric(event: AlertEvent) -> str:
        return event.rule.metric


class RuleOut(Schema):
    id: int
    name: str
    datasource: str
    metric: str
    kind: str
    group_by: str
    filters: dict
    params: dict
    severity: str
    enabled: bool


@router.get("", response={200: list[AlertOut], **error_responses(400, 422)})
@paginate(BoundedLimitOffsetPagination)
def list_alerts(request: HttpRequest, status: AlertEvent.Status | None = None):
    """Alert events, newest first, limited to the caller's branches."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    return alert_events_visible(user=request.user, statuses=[status] if status else None)


@router.get("/rules", response={200: list[RuleOut], **error_responses(400)})
def list_rules(request: HttpRequest):
    """Alert rules (their scope and condition); a branch-scoped caller sees the rules within their branches."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    return alert_rules_visible(user=request.user)


def _event_or_404(request: HttpRequest, event_id: int) -> AlertEvent:
    event = alert_events_visible(user=request.user).filter(pk=event_id).first()
    if event is None:
        raise ApiError(404, "alert_not_found", f"No alert {event_id}.")
    return event


@router.post("/{event_id}/acknowledge", response={200: AlertOut, **error_responses(404, 422)})
def acknowledge(request: HttpRequest, event_id: int):
    require_capability(request, Capability.VIEW_DASHBOARDS)
    return alert_event_acknowledge(event=_event_or_404(request, event_id), user=request.user)


@router.post("/{event_id}/resolve", response={200: AlertOut, **error_responses(404, 422)})
def resolve(request: HttpRequest, event_id: int):
    require_capability(request, Capability.VIEW_DASHBOARDS)
    return alert_event_resolve(event=_event_or_404(request, event_id))
