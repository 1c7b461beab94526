"""An engine failure is a plain 503 (REST) or a GraphQL error, never a 500 or a stack trace."""

import pytest

from analytics.engines import EngineError
from analytics.engines.embedded import EmbeddedEngine
from tests.analytics.helpers import rows_publish, sale_line

pytestmark = pytest.mark.django_db(transaction=True)


def test_engine_failure_is_503_and_graphql_error(viewer_api, monkeypatch) -> None:
    rows_publish(datasource="sales", rows=[sale_line()])

    def refuse(self, sql, params):
        raise EngineError("The analytics engine is not answering; try again in a minute.", code="engine_unavailable")

    monkeypatch.setattr(EmbeddedEngine, "execute", refuse)
    response = viewer_api.get("/api/metrics/summary")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "The analytics engine is not answering; try again in a minute.",
        "code": "engine_unavailable",
    }
    graphql = viewer_api.post(
        "/graphql", {"query": "{ dashboardData { revenueSummary { totalRevenue } } }"}, content_type="application/json"
    ).json()
    assert graphql["errors"][0]["message"] == "The analytics engine is not answering; try again in a minute."
