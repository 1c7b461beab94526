"""Alert evaluation: each rule looks at one day (the latest data day by default) and reports findings;
findings open events, events that stop firing resolve themselves, and new events notify once.

Anomaly method (documented for users on the Alerts page): the day's value is compared with the
same weekday in the trailing N weeks (default 8). With m the median and MAD the median absolute
deviation of those N values, the robust z-score is 0.6745 × (value − m) / MAD; the rule fires when
|z| ≥ z_threshold (default 4.5). MAD is floored at 6.75 % of |m|: eight past values are few, and a
tighter floor lets ordinary noise cross the threshold. Comparing like weekdays means an ordinary Saturday
peak is expected.
"""

import datetime as dt
import logging
import statistics
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from accounts.selectors import user_allowed_branches
from analytics.catalogue import datasource_snapshot
from analytics.metrics import METRICS
from analytics.query import Breakdown, Filters, Grain, Summary, TimeSeries
from analytics.runner import run_query, scope_apply
from dashboard.models import AlertEvent, AlertRule, Notification
from ingestion.models import IngestionTask
from sales_analytics.plural import counted

logger = logging.getLogger(__name__)

CONDITION_DEFAULTS: dict[str, dict] = {
    AlertRule.Kind.THRESHOLD: {"operator": "below", "value": 0.0, "window_days": 1},
    AlertRule.Kind.CHANGE: {"comparison": "previous_period", "percent": 20.0, "direction": "either", "window_days": 7},
    AlertRule.Kind.ANOMALY: {"weeks": 8, "z_threshold": 4.5, "min_history": 4},
    AlertRule.Kind.FRESHNESS: {"days": 3},
    AlertRule.Kind.QUALITY: {"max_rejected_ratio": 0.05, "on_failure": True, "lookback_days": 7},
}
# What each condition parameter may hold: choices, or a number type with its bounds. A rule
# saved with "Above" (read as below), a window of 0 or a value of "1k" (failing every run,
# told to nobody) never fired as its author meant.
PARAM_CHOICES: dict[str, tuple[str, ...]] = {
    "operator": ("above", "below"),
    "comparison": ("previous_period", "same_period_last_year"),
    "direction": ("up", "down", "either"),
}
PARAM_NUMBERS: dict[str, tuple[type, float, float]] = {
    "value": (float, -1e15, 1e15),
    "percent": (float, 0.0, 1e6),
    "z_threshold": (float, 0.1, 100.0),
    "max_rejected_ratio": (float, 0.0, 1.0),
    "window_days": (int, 1, 366),
    "weeks": (int, 1, 104),
    "min_history": (int, 1, 104),
    "days": (int, 1, 366),
    "lookback_days": (int, 1, 366),
}


def alert_params_clean(*, kind: str, params: dict) -> dict:
    """A rule's condition parameters checked and typed; ValueError names the first bad one."""
    allowed = CONDITION_DEFAULTS[kind]
    if unknown := sorted(set(params) - set(allowed)):
        raise ValueError(f"Unknown parameter {unknown[0]!r} for this kind; allowed: {', '.join(allowed)}.")
    cleaned = {}
    for name, value in params.items():
        if name in PARAM_CHOICES:
            if value not in PARAM_CHOICES[name]:
                raise ValueError(f"{name} must be one of {', '.join(PARAM_CHOICES[name])} (got {value!r}).")
            cleaned[name] = value
        elif name in PARAM_NUMBERS:
            kind_of, low, high = PARAM_NUMBERS[name]
            cleaned[name] = _number_param(name, value, kind_of, low, high)
        elif isinstance(value, bool):
            cleaned[name] = value
        else:
            raise ValueError(f"{name} must be true or false (got {value!r}).")
    return cleaned


def _number_param(name: str, value: object, kind_of: type, low: float, high: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number (got {value!r}).")
    if kind_of is int and value != int(value):
        raise ValueError(f"{name} must be a whole number (got {value!r}).")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g} (got {value!r}).")
    return kind_of(value)


MAD_FLOOR_SHARE = 0.0675


@dataclass(frozen=True)
class Finding:
    key: str
    message: str
    value: float | None = None
    expected: float | None = None
    branch: str = ""
    day: dt.date | None = None


def rule_params(rule: AlertRule) -> dict:
    return {**CONDITION_DEFAULTS[rule.kind], **(rule.params or {})}


