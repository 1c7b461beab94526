"""GraphQL `alerts`: events the caller may see."""

import graphene

from dashboard.alerts import alert_events_visible
from dashboard.models import AlertEvent


class AlertType(graphene.ObjectType):
    id = graphene.ID(required=True)
    rule = graphene.String(required=True)
    kind = graphene.String(required=True)
    severity = graphene.String(required=True)
    datasource = graphene.String(required=True)
    metric = graphene.String(required=True)
    key = graphene.String(required=True)
    branch = graphene.String()
    day = graphene.Date()
    status = graphene.String(required=True)
    value = graphene.Float()
    expected = graphene.Float()
    message = graphene.String(required=True)
    opened_at = graphene.DateTime(required=True)
    resolved_at = graphene.DateTime()

    @staticmethod
    def resolve_rule(event: AlertEvent, info) -> str:
        return event.rule.name

    @staticmethod
    def resolve_kind(event: AlertEvent, info) -> str:
        return event.rule.kind

    @staticmethod
    def resolve_severity(event: AlertEvent, info) -> str:
        return event.rule.severity

    @staticmethod
    def resolve_datasource(event: AlertEvent, info) -> str:
        return event.rule.datasource

    @staticmethod
    def resolve_metric(event: AlertEvent, info) -> str:
        return event.rule.metric


class AlertsQuery(graphene.ObjectType):
    alerts = graphene.List(
        graphene.NonNull(AlertType), required=True, status=graphene.String(), limit=graphene.Int(default_value=50)
    )

    @staticmethod
    def resolve_alerts(root, info, limit: int, status: str | None = None) -> list[AlertEvent]:
        events = alert_events_visible(user=info.context.user, statuses=[status] if status else None)
        return list(events[: max(1, min(limit, 500))])
