"""Alert rules that fire and rules that stay quiet, event life cycle, notifications, exposure."""

import datetime as dt
import html
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.services import user_branch_scope_set
from dashboard.alerts import alert_rule_evaluate, alerts_backfill, alerts_evaluate, robust_z
from dashboard.models import AlertEvent, AlertRule, Notification
from dashboard.notifications import notifications_send_due
from ingestion.models import IngestionTask
from tests.analytics.helpers import rows_publish, sale_line

pytestmark = pytest.mark.django_db(transaction=True)

START = dt.date(2024, 1, 1)  # a Monday
WEEKS = 10


def weekly_rows(
    *, branch: str = "A", spike_day: dt.date | None = None, spike: float = 3000.0, days: int = WEEKS * 7
) -> list[dict]:
    """A store whose Mondays are big (1,000) and other days small (200), with one optional spike."""
    rows = []
    for offset in range(days):
        day = START + dt.timedelta(days=offset)
        base = 1000.0 if day.weekday() == 0 else 200.0
        # A little noise that keeps Mondays Mondays.
        amount = base * (1 + 0.03 * ((offset * 7) % 5 - 2) / 2)
        if day == spike_day:
            amount = spike
        rows.append(
            sale_line(
                date=day, branch=branch, revenue=amount, cost=amount * 0.6, gross_profit=amount * 0.4, unit_price=amount
            )
        )
    return rows


DAY = dt.date(2024, 1, 10)


def kpi_of(page: str, label: str) -> str:
    return re.search(rf'data-kpi="{label}">([^<]+)<', page).group(1)


def rule(**fields) -> AlertRule:
    defaults = {"name": "rule", "datasource": "shop", "metric": "revenue", "kind": AlertRule.Kind.ANOMALY}
    return AlertRule.objects.create(**{**defaults, **fields})


def test_robust_z_ignores_the_usual_and_flags_the_unusual() -> None:
    history = [1000, 980, 1020, 1010, 995, 1005, 990, 1015]
    assert abs(robust_z(1012, history)[0]) < 1
    assert robust_z(3000, history)[0] > 10
    assert robust_z(100, history)[0] < -8


def test_one_monday_spike_among_normal_monday_peaks_opens_exactly_one_alert() -> None:
    spike_day = START + dt.timedelta(weeks=8)  # a Monday
    rows_publish(datasource="shop", rows=weekly_rows(spike_day=spike_day))
    anomaly = rule(name="Revenue anomaly", group_by="branch")
    alerts_backfill(datasource="shop", start=START, end=START + dt.timedelta(days=WEEKS * 7 - 1))
    events = list(AlertEvent.objects.filter(rule=anomaly))
    assert [(e.day, e.branch) for e in events] == [(spike_day, "A")]
    assert "spike" in events[0].message and "Monday" in events[0].message
    assert events[0].expected == pytest.approx(1000, rel=0.05)


def test_weekly_pattern_alone_never_fires() -> None:
    rows_publish(datasource="shop", rows=weekly_rows())
    rule(name="Revenue anomaly", group_by="branch")
    outcome = alerts_backfill(datasource="shop", start=START, end=START + dt.timedelta(days=WEEKS * 7 - 1))
    assert outcome.opened == 0


def test_threshold_fires_and_stays_quiet() -> None:
    rows_publish(datasource="shop", rows=weekly_rows())
    low = rule(kind=AlertRule.Kind.THRESHOLD, params={"operator": "below", "value": 500, "window_days": 1})
    monday, tuesday = START + dt.timedelta(weeks=2), START + dt.timedelta(weeks=2, days=1)
    assert alert_rule_evaluate(rule=low, day=monday).opened == 0
    assert alert_rule_evaluate(rule=low, day=tuesday).opened == 1
    high = rule(kind=AlertRule.Kind.THRESHOLD, params={"operator": "above", "value": 5000, "window_days": 7})
    assert alert_rule_evaluate(rule=high, day=tuesday).opened == 0


def test_change_fires_and_stays_quiet() -> None:
    rows = weekly_rows(days=14) + [sale_line(date=START + dt.timedelta(days=d), revenue=2000.0) for d in range(14, 21)]
    rows_publish(datasource="shop", rows=rows)
    change = rule(kind=AlertRule.Kind.CHANGE, params={"percent": 50, "direction": "up", "window_days": 7})
    assert alert_rule_evaluate(rule=change, day=START + dt.timedelta(days=13)).opened == 0  # week 2 vs week 1
    assert alert_rule_evaluate(rule=change, day=START + dt.timedelta(days=20)).opened == 1  # week 3 doubled
    down = rule(kind=AlertRule.Kind.CHANGE, params={"percent": 50, "direction": "down", "window_days": 7})
    assert alert_rule_evaluate(rule=down, day=START + dt.timedelta(days=20)).opened == 0


