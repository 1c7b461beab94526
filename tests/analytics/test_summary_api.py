"""/api/metrics/summary over HTTP after ingesting the shared real file: the literals, the
engine and rollup it reports, how it treats unknown input, and how many queries it costs."""

import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import BranchScope
from analytics.models import Rollup
from tests.analytics.publishing import sales_rows, synthetic_publish

pytestmark = pytest.mark.django_db

REVENUE = 322_966.749
BRANCH_A_REVENUE = 106_200.3705
BRANCH_B_REVENUE = 106_197.672
JANUARY_REVENUE = 116_291.868
# Database queries per summary request: a constant, whatever the data size (see the test).
SUMMARY_COLD_QUERIES = 8
SUMMARY_WARM_QUERIES = 5


@pytest.fixture
def real_sales(real_file: Path) -> None:
    call_command("ingest", str(real_file), stdout=io.StringIO(), stderr=io.StringIO())


def summary(client: Client, query: str = "") -> dict:
    response = client.get(f"/api/metrics/summary{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_unfiltered_summary_matches_the_real_file(real_sales, viewer_api: Client) -> None:
    totals = summary(viewer_api)
    assert totals["total_revenue"] == pytest.approx(REVENUE, abs=0.005)
    assert totals["units_sold"] == 5510
    assert totals["lines"] == 1000
    assert totals["transactions"] == 1000
    assert totals["total_cost"] == pytest.approx(307_587.38, abs=0.005)
    assert totals["gross_profit"] == pytest.approx(15_379.369, abs=0.005)
    assert totals["gross_margin"] == pytest.approx(15_379.369 / REVENUE, rel=1e-6)
    assert totals["average_ticket"] == pytest.approx(REVENUE / 1000, rel=1e-6)
    assert totals["data_version"] == 1
    assert totals["engine"] == "embedded"
    assert totals["source"] in set(Rollup.objects.values_list("name", flat=True))


FILTERED = [
    ("?branch=A", BRANCH_A_REVENUE),
    ("?branch=A&branch=B", BRANCH_A_REVENUE + BRANCH_B_REVENUE),
    ("?start=2019-01-01&end=2019-01-31", JANUARY_REVENUE),
    ("?start=2019-01-01&end=2019-01-31&branch=A&branch=B&branch=C", JANUARY_REVENUE),
    ("?datasource=sales&start=2019-01-01&end=2019-03-31", REVENUE),
]


def test_filtered_summaries_match_the_literals(real_sales, viewer_api: Client) -> None:
    for query, revenue in FILTERED:
        totals = summary(viewer_api, query)
        assert totals["total_revenue"] == pytest.approx(revenue, abs=0.005), query
        assert totals["data_version"] == 1
        assert totals["engine"] == "embedded"
        assert totals["source"] != "raw", f"{query}: a branch or date filter is covered by a rollup"


def test_unknown_datasource_is_zeros_and_no_version(real_sales, viewer_api: Client) -> None:
    totals = summary(viewer_api, "?datasource=nothing_here")
    assert totals == {
        "total_revenue": 0,
        "total_cost": 0,
        "gross_profit": 0,
        "gross_margin": None,
        "lines": 0,
        "transactions": 0,
        "units_sold": 0,
        "average_ticket": None,
        "data_version": None,
        "engine": "embedded",
        "source": "none",
    }


def test_a_value_no_row_has_gives_zeros_with_the_version(real_sales, viewer_api: Client) -> None:
    totals = summary(viewer_api, "?branch=Z&product_line=x%27%29%3B%20DROP%20TABLE%20y%3B%20--")
    assert (totals["total_revenue"], totals["lines"], totals["data_version"]) == (0, 0, 1)


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("?start=2019-01-31&end=2019-01-01", 400, "invalid_query"),
        ("?start=31/01/2019", 422, None),
        ("?end=yesterday", 422, None),
    ],
)
def test_bad_parameters(viewer_api: Client, query: str, status: int, code: str | None) -> None:
    response = viewer_api.get(f"/api/metrics/summary{query}")
    assert response.status_code == status, response.content
    if code is not None:
        assert response.json()["code"] == code


@pytest.mark.parametrize("endpoint", ["summary", "timeseries", "topn", "breakdown", "compare"])
@pytest.mark.parametrize(
    ("parameter", "written"),
    [("start", "0"), ("start", "12345"), ("end", "20190131"), ("end", "2019-01-31T00:00:00"), ("start", "2019-02-30")],
)
def test_dates_are_yyyy_mm_dd_only(viewer_api: Client, endpoint: str, parameter: str, written: str) -> None:
    # pydantic read start=0 as 1970-01-01 (a Unix time) and answered for all data from then.
    response = viewer_api.get(f"/api/metrics/{endpoint}", {parameter: written})
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "invalid_request"
    assert f"query.{parameter}: '{written}' is not a date" in body["detail"]
    assert "YYYY-MM-DD" in body["detail"]


def test_anonymous_gets_401_json(client: Client) -> None:
    response = client.get("/api/metrics/summary")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")