def _filters(rule: AlertRule, start: dt.date, end: dt.date) -> Filters:
    include = {name: tuple(values) for name, values in (rule.filters or {}).items() if values}
    # Rules are evaluated by the worker, for no user: the rule's own scope is what keeps a
    # branch-scoped author's notifications to their branches.
    return scope_apply(Filters(start=start, end=end, include=include), allowed=alert_rule_scope(rule=rule))


def branches_intersect(*scopes: tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """The branches every scope allows; None stands for all branches."""
    limits = [set(map(str, scope)) for scope in scopes if scope is not None]
    return tuple(sorted(set.intersection(*limits))) if limits else None


def alert_rule_scope(*, rule: AlertRule) -> tuple[str, ...] | None:
    """The branches a rule may look at: the scope it was saved with, within its creator's current
    one (a creator whose scope shrank must not keep watching a branch through an old rule)."""
    return branches_intersect(rule.scope_branches, user_allowed_branches(user=rule.created_by))


def alert_rule_branches(*, rule: AlertRule) -> tuple[str, ...] | None:
    """The branches a rule's numbers come from: its branch filter within its scope; None: all."""
    return branches_intersect((rule.filters or {}).get("branch") or None, alert_rule_scope(rule=rule))


def _values_by_group(rule: AlertRule, start: dt.date, end: dt.date) -> dict[str, float | None]:
    """The rule's metric over [start, end], per group_by value (or one '' group)."""
    filters = _filters(rule, start, end)
    if rule.group_by:
        result = run_query(
            Breakdown(datasource=rule.datasource, filters=filters, by=(rule.group_by,), metrics=(rule.metric,)),
            user=None,
        )
        return {str(row[rule.group_by]): row[rule.metric] for row in result.rows if row[rule.group_by] is not None}
    result = run_query(Summary(datasource=rule.datasource, filters=filters, metrics=(rule.metric,)), user=None)
    return {"": result.first.get(rule.metric)}


def _values_with_silent_groups(
    rule: AlertRule, values: dict[str, float | None], day: dt.date
) -> dict[str, float | None]:
    """`values` plus every group seen up to `day` that had no rows in the window: for a sum or a
    count that is 0 (a branch that sold nothing), not a missing value. Ratios stay undefined."""
    if not rule.group_by or METRICS[rule.metric].is_ratio:
        return values
    return {**dict.fromkeys(_values_by_group(rule, None, day), 0.0), **values}


def _group_label(rule: AlertRule, group: str) -> str:
    return f" for {rule.group_by.replace('_', ' ')} {group}" if group else ""


def evaluate_threshold(rule: AlertRule, day: dt.date) -> list[Finding]:
    params = rule_params(rule)
    start = day - dt.timedelta(days=int(params["window_days"]) - 1)
    findings = []
    for group, value in _values_with_silent_groups(rule, _values_by_group(rule, start, day), day).items():
        if value is None:
            continue
        limit = float(params["value"])
        fired = value > limit if params["operator"] == "above" else value < limit
        if fired:
            findings.append(
                _day_finding(
                    rule,
                    group,
                    day,
                    value=value,
                    expected=limit,
                    message=f"{rule.metric} {value:,.2f}{_group_label(rule, group)} is {params['operator']} "
                    f"{limit:,.2f} ({start} to {day}).",
                )
            )
    return findings


def evaluate_change(rule: AlertRule, day: dt.date) -> list[Finding]:
    params = rule_params(rule)
    window = int(params["window_days"])
    start = day - dt.timedelta(days=window - 1)
    if params["comparison"] == "same_period_last_year":
        before_start, before_end = _year_earlier(start), _year_earlier(day)
    else:
        before_start, before_end = start - dt.timedelta(days=window), start - dt.timedelta(days=1)
    current = _values_by_group(rule, start, day)
    previous = _values_by_group(rule, before_start, before_end)
    # A group that had the metric before and has no rows now dropped to 0 (-100 %).
    current = _values_with_silent_groups(rule, current, day)
    findings = []
    for group, value in current.items():
        base = previous.get(group)
        if value is None or not base:
            continue
        change = (value - base) / abs(base) * 100
        direction = params["direction"]
        limit = float(params["percent"])
        fired = (change >= limit and direction in ("up", "either")) or (
            change <= -limit and direction in ("down", "either")
        )
        if fired:
            findings.append(
                _day_finding(
                    rule,
                    group,
                    day,
                    value=value,
                    expected=base,
                    message=f"{rule.metric}{_group_label(rule, group)} changed {change:+.1f}% "
                    f"({start} to {day} vs {before_start} to {before_end}).",
                )
            )
    return findings


def _series(rule: AlertRule, start: dt.date, end: dt.date) -> dict[str, dict[dt.date, float]]:
    """Daily values per group; days without rows are 0 for sums (a store that sold nothing)."""
    spec = TimeSeries(
        datasource=rule.datasource,
        filters=_filters(rule, start, end),
        metrics=(rule.metric,),
        grain=Grain.DAY,
        split_by=rule.group_by or None,
    )
    result = run_query(spec, user=None)
    series: dict[str, dict[dt.date, float]] = {}
    for row in result.rows:
        group = str(row[rule.group_by]) if rule.group_by else ""
        if rule.group_by and row[rule.group_by] is None:
            continue
        series.setdefault(group, {})[row["bucket"]] = row[rule.metric]
    return series


def robust_z(value: float, history: list[float]) -> tuple[float, float]:
    """(z, median): 0.6745 × (value − median) / MAD, MAD floored at a share of the median."""
    median = statistics.median(history)
    mad = statistics.median(abs(x - median) for x in history)
    mad = max(mad, MAD_FLOOR_SHARE * abs(median), 1e-9)
    return 0.6745 * (value - median) / mad, median


def evaluate_anomaly(rule: AlertRule, day: dt.date) -> list[Finding]:
    params = rule_params(rule)
    weeks = int(params["weeks"])
    series = _series(rule, day - dt.timedelta(days=7 * weeks), day)
    findings = []
    for group, values in series.items():
        history = [
            values.get(day - dt.timedelta(days=7 * k), 0.0) or 0.0
            for k in range(1, weeks + 1)
            if day - dt.timedelta(days=7 * k) >= min(values)
        ]
        if len(history) < int(params["min_history"]):
            continue
        value = values.get(day, 0.0) or 0.0
        z, median = robust_z(value, history)
        if abs(z) >= float(params["z_threshold"]):
            kind = "spike" if z > 0 else "drop"
            findings.append(
                _day_finding(
                    rule,
                    group,
                    day,
                    value=value,
                    expected=median,
                    message=f"Unusual {rule.metric} {kind}{_group_label(rule, group)} on {day:%A %Y-%m-%d}: "
                    f"{value:,.2f} vs a typical {median:,.2f} on {day:%A}s (robust z {z:+.1f}).",
                )
            )
    return findings


def evaluate_freshness(rule: AlertRule, day: dt.date) -> list[Finding]:
    days = int(rule_params(rule)["days"])
    known = run_query(
        Breakdown(datasource=rule.datasource, filters=_filters(rule, None, day), by=("branch",), metrics=("lines",)),
        user=None,
    )
    recent = run_query(
        Breakdown(
            datasource=rule.datasource,
            filters=_filters(rule, day - dt.timedelta(days=days - 1), day),
            by=("branch",),
            metrics=("lines",),
        ),
        user=None,
    )
    fresh = {row["branch"] for row in recent.rows if row["lines"]}
    return [
        Finding(
            key=f"{row['branch']}",
            branch=str(row["branch"]),
            day=day,
            value=0,
            expected=None,
            message=f"No data for branch {row['branch']} in the {counted(days, 'day')} up to {day}.",
        )
        for row in known.rows
        if row["branch"] is not None and row["branch"] not in fresh
    ]


def evaluate_quality(rule: AlertRule, day: dt.date) -> list[Finding]:
    params = rule_params(rule)
    since = timezone.now() - dt.timedelta(days=int(params["lookback_days"]))
    tasks = IngestionTask.objects.filter(
        datasource__name=rule.datasource,
        created_at__gte=since,
        status__in=[IngestionTask.Status.SUCCEEDED, IngestionTask.Status.FAILED],
    )
    if alert_rule_scope(rule=rule) is not None:
        # A task tells its whole file's story (every branch's rows): a scoped author's rule
        # watches their own uploads only, as they see them on the uploads page.
        tasks = tasks.filter(created_by_id=rule.created_by_id) if rule.created_by_id else tasks.none()
    findings = []
    for task in tasks.select_related("datasource"):
        if task.status == IngestionTask.Status.FAILED and params["on_failure"]:
            findings.append(
                Finding(key=f"task:{task.pk}", message=f"Upload {task.original_filename} failed: {task.message}")
            )
        elif task.rows_total and (task.rows_rejected or 0) / task.rows_total > float(params["max_rejected_ratio"]):
            ratio = (task.rows_rejected or 0) / task.rows_total
            findings.append(
                Finding(
                    key=f"task:{task.pk}",
                    value=ratio,
                    expected=float(params["max_rejected_ratio"]),
                    message=f"Upload {task.original_filename} rejected {ratio:.1%} of its rows.",
                )
            )
    return findings


EVALUATORS = {
    AlertRule.Kind.THRESHOLD: evaluate_threshold,
    AlertRule.Kind.CHANGE: evaluate_change,
    AlertRule.Kind.ANOMALY: evaluate_anomaly,
    AlertRule.Kind.FRESHNESS: evaluate_freshness,
    AlertRule.Kind.QUALITY: evaluate_quality,
}


def _day_finding(
    rule: AlertRule, group: str, day: dt.date, *, value: float, expected: float | None, message: str
) -> Finding:
    """A finding about one day of one group (the key that lets the day's re-check resolve it)."""
    return Finding(
        key=f"{group}|{day}", branch=_branch(rule, group), day=day, value=value, expected=expected, message=message
    )


def _branch(rule: AlertRule, group: str) -> str:
    if rule.group_by == "branch":
        return group
    branches = alert_rule_branches(rule=rule) or ()
    return branches[0] if len(branches) == 1 else ""


def _year_earlier(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def latest_data_day(datasource: str) -> dt.date | None:
    snapshot = datasource_snapshot(name=datasource)
    return snapshot.date_range[1] if snapshot is not None else None


@dataclass
class EvaluationOutcome:
    opened: int = 0
    resolved: int = 0
    still_open: int = 0
    # Rule id → why it could not be evaluated (its last failure), for whoever ran the evaluation.
    failed_rules: dict[int, str] = field(default_factory=dict)

    def add(self, other: "EvaluationOutcome") -> None:
        self.opened += other.opened
        self.resolved += other.resolved
        self.still_open += other.still_open
        self.failed_rules.update(other.failed_rules)


def alert_rule_evaluate(*, rule: AlertRule, day: dt.date) -> EvaluationOutcome:
    """Open events for new findings, keep live ones, resolve the ones of this day that cleared."""
    findings = {finding.key: finding for finding in EVALUATORS[rule.kind](rule, day)}
    outcome = EvaluationOutcome()
    with transaction.atomic():
        live = {
            event.key: event
            for event in AlertEvent.objects.select_for_update().filter(
                rule=rule, status__in=[AlertEvent.Status.OPEN, AlertEvent.Status.ACKNOWLEDGED]
            )
        }
        for key, finding in findings.items():
            event = live.get(key)
            if event is not None:
                event.value, event.expected, event.message = finding.value, finding.expected, finding.message
                event.save(update_fields=["value", "expected", "message", "last_seen_at"])
                outcome.still_open += 1
                continue
            event = AlertEvent.objects.create(
                rule=rule,
                key=key,
                branch=finding.branch,
                day=finding.day,
                value=finding.value,
                expected=finding.expected,
                message=finding.message,
            )
            _notifications_create(event)
            outcome.opened += 1
        for key, event in live.items():
            if key not in findings and _key_covered(rule, key, day):
                event.status = AlertEvent.Status.RESOLVED
                event.resolved_at = timezone.now()
                event.save(update_fields=["status", "resolved_at", "last_seen_at"])
                outcome.resolved += 1
    return outcome


def _key_covered(rule: AlertRule, key: str, day: dt.date) -> bool:
    """Whether evaluating `day` re-examined `key`: day-keyed events clear only when their day is re-checked."""
    if rule.kind in (AlertRule.Kind.FRESHNESS, AlertRule.Kind.QUALITY):
        return True
    return key.endswith(f"|{day}")


def _notifications_create(event: AlertEvent) -> None:
    rule = event.rule
    for address in rule.notify_emails or []:
        Notification.objects.create(event=event, channel=Notification.Channel.EMAIL, target=address)
    if rule.webhook_url:
        Notification.objects.create(event=event, channel=Notification.Channel.WEBHOOK, target=rule.webhook_url)
    if rule.notify_emails or rule.webhook_url:
        from dashboard.tasks import notifications_queue

        transaction.on_commit(notifications_queue)


# Rules about the feed itself: evaluated "now" they look at today, not at the last day with data
# (a feed that stopped entirely, or uploads failing before any data was published).
RULES_OF_NOW = (AlertRule.Kind.FRESHNESS, AlertRule.Kind.QUALITY)


def alerts_evaluate(*, datasource: str, day: dt.date | None = None) -> EvaluationOutcome:
    """Evaluate every enabled rule of `datasource` for `day` (default: the latest day with data,
    and today for the rules of the feed itself)."""
    total = EvaluationOutcome()
    latest = latest_data_day(datasource)
    for rule in AlertRule.objects.filter(datasource=datasource, enabled=True):
        rule_day = day or latest
        if day is None and rule.kind in RULES_OF_NOW:
            rule_day = max(latest or dt.date.min, timezone.localdate())
        if rule_day is None:
            continue
        try:
            outcome = alert_rule_evaluate(rule=rule, day=rule_day)
        except Exception as exc:
            # One broken rule must not stop the others; the caller is told which failed.
            logger.exception("alert rule %s (%s) failed to evaluate for %s", rule.pk, rule.name, rule_day)
            total.failed_rules[rule.pk] = f"rule {rule.pk} “{rule.name}” ({rule_day}): {type(exc).__name__}: {exc}"
            continue
        total.add(outcome)
    return total


def alerts_backfill(*, datasource: str, start: dt.date, end: dt.date) -> EvaluationOutcome:
    total = EvaluationOutcome()
    day = start
    while day <= end:
        total.add(alerts_evaluate(datasource=datasource, day=day))
        day += dt.timedelta(days=1)
    return total


def alert_event_acknowledge(*, event: AlertEvent, user) -> AlertEvent:
    if event.status == AlertEvent.Status.OPEN:
        event.status = AlertEvent.Status.ACKNOWLEDGED
        event.acknowledged_at = timezone.now()
        event.acknowledged_by = user
        event.save(update_fields=["status", "acknowledged_at", "acknowledged_by", "last_seen_at"])
    return event


def alert_event_resolve(*, event: AlertEvent) -> AlertEvent:
    if event.status != AlertEvent.Status.RESOLVED:
        event.status = AlertEvent.Status.RESOLVED
        event.resolved_at = timezone.now()
        event.save(update_fields=["status", "resolved_at", "last_seen_at"])
    return event


def alert_rule_save(*, rule: AlertRule, user) -> AlertRule:
    """Save a rule made or edited by `user`; a branch-scoped user's rule keeps to their branches for good."""
    if rule.created_by_id is None:
        rule.created_by = user
    rule.scope_branches = _list_or_none(branches_intersect(rule.scope_branches, user_allowed_branches(user=user)))
    rule.save()
    return rule


def _list_or_none(branches: tuple[str, ...] | None) -> list[str] | None:
    return list(branches) if branches is not None else None


def alert_rules_visible(*, user) -> list[AlertRule]:
    """Rules the user may see and edit: all of them, or for a branch-scoped user their own and
    those whose numbers come from their branches only (a rule shows its filters, thresholds and
    recipients)."""
    rules = list(AlertRule.objects.select_related("created_by"))
    allowed = user_allowed_branches(user=user)
    if allowed is None:
        return rules
    creators = {}
    for rule in rules:
        # One scope lookup per creator (remembered on the user object), not one per rule.
        if rule.created_by is not None:
            rule.created_by = creators.setdefault(rule.created_by_id, rule.created_by)
    return [rule for rule in rules if _rule_within(rule, user=user, allowed=allowed)]


def alert_rule_visible_get(*, user, rule_id: int) -> AlertRule | None:
    """The rule `rule_id` if `user` may see and edit it (see `alert_rules_visible`)."""
    rule = AlertRule.objects.select_related("created_by").filter(pk=rule_id).first()
    allowed = user_allowed_branches(user=user)
    if rule is None or allowed is None:
        return rule
    return rule if _rule_within(rule, user=user, allowed=allowed) else None


def _rule_within(rule: AlertRule, *, user, allowed: tuple[str, ...]) -> bool:
    if rule.created_by_id == user.pk:
        return True
    branches = alert_rule_branches(rule=rule)
    # A rule that looks at no branch at all (its scope and filter do not meet) belongs to nobody else.
    return bool(branches) and set(branches) <= set(allowed)


def alert_events_visible(*, user, statuses: list[str] | None = None):
    """Events the user may see: a branch-scoped user sees only events about their branches."""
    events = AlertEvent.objects.select_related("rule").order_by("-opened_at")
    if statuses:
        events = events.filter(status__in=statuses)
    allowed = user_allowed_branches(user=user)
    if allowed is not None:
        events = events.filter(branch__in=allowed)
    return events