def test_freshness_fires_for_the_silent_branch_only_and_resolves() -> None:
    rows = weekly_rows(branch="A", days=30) + weekly_rows(branch="B", days=20)
    rows_publish(datasource="shop", rows=rows)
    fresh = rule(kind=AlertRule.Kind.FRESHNESS, params={"days": 5})
    day = START + dt.timedelta(days=29)
    assert alert_rule_evaluate(rule=fresh, day=day).opened == 1
    event = AlertEvent.objects.get(rule=fresh)
    assert event.branch == "B" and event.status == AlertEvent.Status.OPEN
    assert alert_rule_evaluate(rule=fresh, day=START + dt.timedelta(days=18)).resolved == 1


def test_quality_fires_on_failed_and_mostly_rejected_uploads_only(uploader_api, tasks_inline) -> None:
    import io

    def upload(name: str, text: str) -> None:
        handle = io.BytesIO(text.encode())
        handle.name = name
        uploader_api.post("/api/ingest/upload", {"file": handle, "datasource_name": "shop"})

    header = "Date,Branch,Product line,Quantity,Total\n"
    upload("good.csv", header + "".join(f"2024-01-{d:02d},A,Food,1,10\n" for d in range(1, 21)))
    upload("some-bad.csv", header + "".join(f"2024-02-{d:02d},A,Food,{'x' if d < 4 else 1},10\n" for d in range(1, 21)))
    upload("broken.csv", header + "".join(f"2024-03-{d:02d},A,Food,x,10\n" for d in range(1, 21)))
    assert IngestionTask.objects.filter(status="failed").count() == 1
    quality = rule(kind=AlertRule.Kind.QUALITY, params={"max_rejected_ratio": 0.10})
    alert_rule_evaluate(rule=quality, day=dt.date.today())
    messages = sorted(e.message for e in AlertEvent.objects.filter(rule=quality))
    assert len(messages) == 2
    assert "broken.csv failed" in messages[0] and "some-bad.csv rejected 15.0%" in messages[1]
    lenient = rule(kind=AlertRule.Kind.QUALITY, params={"max_rejected_ratio": 1.0, "on_failure": False})
    assert alert_rule_evaluate(rule=lenient, day=dt.date.today()).opened == 0


def test_open_alert_is_not_notified_again_and_resolves_when_clear(mailoutbox) -> None:
    rows_publish(datasource="shop", rows=weekly_rows(branch="A", days=30) + weekly_rows(branch="B", days=20))
    fresh = rule(kind=AlertRule.Kind.FRESHNESS, params={"days": 5}, notify_emails=["boss@example.com"])
    day = START + dt.timedelta(days=29)
    alert_rule_evaluate(rule=fresh, day=day)
    notifications_send_due()
    assert len(mailoutbox) == 1
    assert "No data for branch B" in mailoutbox[0].body
    assert mailoutbox[0].to == ["boss@example.com"]
    alert_rule_evaluate(rule=fresh, day=day)  # still firing: same event, no new notification
    notifications_send_due()
    assert len(mailoutbox) == 1
    assert AlertEvent.objects.filter(rule=fresh).count() == 1


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200
    location = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(type(self).status)
        if type(self).location:
            self.send_header("Location", type(self).location)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook_server(settings):
    # The listener is on loopback, which webhooks may call only when allowed.
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    _Receiver.received = []
    _Receiver.status = 200
    _Receiver.location = ""
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver
    server.shutdown()


def test_webhook_receives_json_with_slack_text(webhook_server) -> None:
    url, receiver = webhook_server
    spike_day = START + dt.timedelta(weeks=8)
    rows_publish(datasource="shop", rows=weekly_rows(spike_day=spike_day))
    rule(name="Spike watch", group_by="branch", webhook_url=url, severity="critical")
    alerts_evaluate(datasource="shop", day=spike_day)
    assert notifications_send_due() == 1
    content_type, payload = receiver.received[0]
    assert content_type == "application/json"
    assert payload["text"].startswith("[CRITICAL] Spike watch:")
    assert payload["alert"]["day"] == spike_day.isoformat()
    assert payload["alert"]["branch"] == "A"
    assert payload["alert"]["value"] == pytest.approx(3000)
    assert Notification.objects.get().status == Notification.Status.SENT