def test_a_branch_scoped_user_sees_only_their_branch(real_sales, viewer, viewer_api: Client) -> None:
    BranchScope.objects.create(user=viewer, branches=["A"])
    assert summary(viewer_api)["total_revenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)
    assert summary(viewer_api, "?branch=A&branch=B")["total_revenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)
    assert summary(viewer_api, "?branch=B")["lines"] == 0


def test_summary_costs_a_small_constant_number_of_queries(
    real_sales, viewer_api: Client, tmp_path: Path, django_assert_num_queries, django_assert_max_num_queries
) -> None:
    # First call after a publish: token, its last-used stamp, two permission reads, branch scope,
    # datasource, then the version's segments and rollups (read once per version and process).
    with django_assert_max_num_queries(SUMMARY_COLD_QUERIES):
        first = summary(viewer_api, "?branch=A")
    # Then: token, permissions, scope, datasource; cached or not, whatever the filters.
    with django_assert_num_queries(SUMMARY_WARM_QUERIES):
        assert summary(viewer_api, "?branch=A") == first
    with django_assert_num_queries(SUMMARY_WARM_QUERIES):
        summary(viewer_api, "?start=2019-02-01&product_line=Health%20and%20beauty")
    with django_assert_max_num_queries(SUMMARY_WARM_QUERIES):
        summary(viewer_api, "?datasource=nothing_here")

    # More segments do not mean more queries.
    more = sales_rows(start=dt.date(2019, 4, 1), days=30, seed=3)
    synthetic_publish(datasource="sales", rows=more, workdir=tmp_path)
    with django_assert_max_num_queries(SUMMARY_COLD_QUERIES):
        totals = summary(viewer_api)
    assert totals["lines"] == 1000 + len(more) and totals["data_version"] == 2
    with django_assert_num_queries(SUMMARY_WARM_QUERIES):
        summary(viewer_api, "?branch=B")


def test_session_summary_costs_a_small_constant_number_of_queries(
    real_sales, viewer, client: Client, django_assert_max_num_queries
) -> None:
    client.force_login(viewer)
    summary(client)
    # Session, user, two permission reads, branch scope, datasource.
    with django_assert_max_num_queries(SUMMARY_WARM_QUERIES + 1):
        totals = summary(client, "?start=2019-01-01&end=2019-01-31")
    assert totals["total_revenue"] == pytest.approx(JANUARY_REVENUE, abs=0.005)


@pytest.mark.parametrize("name", ["t\x00x", "Sales", "sales\n", "../etc"], ids=repr)
def test_a_name_no_datasource_can_have_answers_like_an_unknown_one(viewer_api, name: str) -> None:
    # PostgreSQL refuses a NUL in a query parameter: such names must not reach the database.
    response = viewer_api.get("/api/metrics/summary", {"datasource": name})
    assert response.status_code == 200, response.content
    assert response.json()["lines"] == 0 and response.json()["data_version"] is None


@pytest.mark.parametrize(
    "blank",
    ["?branch=", "?start=&end=", "?datasource=", "?branch=&product_line=&city=", "?branch=A&branch="],
)
def test_a_blank_parameter_is_not_given(real_sales, viewer_api: Client, blank: str) -> None:
    # As on the pages: a filter left blank filters nothing (a blank branch matched nothing, a blank date was a 422).
    expected = summary(viewer_api, "?branch=A" if "branch=A" in blank else "")
    assert summary(viewer_api, blank) == expected


@pytest.mark.parametrize(
    ("path", "blank"),
    [
        ("/api/metrics/timeseries", "grain=&split_by=&metric=&comparison=&exclude_branch="),
        ("/api/metrics/topn", "dimension=&n=&ascending=&metric="),
        ("/api/metrics/breakdown", "by=&sort=&limit=&descending="),
        ("/api/metrics/compare", "comparison=&start="),
    ],
)
def test_blank_spec_parameters_take_their_defaults(real_sales, viewer_api: Client, path: str, blank: str) -> None:
    response = viewer_api.get(f"{path}?{blank}")
    assert response.status_code == 200, response.content
    assert response.json() == viewer_api.get(path).json()


@pytest.mark.parametrize(
    ("path", "query", "unknown"),
    [
        ("/api/metrics/summary", "branhc=A", "'branhc'"),
        ("/api/metrics/summary", "branch=A&sales_rep=v1", "'sales_rep'"),
        ("/api/metrics/breakdown", "by=branch&grain=day", "'grain'"),
        ("/api/ingest/tasks", "state=failed", "'state'"),
        ("/api/alerts", "statuz=open", "'statuz'"),
    ],
)
def test_an_unknown_query_parameter_is_refused_not_ignored(
    real_sales, viewer_api: Client, path: str, query: str, unknown: str
) -> None:
    # Dropped silently, a misspelt filter answered every branch's total as if filtered.
    response = viewer_api.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_query"
    assert unknown in response.json()["detail"]


def test_an_unknown_query_parameter_is_checked_after_authentication(client: Client) -> None:
    response = client.get("/api/metrics/summary?branhc=A")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "query", "repeated"),
    [
        ("/api/metrics/summary", "datasource=sales&datasource=other", "'datasource'"),
        ("/api/metrics/summary", "start=2019-01-01&start=2019-03-01", "'start'"),
        ("/api/metrics/timeseries", "grain=month&grain=day", "'grain'"),
    ],
)
def test_a_single_valued_parameter_sent_twice_is_refused(
    real_sales, viewer_api: Client, path: str, query: str, repeated: str
) -> None:
    # The last one won, silently: `datasource=sales&datasource=other` answered other's totals.
    response = viewer_api.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_query"
    assert f"{repeated} sent more than once" in response.json()["detail"]


def test_a_list_filter_may_be_repeated(real_sales, viewer_api: Client) -> None:
    both = summary(viewer_api, "?branch=A&branch=B")
    assert both["total_revenue"] == pytest.approx(212_398.0425, abs=0.005)
