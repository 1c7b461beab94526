"""GraphQL `dashboardData` answers what REST answers, whatever the size of the counts."""

import io

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

TOTALS = "{ dashboardData { revenueSummary { unitsSold lines transactions } branches { branch unitsSold } } }"


def test_counts_beyond_32_bits_are_served_as_rest_serves_them(uploader_api, tasks_inline) -> None:
    # Validation accepts quantities up to 10⁹ a row, so three rows already pass GraphQL's 32-bit
    # Int: the whole answer was null with an error while REST answered.
    handle = io.BytesIO(
        b"Date,Branch,Product line,Quantity,Total\n"
        b"2024-01-10,A,Food,1000000000,1\n2024-01-11,A,Food,1000000000,1\n2024-01-12,A,Food,1000000000,1\n"
    )
    handle.name = "big.csv"
    assert uploader_api.post("/api/ingest/upload", {"file": handle}).status_code == 202
    rest = uploader_api.get("/api/metrics/summary").json()
    response = uploader_api.post("/graphql", {"query": TOTALS}, content_type="application/json").json()
    assert "errors" not in response, response
    summary = response["data"]["dashboardData"]["revenueSummary"]
    assert summary == {"unitsSold": 3_000_000_000, "lines": 3, "transactions": 3}
    assert summary["unitsSold"] == rest["units_sold"]
    assert response["data"]["dashboardData"]["branches"] == [{"branch": "A", "unitsSold": 3_000_000_000}]


@pytest.mark.parametrize(
    ("query", "variables", "complaint"),
    [
        ('{ dashboardData(filters: {brnch: ["A"]}) { revenueSummary { revenue } } }', None, "brnch"),
        ('{ dashboardData(datasurce: "sales") { revenueSummary { revenue } } }', None, "datasurce"),
        ("{ dashboardData { bogus } }", None, "bogus"),
        ("query ($d: Int) { dashboardData(datasource: $d) { revenueSummary { revenue } } }", {"d": 1}, "Int"),
    ],
    ids=["misspelled-filter", "misspelled-argument", "unknown-field", "wrong-variable-type"],
)
def test_invalid_queries_are_refused_not_answered_unfiltered(uploader_api, query, variables, complaint) -> None:
    # Only the depth rule ran, not GraphQL's standard validation: `brnch: ["A"]` was ignored and
    # every branch's revenue came back as if it were branch A's.
    response = uploader_api.post("/graphql", {"query": query, "variables": variables}, content_type="application/json")
    body = response.json()
    assert response.status_code == 400, body
    assert "data" not in body or body["data"] is None
    assert any(complaint in error["message"] for error in body["errors"]), body


@pytest.mark.parametrize("day", ["20190201", "2019-W05-4", "2019-02-30", "2019-02-01T00:00:00"])
def test_dates_rest_refuses_are_refused_on_graphql_with_rests_message(uploader_api, day: str) -> None:
    literal = '{ dashboardData(filters: {start: "DAY"}) { revenueSummary { lines } } }'.replace("DAY", day)
    variable = "query ($s: Date) { dashboardData(filters: {start: $s}) { revenueSummary { lines } } }"
    rest = uploader_api.get("/api/metrics/summary", {"start": day})
    assert rest.status_code == 422
    for body in ({"query": literal}, {"query": variable, "variables": {"s": day}}):
        response = uploader_api.post("/graphql", body, content_type="application/json").json()
        assert response.get("data") in (None, {"dashboardData": None}), response
        (error,) = response["errors"]
        assert f"{day!r} is not a date" in error["message"]
        assert error["message"].split(f"{day!r} ", 1)[1] in rest.json()["detail"]
        assert error["extensions"]["code"] == "invalid_request"


def test_an_iso_day_still_filters_on_graphql(uploader_api) -> None:
    query = '{ dashboardData(filters: {start: "2019-02-01", end: "2019-02-28"}) { revenueSummary { lines } } }'
    response = uploader_api.post("/graphql", {"query": query}, content_type="application/json").json()
    assert response == {"data": {"dashboardData": {"revenueSummary": {"lines": 0}}}}


def _graphql_errors(client, query: str) -> list[dict]:
    response = client.post("/graphql", {"query": query}, content_type="application/json").json()
    return response.get("errors", [])


@pytest.mark.parametrize(
    ("query", "rest", "message"),
    [
        (
            '{ dashboardData(filters: {start: "2019-02-01", end: "2019-01-01"}) { revenueSummary { lines } } }',
            "/api/metrics/summary?start=2019-02-01&end=2019-01-01",
            "start must be on or before end",
        ),
        (
            '{ dashboardData { salesOverTime(grain: "hour") { revenue } } }',
            "/api/metrics/timeseries?grain=hour",
            "hour",
        ),
        ('{ dashboardData { topProducts(metric: "bogus") { revenue } } }', "/api/metrics/topn?metric=bogus", "bogus"),
        ("{ dashboardData { topProducts(limit: 0) { revenue } } }", "/api/metrics/topn?n=0", "limit must be between 1"),
        ("{ dashboardData { topProducts(limit: 1001) { revenue } } }", "/api/metrics/topn?n=1001", "limit must be"),
    ],
)
def test_refused_arguments_carry_rests_code(uploader_api, query: str, rest: str, message: str) -> None:
    expected = uploader_api.get(rest).json()["code"]
    (error,) = _graphql_errors(uploader_api, query)
    assert message in error["message"]
    assert error["extensions"]["code"] == expected == "invalid_query"


@pytest.mark.parametrize("limit", [0, -1, 201])
def test_an_ingestion_tasks_limit_out_of_range_is_refused_with_a_code(uploader_api, limit: int) -> None:
    (error,) = _graphql_errors(uploader_api, f"{{ ingestionTasks(limit: {limit}) {{ totalCount }} }}")
    assert "limit must be 1–200" in error["message"]
    assert error["extensions"]["code"] == uploader_api.get("/api/ingest/tasks?limit=0").json()["code"]


def test_a_failed_tasks_error_code_is_on_graphql_as_on_rest(uploader_api, tasks_inline) -> None:
    handle = io.BytesIO(b"Date,Branch,Product line,Quantity,Total\n01/02/19,A,Food,1,10\n03/04/19,B,Food,2,20\n")
    handle.name = "dates.csv"
    task_id = uploader_api.post("/api/ingest/upload", {"file": handle}).json()["task_id"]
    rest = uploader_api.get(f"/api/ingest/status/{task_id}").json()
    query = f'{{ ingestionTask(id: "{task_id}") {{ status errorCode }} }}'
    response = uploader_api.post("/graphql", {"query": query}, content_type="application/json").json()
    assert response == {"data": {"ingestionTask": {"status": "failed", "errorCode": rest["error_code"]}}}
    assert rest["error_code"] == "ambiguous_dates"