def test_failed_webhook_is_recorded_retried_and_never_breaks_evaluation(webhook_server) -> None:
    url, receiver = webhook_server
    receiver.status = 500
    spike_day = START + dt.timedelta(weeks=8)
    rows_publish(datasource="shop", rows=weekly_rows(spike_day=spike_day))
    rule(name="Spike watch", group_by="branch", webhook_url=url)
    assert alerts_evaluate(datasource="shop", day=spike_day).opened == 1
    notifications_send_due()
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.FAILED
    assert "500" in notification.last_error and notification.attempts == 1
    receiver.status = 200
    notifications_send_due()
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT and notification.attempts == 2


def test_publish_triggers_evaluation(uploader_api, tasks_inline) -> None:
    import io

    rule(kind=AlertRule.Kind.THRESHOLD, params={"operator": "above", "value": 5, "window_days": 1})
    handle = io.BytesIO(b"Date,Branch,Product line,Quantity,Total\n2024-01-01,A,Food,1,10\n")
    handle.name = "one.csv"
    uploader_api.post("/api/ingest/upload", {"file": handle, "datasource_name": "shop"})
    assert AlertEvent.objects.filter(rule__datasource="shop").count() == 1


def test_schedules_install_is_rerunnable() -> None:
    from django_q.models import Schedule

    call_command("install_schedules", stdout=None)
    call_command("install_schedules", stdout=None)
    assert set(Schedule.objects.values_list("func", flat=True)) == {
        "dashboard.tasks.alerts_evaluate_all_task",
        "dashboard.tasks.notifications_send_task",
        "ingestion.tasks.ingestion_tasks_reap_task",
        "ingestion.tasks.disk_sweep_task",
    }


def test_alerts_page_api_and_graphql_are_scoped(viewer, admin_user) -> None:
    rows_publish(datasource="shop", rows=weekly_rows(branch="A", days=30) + weekly_rows(branch="B", days=20))
    alert_rule_evaluate(rule=rule(kind=AlertRule.Kind.FRESHNESS, params={"days": 5}), day=START + dt.timedelta(29))
    user_branch_scope_set(user=viewer, branches=["A"])
    scoped = Client()
    scoped.force_login(viewer)
    assert "No data for branch B" not in scoped.get("/alerts").content.decode()
    assert scoped.get("/api/alerts").json()["count"] == 0
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/alerts").content.decode()
    assert "No data for branch B" in page and "New rule" in page
    event = AlertEvent.objects.get()
    assert admin.get("/api/alerts?status=open").json()["items"][0]["branch"] == "B"
    graphql = admin.post("/graphql", {"query": "{ alerts { branch status message } }"}, content_type="application/json")
    assert graphql.json()["data"]["alerts"][0]["branch"] == "B"
    admin.post(f"/alerts/{event.pk}/acknowledge")
    event.refresh_from_db()
    assert event.status == AlertEvent.Status.ACKNOWLEDGED
    admin.post(f"/alerts/{event.pk}/resolve")
    event.refresh_from_db()
    assert event.status == AlertEvent.Status.RESOLVED


def test_alert_times_are_shown_in_the_site_time_zone_with_its_abbreviation(admin_user, settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    rows_publish(datasource="shop", rows=weekly_rows(branch="A", days=30) + weekly_rows(branch="B", days=20))
    alert_rule_evaluate(rule=rule(kind=AlertRule.Kind.FRESHNESS, params={"days": 5}), day=START + dt.timedelta(29))
    AlertEvent.objects.update(opened_at=dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC))
    admin = Client()
    admin.force_login(admin_user)

    assert "opened 2025-01-15 07:00 EST" in admin.get("/alerts").content.decode()
    admin.post(f"/alerts/{AlertEvent.objects.get().pk}/resolve")
    AlertEvent.objects.update(resolved_at=dt.datetime(2025, 7, 15, 12, 0, tzinfo=dt.UTC))
    assert "<td>2025-01-15 07:00 EST</td><td>2025-07-15 08:00 EDT</td>" in admin.get("/alerts").content.decode()


