"""Who may do what, across every REST operation and every GraphQL root field and mutation.

The REST operations come from the NinjaAPI's own OpenAPI paths and the GraphQL fields from the
schema, so a new endpoint or field fails `test_every_*_is_in_the_matrix` until it is classified here.
Callers: anonymous, bad token, a user with no role, viewer, branch-scoped viewer (A), uploader, admin.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from graphql import get_introspection_query

from analytics.runner import OTHER_UPLOAD_NAME
from analytics.services import datasource_get_or_create
from dashboard.models import AlertEvent, AlertRule
from ingestion.models import IngestionTask
from sales_analytics.api import api
from sales_analytics.graphql_view import MAX_QUERY_DEPTH
from sales_analytics.schema import schema as graphql_schema
from tests.api.conftest import BRANCH_A_REVENUE, OTHER_BRANCH_REVENUE, REVENUE, bearer
from tests.conftest import REAL_FILE

pytestmark = pytest.mark.django_db

# --- The REST matrix --------------------------------------------------------------------

PUBLIC = {"GET /api/health", "HEAD /api/health"}
# Need the `upload_data` capability (uploader, admin).
UPLOADS = {
    "POST /api/ingest/upload",
    "POST /api/ingest/preview",
    "POST /api/ingest/tasks/{task_id}/retry",
    "POST /api/ingest/tasks/{task_id}/cancel",
}
# Need `view_dashboards` (every role): reads, and acting on alerts, which viewers may do.
READS = {
    "GET /api/ingest/tasks",
    "GET /api/ingest/status/{task_id}",
    "GET /api/ingest/tasks/{task_id}",
    "GET /api/ingest/tasks/{task_id}/error-report",
    "GET /api/metrics/summary",
    "GET /api/metrics/timeseries",
    "GET /api/metrics/topn",
    "GET /api/metrics/breakdown",
    "GET /api/metrics/compare",
    "GET /api/alerts",
    "GET /api/alerts/rules",
    "POST /api/alerts/{event_id}/acknowledge",
    "POST /api/alerts/{event_id}/resolve",
}
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, methods in api.get_openapi_schema(path_prefix="/api/")["paths"].items()
    for method in methods
)
SUCCESS = {
    "POST /api/ingest/upload": 202,
    "POST /api/ingest/tasks/{task_id}/retry": 202,
}
SAMPLE = b"".join(REAL_FILE.read_bytes().splitlines(keepends=True)[:21]) if REAL_FILE.exists() else b""


@dataclass
class World:
    """Objects the requests point at; fresh tasks for the calls that change one."""

    task_id: str  # finished, with an error report
    event_ids: list[int]

    def task(self, status: str) -> str:
        datasource = datasource_get_or_create(name="scratch")
        raw_key = default_storage.save("raw/scratch/access/sample.csv", ContentFile(SAMPLE))
        task = IngestionTask.objects.create(
            datasource=datasource, status=status, original_filename="sample.csv", sha256="0" * 64, raw_key=raw_key
        )
        return str(task.pk)


@pytest.fixture
def world(role_groups) -> World:
    datasource = datasource_get_or_create(name="scratch")
    report_key = default_storage.save("reports/scratch/access/errors.csv", ContentFile(b"row,column,value,reason\n"))
    task = IngestionTask.objects.create(
        datasource=datasource,
        status=IngestionTask.Status.SUCCEEDED,
        original_filename="sample.csv",
        sha256="1" * 64,
        error_report_key=report_key,
    )
    rule = AlertRule.objects.create(name="Revenue floor", kind=AlertRule.Kind.THRESHOLD, group_by="branch")
    events = [
        AlertEvent.objects.create(rule=rule, key=f"branch={branch}", branch=branch, message=f"{branch} low", value=1.0)
        for branch in ("A", "B", "")
    ]
    return World(task_id=str(task.pk), event_ids=[event.pk for event in events])


def rest_call(client: Client, operation: str, world: World):
    """Send `operation` with sensible parameters; calls that change a task get a fresh one."""
    method, path = operation.split(" ", 1)
    task_id = world.task_id
    if operation.endswith("/retry"):
        task_id = world.task(IngestionTask.Status.FAILED)
    elif operation.endswith("/cancel"):
        task_id = world.task(IngestionTask.Status.QUEUED)
    url = path.replace("{task_id}", task_id).replace("{event_id}", str(world.event_ids[0]))
    if method == "GET":
        return client.get(url)
    if method == "HEAD":
        return client.head(url)
    if operation in ("POST /api/ingest/upload", "POST /api/ingest/preview"):
        return client.post(url, {"file": ContentFile(SAMPLE, name="sample.csv"), "datasource_name": "scratch"})
    return client.post(url)


def assert_refused(response, status: int, code: str, operation: str) -> None:
    assert response.status_code == status, f"{operation}: {response.status_code} {response.content[:300]!r}"
    assert response["Content-Type"].startswith("application/json"), operation
    assert "Location" not in response, f"{operation} redirects"
    body = response.json()
    assert body["code"] == code and body["detail"], (operation, body)


def test_every_rest_operation_is_in_the_matrix() -> None:
    assert set(OPERATIONS) == PUBLIC | UPLOADS | READS


@pytest.mark.parametrize(
    "caller", ["anonymous", "bad token", "revoked token", "non-bearer header", "session without login"]
)
def test_unauthenticated_rest_calls_are_401_json(caller: str, world, viewer) -> None:
    from accounts.services import api_token_create, api_token_revoke

    headers = {
        "anonymous": {},
        "bad token": {"HTTP_AUTHORIZATION": "Bearer not-a-real-token"},
        "revoked token": {},
        "non-bearer header": {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
        "session without login": {},
    }[caller]
    if caller == "revoked token":
        token, raw = api_token_create(user=viewer)
        api_token_revoke(token=token)
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    client = Client(**headers)
    for operation in OPERATIONS:
        response = rest_call(client, operation, world)
        if operation in PUBLIC:
            assert response.status_code in (200, 503), operation
            continue
        assert_refused(response, 401, "not_authenticated", operation)
        assert response["WWW-Authenticate"].startswith("Bearer"), operation


def test_user_without_role_gets_403_everywhere(roleless_user, world) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(roleless_user)["Authorization"])
    for operation in OPERATIONS:
        response = rest_call(client, operation, world)
        if operation in PUBLIC:
            assert response.status_code in (200, 503)
            continue
        assert_refused(response, 403, "permission_denied", operation)


@pytest.mark.parametrize("role", ["viewer", "uploader", "admin"])
@pytest.mark.parametrize("auth", ["token", "session"])
def test_roles_across_every_rest_operation(role: str, auth: str, world, make_user) -> None:
    user = make_user(role, is_staff=role == "admin")
    if auth == "token":
        client = Client(HTTP_AUTHORIZATION=bearer(user)["Authorization"])
    else:
        client = Client()  # the test client does not enforce CSRF; tests/accounts covers that
        client.force_login(user)
    may_upload = role in ("uploader", "admin")
    for operation in OPERATIONS:
        before = IngestionTask.objects.count()
        response = rest_call(client, operation, world)
        if operation in UPLOADS and not may_upload:
            assert_refused(response, 403, "permission_denied", operation)
            # Refused means nothing changed: no new task beyond the one the call prepared.
            assert IngestionTask.objects.count() <= before + 1, operation
            continue
        expected = SUCCESS.get(operation, 200)
        assert response.status_code == expected, (
            f"{role} {operation}: {response.status_code} {response.content[:300]!r}"
        )


def test_viewer_refusals_change_nothing(viewer, world) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    failed, queued = world.task(IngestionTask.Status.FAILED), world.task(IngestionTask.Status.QUEUED)
    tasks = IngestionTask.objects.count()
    assert_refused(client.post(f"/api/ingest/tasks/{failed}/retry"), 403, "permission_denied", "retry")
    assert_refused(client.post(f"/api/ingest/tasks/{queued}/cancel"), 403, "permission_denied", "cancel")
    upload = client.post("/api/ingest/upload", {"file": ContentFile(SAMPLE, name="sample.csv")})
    assert_refused(upload, 403, "permission_denied", "upload")
    assert IngestionTask.objects.count() == tasks
    statuses = dict(IngestionTask.objects.filter(pk__in=[failed, queued]).values_list("pk", "status"))
    assert sorted(statuses.values()) == ["failed", "queued"]


# --- The GraphQL matrix -----------------------------------------------------------------

DASHBOARD = """
query Dashboard($filters: FiltersInput) {
  dashboardData(filters: $filters) {
    datasource
    revenueSummary {
      totalRevenue totalCost grossProfit grossMargin lines transactions unitsSold averageTicket dataVersion
    }
    salesOverTime(grain: "month") { period revenue grossProfit transactions unitsSold }
    topProducts(limit: 10, metric: "revenue") { productLine value revenue unitsSold grossProfit grossMargin }
    branches { branch revenue grossProfit grossMargin transactions averageTicket unitsSold }
    profitability { branch productLine revenue grossProfit grossMargin }
    uploads { uploadId name uploadedAt }
  }
}
"""
QUERIES = {
    "viewer": "{ viewer { username roles } }",
    "dashboardData": DASHBOARD,
    "ingestionTask": 'query { ingestionTask(id: "TASK") { id status datasource errorReportUrl } }',
    "ingestionTasks": "{ ingestionTasks(limit: 5) { totalCount items { id datasource status } } }",
    "alerts": "{ alerts { id rule branch value status message } }",
}
MUTATIONS = {
    "uploadFile": (
        'mutation($file: Upload!) { uploadFile(file: $file, datasourceName: "scratch") { task { id status } } }'
    ),
    "retryIngestionTask": 'mutation { retryIngestionTask(id: "TASK") { task { id status } } }',
    "cancelIngestionTask": 'mutation { cancelIngestionTask(id: "TASK") { task { id status } } }',
}


def graphql_call(client: Client, field: str, world: World):
    if field == "uploadFile":
        operations = {"query": MUTATIONS[field], "variables": {"file": None}}
        return client.post(
            "/graphql",
            {
                "operations": json.dumps(operations),
                "map": json.dumps({"0": ["variables.file"]}),
                "0": ContentFile(SAMPLE, name="sample.csv"),
            },
        )
    document = QUERIES.get(field) or MUTATIONS[field]
    task_id = world.task_id
    if field == "retryIngestionTask":
        task_id = world.task(IngestionTask.Status.FAILED)
    elif field == "cancelIngestionTask":
        task_id = world.task(IngestionTask.Status.QUEUED)
    return client.post("/graphql", {"query": document.replace("TASK", task_id)}, content_type="application/json")


def test_every_graphql_field_is_in_the_matrix() -> None:
    schema = graphql_schema.graphql_schema
    assert set(schema.query_type.fields) == set(QUERIES)
    assert set(schema.mutation_type.fields) == set(MUTATIONS)


@pytest.mark.parametrize("header", [None, "Bearer not-a-real-token", "Token abc"])
def test_unauthenticated_graphql_is_401_json(header: str | None, world) -> None:
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    for field in [*QUERIES, *MUTATIONS]:
        response = graphql_call(client, field, world)
        assert response.status_code == 401, field
        assert response["Content-Type"].startswith("application/json") and "Location" not in response
        assert response.json()["errors"][0]["extensions"]["code"] == "not_authenticated", field


def test_graphql_user_without_role_is_403(roleless_user, world) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(roleless_user)["Authorization"])
    for field in [*QUERIES, *MUTATIONS]:
        response = graphql_call(client, field, world)
        assert response.status_code == 403, field
        assert response.json()["errors"][0]["extensions"]["code"] == "permission_denied", field


@pytest.mark.parametrize("role", ["viewer", "uploader", "admin"])
def test_roles_across_every_graphql_field(role: str, world, make_user) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(make_user(role))["Authorization"])
    for field in QUERIES:
        response = graphql_call(client, field, world)
        assert response.status_code == 200, (field, response.content[:300])
        body = response.json()
        assert "errors" not in body and body["data"][field] is not None, (role, field, body)
    for field in MUTATIONS:
        response = graphql_call(client, field, world)
        assert response.status_code == 200, (field, response.content[:300])
        body = response.json()
        if role == "viewer":
            assert body["data"] is None or body["data"][field] is None, field
            assert body["errors"][0]["extensions"]["code"] == "permission_denied", (field, body)
        else:
            assert "errors" not in body, (role, field, body)
            assert body["data"][field]["task"]["status"] in ("queued", "cancelled"), (field, body)


def test_graphql_viewer_mutations_change_nothing(viewer, world) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    tasks = IngestionTask.objects.count()
    assert graphql_call(client, "uploadFile", world).json()["errors"][0]["extensions"]["code"] == "permission_denied"
    assert IngestionTask.objects.count() == tasks


# --- Branch scope -----------------------------------------------------------------------


SCOPED_REST = [
    "/api/metrics/summary",
    "/api/metrics/summary?branch=A&branch=B&branch=C",
    "/api/metrics/timeseries?grain=month&split_by=branch&metric=revenue&metric=units_sold",
    "/api/metrics/timeseries?grain=week",
    "/api/metrics/topn?dimension=branch&n=10",
    "/api/metrics/topn?dimension=product_line&metric=gross_profit",
    "/api/metrics/breakdown?by=branch&metric=revenue&metric=transactions",
    "/api/metrics/breakdown?by=branch&by=product_line&metric=revenue",
    "/api/metrics/breakdown?by=payment",
    "/api/metrics/compare?start=2019-02-01&end=2019-02-28",
    "/api/metrics/compare?start=2019-03-01&end=2019-03-30&comparison=previous_period&metric=revenue",
]
VOLATILE = {"cached", "timings", "engine", "source"}


def numbers_in(value) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers_in(item)


def branches_in(value) -> set[str]:
    """Every value of a `branch` key anywhere in a response body."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "branch" and isinstance(item, str):
                found.add(item)
            found |= branches_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= branches_in(item)
    return found


