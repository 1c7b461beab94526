"""GraphQL `alerts`: events the caller may see."""

import graphene

from analytics.graphql import Date, invalid_argument
from dashboard.alerts import alert_events_visible
from dashboard.models import AlertEvent
from sales_analytics.pagination import MAX_LIMIT


class AlertType(graphene.ObjectType):
    id = graphene.ID(required=True)
    rule = graphene.String(required=True)
    kind = graphene.String(required=True)
    severity = graphene.String(required=True)
    datasource = graphene.String(required=True)
    metric = graphene.String(required=True)
    key = graphene.String(required=True)
    branch = graphene.String()
    day = Date()
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
        # As REST's /api/alerts: an unknown status or a limit out of range is refused, not read as
        # "no alerts" or silently clamped.
        if status is not None and status not in AlertEvent.Status.values:
            raise invalid_argument(
                f"Unknown alert status {status!r}: use one of {', '.join(AlertEvent.Status.values)}.",
                code="invalid_request",
            )
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid_argument(f"limit must be between 1 and {MAX_LIMIT}.", code="invalid_request")
        events = alert_events_visible(user=info.context.user, statuses=[status] if status else None)
        return list(events[:limit])