def test_rule_editor_for_admins_only(viewer, admin_user) -> None:
    client = Client()
    client.force_login(viewer)
    assert client.get("/alerts/rules/new").status_code == 403
    client.force_login(admin_user)
    response = client.post(
        "/alerts/rules/new",
        {
            "name": "Low Mondays",
            "datasource": "shop",
            "metric": "revenue",
            "filters": '{"branch": ["A"]}',
            "group_by": "",
            "kind": "threshold",
            "params": '{"operator": "below", "value": 100}',
            "severity": "warning",
            "enabled": "on",
            "notify_emails": '["a@example.com"]',
            "webhook_url": "",
        },
    )
    assert response.status_code == 302, response.content
    assert AlertRule.objects.get().params == {"operator": "below", "value": 100}
    bad = client.post(
        "/alerts/rules/new",
        {
            "name": "x",
            "datasource": "shop",
            "metric": "revenue",
            "filters": "{}",
            "kind": "threshold",
            "params": '{"nonsense": 1}',
            "severity": "info",
            "notify_emails": "[]",
        },
    )
    assert "Unknown parameter" in bad.content.decode()


@pytest.mark.slow
def test_demo_backfill_opens_an_alert_for_every_manifest_anomaly_and_none_elsewhere() -> None:
    import io

    from ingestion.demo import demo_manifest_load

    call_command(
        "load_demo",
        "--rows",
        "60000",
        "--datasource",
        "demo",
        "--seed",
        "7",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    anomalies = demo_manifest_load("demo")
    assert anomalies
    anomaly = rule(name="Branch revenue anomaly", datasource="demo", group_by="branch")
    call_command("alerts_backfill", "--datasource", "demo", stdout=io.StringIO())
    opened = {(event.day.isoformat(), event.branch) for event in AlertEvent.objects.filter(rule=anomaly)}
    expected = {(item["date"], item["branch"]) for item in anomalies}
    assert opened == expected


def test_a_group_with_no_rows_is_zero_for_a_threshold_and_a_change() -> None:
    # Branch B sells nothing from 8 Jan: below-threshold and down-50 % per branch must name it
    # (both only looked at the groups that had rows in the window).
    rows = [sale_line(date=dt.date(2024, 1, d), branch=b, revenue=1000.0) for d in range(1, 8) for b in "AB"]
    rows += [sale_line(date=dt.date(2024, 1, d), branch="A", revenue=1000.0) for d in range(8, 15)]
    rows_publish(datasource="shop", rows=rows)
    low = rule(kind="threshold", group_by="branch", params={"operator": "below", "value": 100, "window_days": 1})
    drop = rule(kind="change", group_by="branch", params={"percent": 50, "direction": "down", "window_days": 7})
    for checked in (low, drop):
        alert_rule_evaluate(rule=checked, day=dt.date(2024, 1, 14))
        assert list(AlertEvent.objects.filter(rule=checked).values_list("branch", flat=True)) == ["B"]
    assert "changed -100.0%" in AlertEvent.objects.get(rule=drop).message


def test_a_tax_rule_stays_quiet_over_lines_whose_tax_is_unknown() -> None:
    # A file without a tax column: "tax 0.00 is below 1.00" was an alert about a number nobody had.
    rows_publish(datasource="shop", rows=[sale_line(date=dt.date(2024, 1, 8), tax=None)])
    low = rule(kind="threshold", metric="tax", params={"operator": "below", "value": 1, "window_days": 1})

    assert alert_rule_evaluate(rule=low, day=dt.date(2024, 1, 8)).opened == 0


def test_freshness_scheduled_fires_when_the_whole_feed_stops() -> None:
    # Every branch stopped on 10 Jan 2024: counted from the last day with data nothing is missing.
    from dashboard.tasks import alerts_evaluate_all_task

    rows_publish(
        datasource="shop", rows=[sale_line(date=dt.date(2024, 1, d), branch=b) for d in range(1, 11) for b in "AB"]
    )
    fresh = rule(kind="freshness", params={"days": 3})
    alerts_evaluate_all_task()  # the hourly schedule
    assert sorted(AlertEvent.objects.filter(rule=fresh).values_list("branch", flat=True)) == ["A", "B"]


def test_a_failed_upload_is_seen_by_the_quality_rule_at_once_even_before_any_data(uploader_api, tasks_inline) -> None:
    quality = rule(kind="quality", params={"on_failure": True})
    content = b"Date,Branch,Product line,Quantity,Total\n" + b"".join(
        b"2024-01-%02d,A,Food,x,10\n" % d for d in range(1, 21)
    )
    upload = io.BytesIO(content)
    upload.name = "broken.csv"
    assert uploader_api.post("/api/ingest/upload", {"file": upload, "datasource_name": "shop"}).status_code == 202
    assert IngestionTask.objects.get().status == IngestionTask.Status.FAILED
    (event,) = AlertEvent.objects.filter(rule=quality)
    assert event.message.startswith("Upload broken.csv failed:")


def test_an_event_links_to_the_dashboard_of_its_scope(admin_user) -> None:
    rows = [
        sale_line(date=DAY, product_line="Food & Drinks", branch="A", revenue=10.0),
        sale_line(date=DAY, product_line="Toys", branch="B", revenue=500.0),
    ]
    rows += [sale_line(date=dt.date(2024, 1, d), product_line="Toys", branch="C", revenue=1.0) for d in range(1, 4)]
    rows_publish(datasource="shop", rows=rows)
    low = rule(kind="threshold", group_by="product_line", params={"operator": "below", "value": 100, "window_days": 1})
    fresh = rule(kind="freshness", params={"days": 5})
    alert_rule_evaluate(rule=low, day=DAY)
    alert_rule_evaluate(rule=fresh, day=DAY)
    browser = Client()
    browser.force_login(admin_user)
    page = browser.get("/alerts").content.decode()
    links = {html.unescape(href) for href in re.findall(r'<a href="([^"]+)">Open the dashboard for this scope', page)}
    by_scope = {("product_line=Food+%26+Drinks" in link, "branch=C" in link): link for link in links}
    food = by_scope[(True, False)]  # the ampersand was not encoded: the page filtered on "Food "
    assert kpi_of(browser.get(food).content.decode(), "Revenue") == "10.00"
    stale_c = by_scope[(False, True)]  # a freshness event names its branch, which the link lost
    assert kpi_of(browser.get(stale_c).content.decode(), "Revenue") == "3.00"


@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("threshold", {"operator": "Above", "value": 1000}, "operator must be one of above, below"),
        ("threshold", {"operator": "below", "value": 1000, "window_days": 0}, "window_days must be between 1"),
        ("threshold", {"operator": "below", "value": "1k"}, "value must be a number"),
        ("change", {"direction": "Down", "percent": 10}, "direction must be one of up, down, either"),
        ("anomaly", {"weeks": 2.5}, "weeks must be a whole number"),
        ("quality", {"on_failure": "yes"}, "on_failure must be true or false"),
        ("freshness", {"hours": 3}, "Unknown parameter 'hours'"),
    ],
)
def test_the_rule_editor_refuses_conditions_that_would_invert_or_break_a_rule(admin_user, kind, params, error) -> None:
    # "Above" was read as below; a window of 0 or a value "1k" failed every evaluation, unseen.
    browser = Client()
    browser.force_login(admin_user)
    response = browser.post(
        "/alerts/rules/new",
        {
            "name": "r",
            "datasource": "shop",
            "metric": "revenue",
            "filters": "{}",
            "group_by": "",
            "kind": kind,
            "params": json.dumps(params),
            "severity": "warning",
            "enabled": "on",
            "notify_emails": "[]",
            "webhook_url": "",
        },
    )
    assert response.status_code == 200
    assert error in html.unescape(response.content.decode())
    assert not AlertRule.objects.exists()


