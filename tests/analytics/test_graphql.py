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