def assert_no_other_branch(body, where: str) -> None:
    assert branches_in(body) <= {"A"}, (where, branches_in(body))
    for number in numbers_in(body):
        for branch, revenue in OTHER_BRANCH_REVENUE.items():
            assert abs(number - revenue) > 0.005, f"{where}: branch {branch}'s revenue {revenue} leaked"
    # Nor the all-branches total.
    assert all(abs(number - REVENUE) > 0.005 for number in numbers_in(body)), where


def stable(body: dict) -> dict:
    return {key: value for key, value in body.items() if key not in VOLATILE}


def with_branch_a(url: str) -> str:
    url = re.sub(r"&?branch=[A-C]", "", url).replace("?&", "?")
    return url + ("&" if "?" in url else "?") + "branch=A"


def test_branch_scoped_viewer_sees_only_branch_a(published_inline, make_user, admin_user) -> None:
    scoped = Client(HTTP_AUTHORIZATION=bearer(make_user("viewer", branches=["A"]))["Authorization"])
    admin = Client(HTTP_AUTHORIZATION=bearer(admin_user)["Authorization"])

    totals = scoped.get("/api/metrics/summary").json()
    assert totals["total_revenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)
    assert round(totals["total_revenue"], 2) == 106_200.37
    # Asking for other branches explicitly gives nothing of theirs.
    assert scoped.get("/api/metrics/summary?branch=B&branch=C").json()["total_revenue"] == 0
    assert scoped.get("/api/metrics/breakdown?by=branch&branch=B").json()["rows"] == []

    for url in SCOPED_REST:
        response = scoped.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        body = response.json()
        assert_no_other_branch(body, url)
        # Exactly what an unrestricted caller gets for branch A alone, except the names of
        # uploads this user did not make (a file name can tell another branch's story).
        reference = admin.get(with_branch_a(url)).json()
        if "uploads" in body:
            assert [upload["name"] for upload in body["uploads"]] == [OTHER_UPLOAD_NAME] * len(reference["uploads"])
            assert [upload["uploaded_at"] for upload in body["uploads"]] == [
                u["uploaded_at"] for u in reference["uploads"]
            ]
            body, reference = dict(body, uploads=None), dict(reference, uploads=None)
        assert stable(body) == stable(reference), url

    # The same through GraphQL: every dashboardData field.
    response = scoped.post("/graphql", {"query": DASHBOARD}, content_type="application/json")
    body = response.json()
    assert "errors" not in body, body
    data = body["data"]["dashboardData"]
    assert data["revenueSummary"]["totalRevenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)
    assert [row["branch"] for row in data["branches"]] == ["A"]
    assert {cell["branch"] for cell in data["profitability"]} == {"A"}
    assert_no_other_branch(data, "graphql dashboardData")
    reference = admin.post(
        "/graphql", {"query": DASHBOARD, "variables": {"filters": {"branch": ["A"]}}}, content_type="application/json"
    ).json()["data"]["dashboardData"]
    assert [upload["name"] for upload in data.pop("uploads")] == [OTHER_UPLOAD_NAME] * len(reference.pop("uploads"))
    assert data == reference
    other = scoped.post(
        "/graphql", {"query": DASHBOARD, "variables": {"filters": {"branch": ["B"]}}}, content_type="application/json"
    ).json()["data"]["dashboardData"]
    assert other["revenueSummary"]["totalRevenue"] == 0 and other["branches"] == [] and other["topProducts"] == []

    # The seed's query, as written, is scoped too.
    seed = scoped.post(
        "/graphql", {"query": "{ dashboardData { revenueSummary { totalRevenue } } }"}, content_type="application/json"
    ).json()
    assert seed["data"]["dashboardData"]["revenueSummary"]["totalRevenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)


def test_branch_scoped_viewer_sees_only_branch_a_alerts(world, make_user) -> None:
    scoped = Client(HTTP_AUTHORIZATION=bearer(make_user("viewer", branches=["A"]))["Authorization"])
    rest = scoped.get("/api/alerts").json()["items"]
    assert [event["branch"] for event in rest] == ["A"]
    graphql = scoped.post("/graphql", {"query": QUERIES["alerts"]}, content_type="application/json").json()
    assert [event["branch"] for event in graphql["data"]["alerts"]] == ["A"]
    # Another branch's (or the whole datasource's) alert cannot be acted on either.
    b_event, whole_event = world.event_ids[1], world.event_ids[2]
    for event_id in (b_event, whole_event):
        assert_refused(scoped.post(f"/api/alerts/{event_id}/acknowledge"), 404, "alert_not_found", "acknowledge")


def test_uploader_and_admin_see_every_branch(published_inline, uploader, admin_user) -> None:
    for user in (uploader, admin_user):
        client = Client(HTTP_AUTHORIZATION=bearer(user)["Authorization"])
        totals = client.get("/api/metrics/summary").json()
        assert totals["total_revenue"] == pytest.approx(REVENUE, abs=0.005)
        branches = client.get("/api/metrics/breakdown?by=branch").json()["rows"]
        assert sorted(row["branch"] for row in branches) == ["A", "B", "C"]


# --- GraphQL: depth limit, GraphiQL, query counts ---------------------------------------


# Valid GraphQL (a misspelled query is refused before depth matters), and within graphql-core's own
# limit of three nested `fields`-like lists: deep through `args { type { … } }` instead.
DEPTH_8_INTROSPECTION = "{ __schema { types { fields { args { type { fields { type { name } } } } } } } }"
DEPTH_9_INTROSPECTION = "{ __schema { types { fields { args { type { fields { args { type { name } } } } } } } } }"


def test_depth_limit_refuses_deeper_queries(viewer) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    # The data fields of this schema nest three or four levels, so the deep query goes through introspection.
    assert MAX_QUERY_DEPTH == 8
    too_deep = DEPTH_9_INTROSPECTION
    response = client.post("/graphql", {"query": too_deep}, content_type="application/json")
    body = response.json()
    assert "data" not in body or body["data"] is None
    assert f"exceeds the limit of {MAX_QUERY_DEPTH}" in body["errors"][0]["message"]
    # Fragments count too.
    fragment = "fragment F on DashboardData { revenueSummary { totalRevenue } }"
    at_limit = client.post(
        "/graphql", {"query": f"{{ dashboardData {{ ...F }} }} {fragment}"}, content_type="application/json"
    ).json()
    assert "errors" not in at_limit, at_limit
    at_the_limit = DEPTH_8_INTROSPECTION
    within = client.post("/graphql", {"query": at_the_limit}, content_type="application/json")
    assert "errors" not in within.json()


def _aliased_dashboards(count: int) -> str:
    """`count` aliased dashboardData roots, each with its own filter (each would be its own engine query)."""
    roots = " ".join(
        f'd{index}: dashboardData(filters: {{city: ["x{index}"]}}) {{ revenueSummary {{ totalRevenue }} }}'
        for index in range(count)
    )
    return f"{{ {roots} }}"


def test_too_many_root_fields_are_refused_before_anything_runs(viewer, settings, monkeypatch) -> None:
    from analytics.graphql import DashboardQuery

    runs: list[object] = []
    run = DashboardQuery.run

    def counted_run(self, spec):
        runs.append(spec)
        return run(self, spec)

    monkeypatch.setattr(DashboardQuery, "run", counted_run)
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    limit = settings.GRAPHQL_MAX_ROOT_FIELDS
    body = client.post("/graphql", {"query": _aliased_dashboards(5000)}, content_type="application/json").json()
    assert body.get("data") is None
    assert body["errors"] == [
        {
            "message": f"The operation selects 5000 root fields; the limit is {limit} (GRAPHQL_MAX_ROOT_FIELDS). "
            "Send the rest in further requests.",
            "locations": [{"line": 1, "column": 1}],
        }
    ]
    assert runs == []
    # A fragment's fields count as the operation's own.
    fragment = "fragment Roots on Query { " + _aliased_dashboards(limit + 1)[2:-2] + " }"
    spread = client.post("/graphql", {"query": f"{{ ...Roots }} {fragment}"}, content_type="application/json")
    assert "GRAPHQL_MAX_ROOT_FIELDS" in spread.json()["errors"][0]["message"]
    assert runs == []
    at_limit = client.post("/graphql", {"query": _aliased_dashboards(limit)}, content_type="application/json")
    assert "errors" not in at_limit.json(), at_limit.json()
    assert len(runs) == limit


def test_too_many_fields_in_all_are_refused(viewer, settings) -> None:
    """Aliases under one root, and a fragment spread many times, count at each use."""
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    settings.GRAPHQL_MAX_FIELDS = 50
    aliased = " ".join(f"t{index}: topProducts(limit: {index + 1}) {{ revenue }}" for index in range(30))
    body = client.post(
        "/graphql", {"query": f"{{ dashboardData {{ {aliased} }} }}"}, content_type="application/json"
    ).json()
    assert body.get("data") is None
    assert body["errors"][0]["message"] == (
        "The request selects more than 50 fields, aliases and fragment uses included (GRAPHQL_MAX_FIELDS). "
        "Split it into smaller requests."
    )
    fragment = "fragment S on RevenueSummary { totalRevenue totalCost grossProfit grossMargin lines }"
    spreads = " ".join(f"s{index}: revenueSummary {{ ...S }}" for index in range(9))  # 9 x 6 + 1 fields
    spread = client.post(
        "/graphql", {"query": f"{{ dashboardData {{ {spreads} }} }} {fragment}"}, content_type="application/json"
    ).json()
    assert "GRAPHQL_MAX_FIELDS" in spread["errors"][0]["message"]
    spreads = " ".join(f"s{index}: revenueSummary {{ ...S }}" for index in range(8))  # 8 x 6 + 1 = 49 fields
    within = client.post(
        "/graphql", {"query": f"{{ dashboardData {{ {spreads} }} }} {fragment}"}, content_type="application/json"
    ).json()
    assert "errors" not in within, within


def test_standard_introspection_is_not_refused(viewer) -> None:
    """GraphiQL and client libraries fetch the schema with this query (`ofType` nested nine times)."""
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    response = client.post(
        "/graphql", {"query": get_introspection_query(descriptions=True)}, content_type="application/json"
    )
    body = response.json()
    assert "errors" not in body, body.get("errors")
    names = {item["name"] for item in body["data"]["__schema"]["types"]}
    assert {"DashboardData", "RevenueSummary", "IngestionTaskType", "Upload"} <= names


def test_graphiql_renders_for_a_logged_in_user(viewer) -> None:
    client = Client()
    client.force_login(viewer)
    response = client.get("/graphql", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"graphiql" in response.content.lower()
    # Not for an anonymous browser: 401 JSON, never a redirect to the login page.
    anonymous = Client().get("/graphql", HTTP_ACCEPT="text/html")
    assert anonymous.status_code == 401 and "Location" not in anonymous


def test_dashboard_data_query_count_is_bounded(published_inline, viewer, django_assert_max_num_queries) -> None:
    """Token, permissions and branch scope (4), then one catalogue lookup per dashboard field (6): a fixed
    number whatever the data holds; the numbers themselves come from the engine, not the database."""
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    client.post("/graphql", {"query": "{ viewer { username } }"}, content_type="application/json")  # token's first use
    with django_assert_max_num_queries(10):
        response = client.post("/graphql", {"query": DASHBOARD}, content_type="application/json")
    body = response.json()
    assert "errors" not in body, body
    assert len(body["data"]["dashboardData"]["profitability"]) == 18  # 3 branches x 6 product lines
    with django_assert_max_num_queries(10):  # answered from the cache: no more queries
        again = client.post("/graphql", {"query": DASHBOARD}, content_type="application/json")
    assert again.json() == body


def test_ingestion_tasks_query_count_is_constant(world, viewer, django_assert_max_num_queries) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(viewer)["Authorization"])
    page = "{ ingestionTasks(limit: 50) { totalCount items { id datasource status errorReportUrl } } }"

    def count_queries() -> tuple[int, dict]:
        with CaptureQueriesContext(connection) as captured:
            body = client.post("/graphql", {"query": page}, content_type="application/json").json()
        return len(captured), body

    count_queries()  # the token's first use is recorded once (last_used_at); measure after it
    few, body = count_queries()
    assert body["data"]["ingestionTasks"]["totalCount"] == 1
    for index in range(29):
        other = datasource_get_or_create(name=f"scratch_{index % 3}")
        IngestionTask.objects.create(datasource=other, original_filename=f"{index}.csv", sha256=f"{index:064d}")
    with django_assert_max_num_queries(few):
        many, body = count_queries()
    assert body["data"]["ingestionTasks"]["totalCount"] == 30
    assert len(body["data"]["ingestionTasks"]["items"]) == 30
    assert many == few

    # The REST list too.
    with CaptureQueriesContext(connection) as rest:
        listed = client.get("/api/ingest/tasks?limit=50").json()
    assert listed["count"] == 30
    IngestionTask.objects.create(
        datasource=datasource_get_or_create(name="scratch_9"), original_filename="x.csv", sha256="f" * 64
    )
    with django_assert_max_num_queries(len(rest)):
        assert client.get("/api/ingest/tasks?limit=50").json()["count"] == 31


def test_scoped_alert_and_task_lists_have_no_n_plus_one(world, make_user, django_assert_max_num_queries) -> None:
    client = Client(HTTP_AUTHORIZATION=bearer(make_user("viewer"))["Authorization"])
    query = "{ alerts(limit: 50) { id rule kind severity datasource metric branch } }"
    client.post("/graphql", {"query": query}, content_type="application/json")  # the token's first use
    with CaptureQueriesContext(connection) as captured:
        client.post("/graphql", {"query": query}, content_type="application/json")
    rule = AlertRule.objects.create(name="More", kind=AlertRule.Kind.CHANGE)
    for index in range(20):
        AlertEvent.objects.create(rule=rule, key=f"k{index}", branch="A", message="m")
    with django_assert_max_num_queries(len(captured)):
        body = client.post("/graphql", {"query": query}, content_type="application/json").json()
    assert len(body["data"]["alerts"]) == 23