def rule_form(**fields) -> dict:
    """The rule editor's POST body: a threshold that fires for any sale, per branch, by email."""
    return {
        "name": "Every branch",
        "datasource": "shop",
        "metric": "revenue",
        "filters": "{}",
        "group_by": "branch",
        "kind": "threshold",
        "params": '{"operator": "above", "value": 0}',
        "severity": "warning",
        "enabled": "on",
        "notify_emails": '["manager@example.com"]',
        "webhook_url": "",
        **fields,
    }


def scoped_staff(branches: list[str], role: str = "admin") -> tuple:
    from tests.factories import UserFactory

    user = UserFactory(role=role, is_staff=True)
    user_branch_scope_set(user=user, branches=branches)
    browser = Client()
    browser.force_login(user)
    return user, browser


LAST_DAY = START + dt.timedelta(days=29)


def branches_notified() -> set[str]:
    return set(Notification.objects.values_list("event__branch", flat=True))


def test_a_scoped_user_s_rule_is_evaluated_within_their_branches_and_stays_so(role_groups, admin_user) -> None:
    rows_publish(datasource="shop", rows=[row for b in "ABC" for row in weekly_rows(branch=b, days=30)])
    author, scoped = scoped_staff(["A"])
    assert scoped.post("/alerts/rules/new", rule_form()).status_code == 302
    created = AlertRule.objects.get()

    alerts_evaluate(datasource="shop", day=LAST_DAY)
    assert set(AlertEvent.objects.values_list("branch", flat=True)) == {"A"}
    assert branches_notified() == {"A"}

    # Head office edits the rule, then the author's account goes: the rule still sees branch A only.
    head_office = Client()
    head_office.force_login(admin_user)
    edited = rule_form(name="Renamed", params='{"operator": "above", "value": 1}')
    assert head_office.post(f"/alerts/rules/{created.pk}", edited).status_code == 302
    author.delete()
    AlertEvent.objects.all().delete()
    alerts_evaluate(datasource="shop", day=LAST_DAY)
    assert set(AlertEvent.objects.values_list("branch", flat=True)) == {"A"}
    assert branches_notified() == {"A"}


