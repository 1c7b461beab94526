"""Real clients against a live server: `gql` (GraphQL, multipart upload) and `httpx` (REST).

Each uploads the shared real file, follows its task to the end and reads the totals the file's own
literals give. Tasks run inline (django-q2's sync mode): the live server's thread shares this process.
"""

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gql import Client, FileVar, gql
from gql.transport.requests import RequestsHTTPTransport

from tests.api.conftest import BRANCH_A_REVENUE, LINES, REVENUE, UNITS, bearer
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SEED_QUERY = "{ dashboardData { revenueSummary { totalRevenue } } }"

UPLOAD = gql(
    """
    mutation Upload($file: Upload!) {
      uploadFile(file: $file) { task { id status datasource originalFilename } }
    }
    """
)
TASK = gql("query Task($id: ID!) { ingestionTask(id: $id) { id status stage progress message rowsTotal rowsValid } }")
TOTALS = gql(
    """
    query Totals($filters: FiltersInput) {
      dashboardData(filters: $filters) {
        datasource
        revenueSummary { totalRevenue unitsSold lines transactions dataVersion }
      }
    }
    """
)


def until(fetch: Callable[[], dict], done: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    """Poll `fetch` until `done` holds (or fail after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"still not done after {timeout}s: {value}"
        time.sleep(0.2)


def finished(task: dict) -> bool:
    return task["status"] in ("succeeded", "failed", "cancelled")


@pytest.fixture
def uploader_headers(role_groups) -> dict[str, str]:
    return bearer(UserFactory(role="uploader"))


@pytest.fixture
def graphql_client(live_server, uploader_headers) -> Client:
    transport = RequestsHTTPTransport(url=f"{live_server.url}/graphql", headers=uploader_headers, timeout=120)
    # The schema comes from the server by introspection, and every document is validated against it.
    return Client(transport=transport, fetch_schema_from_transport=True)


def test_gql_uploads_the_real_file_and_reads_its_totals(graphql_client, real_file: Path, tasks_inline) -> None:
    with graphql_client as session:
        UPLOAD.variable_values = {"file": FileVar(str(real_file), content_type="text/csv")}
        task = session.execute(UPLOAD, upload_files=True)["uploadFile"]["task"]
        assert task["datasource"] == "sales"
        assert task["originalFilename"] == "supermarket_sales.csv"

        TASK.variable_values = {"id": task["id"]}
        task = until(lambda: session.execute(TASK)["ingestionTask"], finished)
        assert task["status"] == "succeeded", task["message"]
        assert (task["stage"], task["progress"], task["rowsTotal"], task["rowsValid"]) == ("done", 100, 1000, 1000)

        TOTALS.variable_values = {}
        data = session.execute(TOTALS)["dashboardData"]
        assert data["datasource"] == "sales"
        totals = data["revenueSummary"]
        assert totals["totalRevenue"] == pytest.approx(REVENUE, abs=0.005)
        assert totals["unitsSold"] == UNITS
        assert totals["lines"] == LINES
        assert totals["transactions"] == LINES
        assert totals["dataVersion"] >= 1

        TOTALS.variable_values = {"filters": {"branch": ["A"]}}
        branch_a = session.execute(TOTALS)["dashboardData"]["revenueSummary"]
        assert branch_a["totalRevenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)

        # The seed's example query, exactly as written.
        seed = session.execute(gql(SEED_QUERY))
        assert seed == {"dashboardData": {"revenueSummary": {"totalRevenue": pytest.approx(REVENUE, abs=0.005)}}}


def test_httpx_uploads_the_real_file_and_reads_its_totals(
    live_server, uploader_headers, real_file: Path, tasks_inline
) -> None:
    with httpx.Client(base_url=live_server.url, headers=uploader_headers, timeout=120) as client:
        with real_file.open("rb") as handle:
            response = client.post("/api/ingest/upload", files={"file": ("supermarket_sales.csv", handle, "text/csv")})
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["status_url"] == f"/api/ingest/status/{accepted['task_id']}"

        task = until(lambda: client.get(accepted["status_url"]).raise_for_status().json(), finished)
        assert task["status"] == "succeeded", task["message"]
        assert (task["rows_total"], task["rows_valid"], task["rows_rejected"]) == (1000, 1000, 0)

        summary = client.get("/api/metrics/summary")
        assert summary.status_code == 200, summary.text
        totals = summary.json()
        assert totals["total_revenue"] == pytest.approx(REVENUE, abs=0.005)
        assert totals["units_sold"] == UNITS
        assert totals["lines"] == LINES
        branch_a = client.get("/api/metrics/summary", params={"branch": "A"}).json()
        assert branch_a["total_revenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)


def test_seed_query_as_written_over_plain_http(live_server, uploader_headers, published) -> None:
    """The seed's query as a program would send it: a JSON POST, and a GET with `?query=`."""
    with httpx.Client(base_url=live_server.url, headers=uploader_headers, timeout=60) as client:
        posted = client.post("/graphql", json={"query": SEED_QUERY})
        fetched = client.get("/graphql", params={"query": SEED_QUERY}, headers={"Accept": "application/json"})
    for response in (posted, fetched):
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        assert body["data"]["dashboardData"]["revenueSummary"]["totalRevenue"] == pytest.approx(REVENUE, abs=0.005)
