"""Sending alert notifications: email through Django's backend, JSON to a webhook.

A failure is recorded on the Notification and retried later; it never reaches evaluation.
"""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from dashboard.models import AlertEvent, Notification
from dashboard.webhooks import WebhookRefused, webhook_post

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


def notification_payload(event: AlertEvent) -> dict:
    """The webhook body; `text` makes it a valid Slack incoming-webhook message too."""
    rule = event.rule
    return {
        "text": f"[{rule.severity.upper()}] {rule.name}: {event.message}",
        "alert": {
            "id": event.pk,
            "rule": rule.name,
            "kind": rule.kind,
            "severity": rule.severity,
            "datasource": rule.datasource,
            "metric": rule.metric,
            "key": event.key,
            "branch": event.branch or None,
            "day": event.day.isoformat() if event.day else None,
            "value": event.value,
            "expected": event.expected,
            "message": event.message,
            "status": event.status,
            "opened_at": event.opened_at.isoformat(),
        },
    }


def _deliver(notification: Notification) -> None:
    event = notification.event
    if notification.channel == Notification.Channel.EMAIL:
        send_mail(
            subject=f"[{event.rule.severity}] {event.rule.name}",
            message=event.message,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[notification.target],
            fail_silently=False,
        )
        return
    # Checked again, since the name may resolve elsewhere than when the rule was saved, and sent to
    # the address that check found.
    response = webhook_post(
        url=notification.target, payload=notification_payload(event), timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS
    )
    if response.is_redirect:
        raise WebhookRefused(
            f"The webhook answered {response.status_code} redirecting to {response.headers.get('Location')!r}; "
            "redirects are not followed: give the rule the final URL."
        )
    response.raise_for_status()


def notification_send(*, notification: Notification) -> Notification:
    notification.attempts += 1
    try:
        _deliver(notification)
    except Exception as exc:
        notification.status = Notification.Status.FAILED
        notification.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
        logger.warning("notification %s failed (attempt %s): %s", notification.pk, notification.attempts, exc)
    else:
        notification.status = Notification.Status.SENT
        notification.sent_at = timezone.now()
        notification.last_error = ""
    notification.save(update_fields=["status", "attempts", "last_error", "sent_at"])
    return notification


def notifications_send_due() -> int:
    """Send pending notifications and retry failed ones with attempts left; returns how many were tried."""
    tried = 0
    due = Notification.objects.filter(
        status__in=[Notification.Status.PENDING, Notification.Status.FAILED], attempts__lt=MAX_ATTEMPTS
    ).select_related("event__rule")
    for notification_id in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            # The row lock keeps two workers from sending the same message twice.
            notification = (
                Notification.objects.select_for_update()
                .select_related("event__rule")
                .filter(pk=notification_id)
                .exclude(status=Notification.Status.SENT)
                .first()
            )
            if notification is None:
                continue
            notification_send(notification=notification)
            tried += 1
    return tried