def test_a_scoped_user_s_rule_narrows_with_their_scope(role_groups) -> None:
    rows_publish(datasource="shop", rows=[row for b in "AB" for row in weekly_rows(branch=b, days=30)])
    author, scoped = scoped_staff(["A", "B"])
    assert scoped.post("/alerts/rules/new", rule_form(kind="freshness", params="{}")).status_code == 302
    user_branch_scope_set(user=author, branches=["A"])
    alerts_evaluate(datasource="shop", day=LAST_DAY + dt.timedelta(days=10))
    assert set(AlertEvent.objects.values_list("branch", flat=True)) == {"A"}


def test_a_scoped_user_s_quality_rule_watches_their_own_uploads_only(role_groups, uploader_api, tasks_inline) -> None:
    broken = io.BytesIO(b"Date,Branch,Product line,Quantity,Total\n" + b"2024-01-01,B,Food,x,10\n" * 20)
    broken.name = "branch-b.csv"
    assert uploader_api.post("/api/ingest/upload", {"file": broken, "datasource_name": "shop"}).status_code == 202
    _, scoped = scoped_staff(["A"])
    assert scoped.post("/alerts/rules/new", rule_form(kind="quality", params="{}", group_by="")).status_code == 302
    alerts_evaluate(datasource="shop")
    assert not AlertEvent.objects.exists()


def test_a_scoped_user_cannot_make_a_rule_about_other_branches(role_groups) -> None:
    _, scoped = scoped_staff(["A"])
    response = scoped.post("/alerts/rules/new", rule_form(filters='{"branch": ["A", "B", "C"]}'))
    assert response.status_code == 200
    assert "You may watch only your branches (A); remove B, C from the branch filter." in html.unescape(
        response.content.decode()
    )
    assert not AlertRule.objects.exists()


def test_a_scoped_user_lists_and_edits_only_the_rules_within_their_branches(role_groups, admin_user) -> None:
    head_office_rule = rule(name="Head office watch", created_by=admin_user, webhook_url="https://hooks.example.com/ho")
    branch_a_rule = rule(name="Branch A watch", created_by=admin_user, filters={"branch": ["A"]})
    wider_rule = rule(name="A and B watch", created_by=admin_user, filters={"branch": ["A", "B"]})
    author, scoped = scoped_staff(["A"])
    own_rule = rule(name="My own watch", created_by=author, scope_branches=["A"])

    page = scoped.get("/alerts").content.decode()
    assert "Branch A watch" in page and "My own watch" in page
    assert "Head office watch" not in page and "A and B watch" not in page
    for hidden in (head_office_rule, wider_rule):
        assert scoped.get(f"/alerts/rules/{hidden.pk}").status_code == 404
        assert scoped.post(f"/alerts/rules/{hidden.pk}", rule_form(name="mine")).status_code == 404
        assert scoped.post(f"/alerts/rules/{hidden.pk}/delete").status_code == 404
    assert AlertRule.objects.get(pk=head_office_rule.pk).name == "Head office watch"
    assert AlertRule.objects.count() == 4
    assert "https://hooks.example.com/ho" not in page

    # Editing a head office rule within their branches keeps it there.
    assert scoped.post(f"/alerts/rules/{branch_a_rule.pk}", rule_form(filters="{}")).status_code == 302
    branch_a_rule.refresh_from_db()
    assert (branch_a_rule.filters, branch_a_rule.scope_branches) == ({}, ["A"])
    assert scoped.get(f"/alerts/rules/{own_rule.pk}").status_code == 200


