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
