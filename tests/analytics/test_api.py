"""The metrics router's time series: which buckets the requested period cuts (`partial`), on REST and GraphQL."""

import datetime as dt
import io

import pytest
from django.test import Client

from analytics.runner import dimension_spelling
from tests.analytics.helpers import rows_publish, sale_line

pytestmark = pytest.mark.django_db

FIRST_DAY = dt.date(2024, 2, 12)  # a Monday
DAYS = 42  # six whole weeks, to Sunday 24 March 2024


@pytest.fixture
def daily(db) -> str:
    rows_publish(
        datasource="daily", rows=[sale_line(date=FIRST_DAY + dt.timedelta(days=offset)) for offset in range(DAYS)]
    )
    return "daily"


def partial_by_bucket(rows: list[dict]) -> dict[str, bool]:
    return {row["bucket"]: row["partial"] for row in rows}


def test_weeks_the_period_cuts_are_partial_and_whole_ones_are_not(daily, viewer_api: Client) -> None:
    # Wednesday 6 to Sunday 24 March: the week of Monday 4 March is cut, the next two are whole.
    body = viewer_api.get(
        "/api/metrics/timeseries",
        {
            "datasource": daily,
            "grain": "week",
            "start": "2024-03-06",
            "end": "2024-03-24",
            "comparison": "previous_period",
        },
    ).json()

    assert partial_by_bucket(body["rows"]) == {"2024-03-04": True, "2024-03-11": False, "2024-03-18": False}
    assert body["rows"][0]["revenue"] == 50.0  # five days of the week, as `partial` warns
    assert body["columns"][-1] == "partial"
    # The previous 19 days, Friday 16 February to Tuesday 5 March, cut both of their end weeks.
    assert body["comparison"]["period"] == ["2024-02-16", "2024-03-05"]
    assert partial_by_bucket(body["comparison"]["rows"]) == {
        "2024-02-12": True,
        "2024-02-19": False,
        "2024-02-26": False,
        "2024-03-04": True,
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"grain": "month"}, {"2024-02-01": False, "2024-03-01": False}),  # an open period cuts nothing
        ({"grain": "month", "start": "2024-03-01", "end": "2024-03-31"}, {"2024-03-01": False}),
        ({"grain": "month", "end": "2024-03-30"}, {"2024-02-01": False, "2024-03-01": True}),
        ({"grain": "quarter", "start": "2024-02-01"}, {"2024-01-01": True}),
        ({"grain": "day", "start": "2024-03-23"}, {"2024-03-23": False, "2024-03-24": False}),
    ],
)
def test_partial_follows_the_requested_period(daily, viewer_api: Client, query: dict, expected: dict) -> None:
    body = viewer_api.get("/api/metrics/timeseries", {"datasource": daily, **query}).json()
    assert partial_by_bucket(body["rows"]) == expected


def test_graphql_series_points_say_when_they_are_partial(daily, viewer_api: Client) -> None:
    query = (
        '{ dashboardData(datasource: "daily", filters: {start: "2024-03-06", end: "2024-03-24"}) '
        '{ salesOverTime(grain: "week") { period partial revenue } } }'
    )
    body = viewer_api.post("/graphql", {"query": query}, content_type="application/json").json()

    assert body["data"]["dashboardData"]["salesOverTime"] == [
        {"period": "2024-03-04", "partial": True, "revenue": 50.0},
        {"period": "2024-03-11", "partial": False, "revenue": 70.0},
        {"period": "2024-03-18", "partial": False, "revenue": 70.0},
    ]


# --- breakdowns are bounded, never silently cut ---------------------------------------------------


@pytest.fixture
def six_branches(db, settings) -> str:
    settings.METRICS_MAX_ROWS = 5
    rows_publish(
        datasource="six", rows=[sale_line(branch=f"B{number}", revenue=float(10 + number)) for number in range(6)]
    )
    return "six"


def test_a_breakdown_longer_than_the_maximum_is_refused_with_what_to_do(six_branches, viewer_api: Client) -> None:
    response = viewer_api.get("/api/metrics/breakdown", {"datasource": six_branches, "by": "branch"})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "result_too_large"
    assert "more than 5 rows (at least 6)" in body["detail"]
    assert "pass `limit` (at most 5)" in body["detail"] and "narrow the filters" in body["detail"]
    # Narrowed to five branches, the same question is answered whole.
    narrowed = viewer_api.get(
        "/api/metrics/breakdown",
        {"datasource": six_branches, "by": "branch", "exclude_branch": "B0"},
    )
    assert narrowed.status_code == 200
    assert [row["branch"] for row in narrowed.json()["rows"]] == ["B5", "B4", "B3", "B2", "B1"]