def test_the_rules_api_shows_a_scoped_viewer_the_rules_within_their_branches(role_groups, admin_user, viewer) -> None:
    rule(name="Head office watch", created_by=admin_user)
    rule(name="Branch A watch", created_by=admin_user, filters={"branch": ["A"]})
    rule(name="Branch B watch", created_by=admin_user, filters={"branch": ["B"]})
    _, scoped = scoped_staff(["A"], role="viewer")
    assert [r["name"] for r in scoped.get("/api/alerts/rules").json()] == ["Branch A watch"]
    everyone = Client()
    everyone.force_login(viewer)
    assert len(everyone.get("/api/alerts/rules").json()) == 3


def test_the_django_admin_of_alerts_is_for_unscoped_staff_only(role_groups, admin_user) -> None:
    rule(name="Head office watch", created_by=admin_user)
    _, scoped = scoped_staff(["A"])
    head_office = Client()
    head_office.force_login(admin_user)
    for path in ("/admin/dashboard/alertrule/", "/admin/dashboard/alertevent/", "/admin/dashboard/notification/"):
        assert scoped.get(path).status_code == 403, path
        assert head_office.get(path).status_code == 200, path
    assert "/admin/dashboard/" not in scoped.get("/admin/").content.decode()


def test_the_migration_gives_existing_rules_of_scoped_users_their_scope(role_groups, admin_user) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("dashboard.migrations.0003_alert_rule_scope_branches")
    author, _ = scoped_staff(["B", "A"])
    theirs = rule(name="theirs", created_by=author)
    head_office = rule(name="head office", created_by=admin_user)
    migration.scope_existing_rules(apps, None)
    theirs.refresh_from_db()
    head_office.refresh_from_db()
    assert (theirs.scope_branches, head_office.scope_branches) == (["A", "B"], None)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1, a private, loopback or link-local address"),
        ("http://localhost/hook", "a private, loopback or link-local address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a private, loopback or link-local address"),
        ("http://10.1.2.3/hook", "10.1.2.3, a private, loopback or link-local address"),
        ("http://[::1]/hook", "::1, a private, loopback or link-local address"),
        ("http://[::ffff:192.168.0.1]/hook", "a private, loopback or link-local address"),
        ("ftp://93.184.215.14/hook", "must start with http:// or https://"),
        ("https://no-such-host.invalid/hook", "could not be found"),
    ],
)
def test_the_rule_editor_refuses_a_webhook_to_an_internal_address(admin_user, url: str, error: str) -> None:
    browser = Client()
    browser.force_login(admin_user)
    response = browser.post("/alerts/rules/new", rule_form(webhook_url=url))
    assert response.status_code == 200
    assert error in html.unescape(response.content.decode())
    assert not AlertRule.objects.exists()


def test_the_rule_editor_takes_a_public_webhook_and_an_internal_one_when_allowed(admin_user, settings) -> None:
    browser = Client()
    browser.force_login(admin_user)
    assert browser.post("/alerts/rules/new", rule_form(webhook_url="https://93.184.215.14/hook")).status_code == 302
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    response = browser.post("/alerts/rules/new", rule_form(name="Intranet", webhook_url="http://10.1.2.3/hook"))
    assert response.status_code == 302
    assert AlertRule.objects.get(name="Intranet").webhook_url == "http://10.1.2.3/hook"


def test_a_webhook_that_turned_internal_is_refused_at_send_time(webhook_server, settings) -> None:
    # Saved when allowed, or when its name resolved elsewhere: the send checks again.
    url, receiver = webhook_server
    spike_day = START + dt.timedelta(weeks=8)
    rows_publish(datasource="shop", rows=weekly_rows(spike_day=spike_day))
    rule(name="Spike watch", group_by="branch", webhook_url=url)
    alerts_evaluate(datasource="shop", day=spike_day)
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
    notifications_send_due()
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.FAILED
    assert "127.0.0.1, a private, loopback or link-local address" in notification.last_error
    assert receiver.received == []


def test_a_webhook_redirect_is_not_followed(webhook_server) -> None:
    url, receiver = webhook_server
    receiver.status, receiver.location = 307, url.replace("/hook", "/elsewhere")
    spike_day = START + dt.timedelta(weeks=8)
    rows_publish(datasource="shop", rows=weekly_rows(spike_day=spike_day))
    rule(name="Spike watch", group_by="branch", webhook_url=url)
    alerts_evaluate(datasource="shop", day=spike_day)
    notifications_send_due()
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.FAILED
    assert "redirects are not followed" in notification.last_error
    assert len(receiver.received) == 1


def test_a_blank_alert_status_is_not_given(viewer_api) -> None:
    response = viewer_api.get("/api/alerts?status=&limit=")
    assert response.status_code == 200, response.content
    assert response.json() == viewer_api.get("/api/alerts").json()


def _admin_rule_form(**fields) -> dict:
    """The Django admin's add form for a rule, as a browser posts it."""
    return {**rule_form(), **fields}


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("metric", "nonsense", "Select a valid choice. nonsense is not one of the available choices."),
        ("params", '{"above": "abc", "weird": 1}', "Unknown parameter 'above' for this kind"),
        ("params", '{"operator": "above", "value": "abc"}', "value must be a number (got 'abc')"),
        ("filters", '{"branch": "A"}', 'Use {"dimension": ["value", …]}, each value in quotes.'),
        ("notify_emails", '"not-an-email"', 'Use a list of addresses in quotes, e.g. ["manager@example.com"].'),
        ("notify_emails", '["not-an-email"]', "Enter a valid email address."),
        ("webhook_url", "http://127.0.0.1:8000/hook", "a private, loopback or link-local address"),
    ],
)
def test_the_django_admin_checks_a_rule_as_the_rule_editor_does(admin_user, field, value, error) -> None:
    # The admin saved all of these; each then failed every evaluation, unseen.
    browser = Client()
    browser.force_login(admin_user)
    response = browser.post("/admin/dashboard/alertrule/add/", _admin_rule_form(**{field: value}))
    assert response.status_code == 200
    assert error in html.unescape(response.content.decode())
    assert not AlertRule.objects.exists()


def test_a_rule_added_in_the_django_admin_is_saved_as_the_rule_editor_saves_it(admin_user) -> None:
    browser = Client()
    browser.force_login(admin_user)
    assert browser.post("/admin/dashboard/alertrule/add/", _admin_rule_form()).status_code == 302
    saved = AlertRule.objects.get()
    assert (saved.created_by, saved.scope_branches) == (admin_user, None)
    assert saved.params == {"operator": "above", "value": 0}


def test_alerts_backfill_fails_naming_the_rules_it_could_not_evaluate() -> None:
    rows_publish(datasource="shop", rows=weekly_rows(days=3))
    broken = rule(name="Broken", metric="nonsense", kind=AlertRule.Kind.THRESHOLD)
    rule(name="Fine", kind=AlertRule.Kind.THRESHOLD, params={"operator": "below", "value": 0})
    out = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("alerts_backfill", "--datasource", "shop", stdout=out)
    assert "Evaluated 2024-01-01 to 2024-01-03: 0 opened, 0 resolved." in out.getvalue()
    message = str(refused.value)
    assert message.startswith("1 rule could not be evaluated")
    assert f"rule {broken.pk} “Broken” (2024-01-03)" in message and "Fine" not in message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('status: "bogus"', "Unknown alert status 'bogus'"),
        ('status: "OPEN"', "Unknown alert status 'OPEN'"),
        ("limit: 0", "limit must be between 1 and 500"),
        ("limit: -3", "limit must be between 1 and 500"),
        ("limit: 501", "limit must be between 1 and 500"),
    ],
)
def test_graphql_alerts_refuses_what_rest_refuses(viewer_api, arguments: str, message: str) -> None:
    rest = viewer_api.get("/api/alerts", {"status": "OPEN"} if "OPEN" in arguments else {"status": "bogus"})
    assert rest.status_code == 422
    query = f"{{ alerts({arguments}) {{ id }} }}"
    response = viewer_api.post("/graphql", {"query": query}, content_type="application/json").json()
    (error,) = response["errors"]
    assert message in error["message"]
    assert error["extensions"]["code"] == rest.json()["code"] == "invalid_request"


def test_graphql_alerts_takes_a_known_status_and_a_limit_in_range(viewer_api) -> None:
    query = '{ alerts(status: "open", limit: 500) { id } }'
    response = viewer_api.post("/graphql", {"query": query}, content_type="application/json").json()
    assert response == {"data": {"alerts": []}}