def test_a_limit_up_to_the_maximum_is_answered_and_a_larger_one_refused(six_branches, viewer_api: Client) -> None:
    limited = viewer_api.get("/api/metrics/breakdown", {"datasource": six_branches, "by": "branch", "limit": 5})
    assert limited.status_code == 200
    assert len(limited.json()["rows"]) == 5

    refused = viewer_api.get("/api/metrics/breakdown", {"datasource": six_branches, "by": "branch", "limit": 6})
    assert refused.status_code == 400
    assert refused.json() == {"detail": "limit must be at most 5 (METRICS_MAX_ROWS).", "code": "invalid_query"}


def test_graphql_lists_are_bounded_alike(six_branches, viewer_api: Client) -> None:
    def ask(field: str) -> dict:
        query = f'{{ dashboardData(datasource: "six") {{ {field} }} }}'
        return viewer_api.post("/graphql", {"query": query}, content_type="application/json").json()

    refused = ask("branches { branch }")
    assert refused["errors"][0]["extensions"]["code"] == "result_too_large"
    assert "more than 5 rows" in refused["errors"][0]["message"]
    assert ask("profitability { branch }")["errors"][0]["extensions"]["code"] == "result_too_large"
    limited = ask("branches(limit: 2) { branch }")
    assert limited["data"]["dashboardData"]["branches"] == [{"branch": "B5"}, {"branch": "B4"}]


# --- dimensions named as the file's header, or nearly -------------------------------------------


@pytest.fixture
def noted(uploader_api: Client, tasks_inline, django_capture_on_commit_callbacks) -> str:
    handle = io.BytesIO(
        b"Date,Branch,Product line,Quantity,Total,Note,Order Ref\n"
        b"2024-01-10,A,Food,1,10,gift,R1\n2024-01-11,A,Food,1,30,rush,R2\n2024-01-12,B,Food,1,5,gift,R3\n"
    )
    handle.name = "noted.csv"
    with django_capture_on_commit_callbacks(execute=True):  # the upload's task runs on commit
        response = uploader_api.post("/api/ingest/upload", {"file": handle, "datasource_name": "noted"})
    assert response.status_code == 202
    return "noted"


@pytest.mark.parametrize("asked", ["Note", "NOTE", " note "])
def test_a_dimension_asked_as_its_header_is_the_stored_column(noted, viewer_api: Client, asked: str) -> None:
    # Extra columns are stored under a snake_case name (`note`): asking as the file spells it answers.
    body = viewer_api.get("/api/metrics/topn", {"datasource": noted, "dimension": asked}).json()
    assert [(row["note"], row["revenue"]) for row in body["rows"]] == [("rush", 30.0), ("gift", 15.0)]
    by_two = viewer_api.get(
        "/api/metrics/breakdown", {"datasource": noted, "by": ["Order Ref", "branch"], "sort": "Order Ref"}
    ).json()
    assert [row["order_ref"] for row in by_two["rows"]] == ["R3", "R2", "R1"]


def test_an_unknown_dimension_names_the_nearest_and_those_there_are(noted, viewer_api: Client) -> None:
    response = viewer_api.get("/api/metrics/topn", {"datasource": noted, "dimension": "Notes"})

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("Unknown dimension(s): Notes. Did you mean 'note' for 'Notes'?")
    dimensions = (
        "branch, city, customer_type, gender, hour, invoice_id, note, order_ref, payment, product_line, weekday"
    )
    assert detail.endswith(f"This datasource's dimensions: {dimensions}.")


def test_one_dimension_asked_under_two_spellings_is_asked_twice(noted, viewer_api: Client) -> None:
    response = viewer_api.get("/api/metrics/breakdown", {"datasource": noted, "by": ["Note", "note"]})
    assert response.status_code == 400
    assert response.json()["detail"] == "A dimension can be asked for once."


@pytest.mark.parametrize("header", ["Note", "Order Note", "Margin %", "Café Zone", "  Sales-Rep / ID "])
def test_a_header_is_spelt_as_ingestion_stores_it(header: str) -> None:
    # analytics may not import ingestion: the two spellings are kept equal by this test.
    from ingestion.mapping import dimension_name_make

    assert dimension_spelling(header) == dimension_name_make(header, set())
