"""Results say which data version they read and which uploads it holds (ids, file names, times)."""

import datetime as dt
import io

import pytest
from django.test import Client

from analytics.catalogue import Upload
from analytics.query import Breakdown, Comparison, Filters, Summary
from analytics.runner import run_query
from ingestion.models import IngestionTask

pytestmark = pytest.mark.django_db(transaction=True)


def sales_csv(start: dt.date, end: dt.date, *, amount: float, prefix: str) -> bytes:
    """Two sale lines a day from `start` to `end`, each worth `amount`."""
    lines = ["Invoice ID,Date,Branch,Product line,Quantity,Total"]
    day = start
    while day <= end:
        for n, branch in enumerate(("A", "B")):
            lines.append(f"{prefix}-{day:%Y%m%d}-{n},{day:%Y-%m-%d},{branch},Food and beverages,1,{amount}")
        day += dt.timedelta(days=1)
    return ("\n".join(lines) + "\n").encode()


def upload(client: Client, name: str, content: bytes, **fields) -> IngestionTask:
    handle = io.BytesIO(content)
    handle.name = name
    response = client.post("/api/ingest/upload", {"file": handle, **fields})
    assert response.status_code == 202, response.content
    task = IngestionTask.objects.get(pk=response.json()["task_id"])
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    return task


def provenance(task: IngestionTask) -> Upload:
    return Upload(
        upload_id=str(task.pk),
        name=task.original_filename,
        uploaded_at=task.created_at,
        uploaded_by_id=task.created_by_id,
        branches=frozenset({"A", "B"}),  # every file of these tests has lines of both
    )


@pytest.fixture
def january_and_february(uploader_api: Client, tasks_inline) -> tuple[IngestionTask, IngestionTask]:
    january = upload(
        uploader_api, "january.csv", sales_csv(dt.date(2024, 1, 1), dt.date(2024, 1, 31), amount=10, prefix="J")
    )
    february = upload(
        uploader_api, "february.csv", sales_csv(dt.date(2024, 2, 1), dt.date(2024, 2, 29), amount=20, prefix="F")
    )
    return january, february


def test_results_carry_the_data_version_and_the_uploads_it_holds(january_and_february) -> None:
    january, february = january_and_february
    result = run_query(Summary(datasource="sales"), user=None)
    assert result.data_version == 2
    assert result.uploads == [provenance(january), provenance(february)]
    assert [u.name for u in result.uploads] == ["january.csv", "february.csv"]
    assert all(u.uploaded_at is not None and u.uploaded_at.tzinfo is not None for u in result.uploads)
    assert result.first["lines"] == (31 + 29) * 2

    cached = run_query(Summary(datasource="sales"), user=None)
    assert cached.cached
    assert (cached.data_version, cached.uploads) == (2, result.uploads)
    breakdown = run_query(Breakdown(datasource="sales", by=("branch",)), user=None)
    assert (breakdown.data_version, breakdown.uploads) == (2, result.uploads)
    compared = run_query(
        Summary(
            datasource="sales",
            filters=Filters(start=dt.date(2024, 2, 1), end=dt.date(2024, 2, 29)),
            comparison=Comparison.PREVIOUS_PERIOD,
        ),
        user=None,
    )
    assert compared.comparison is not None
    assert compared.comparison.data_version == compared.data_version == 2
    assert compared.comparison.uploads == compared.uploads == result.uploads


def test_a_replace_that_covers_an_upload_drops_it_from_the_list(
    january_and_february, uploader_api: Client, tasks_inline
) -> None:
    january, february = january_and_february
    corrected = upload(
        uploader_api,
        "january-corrected.csv",
        sales_csv(dt.date(2023, 12, 31), dt.date(2024, 1, 31), amount=11, prefix="C"),
        mode="replace",
    )
    result = run_query(Summary(datasource="sales"), user=None)
    assert result.data_version == 3
    assert result.uploads == [provenance(february), provenance(corrected)]
    assert str(january.pk) not in {u.upload_id for u in result.uploads}
    assert result.first["revenue"] == pytest.approx(29 * 2 * 20 + 32 * 2 * 11)


def test_a_replace_that_covers_part_of_an_upload_keeps_it_listed(
    january_and_february, uploader_api: Client, tasks_inline
) -> None:
    january, february = january_and_february
    middle = upload(
        uploader_api,
        "mid-january.csv",
        sales_csv(dt.date(2024, 1, 10), dt.date(2024, 1, 20), amount=30, prefix="M"),
        mode="replace",
    )
    result = run_query(Summary(datasource="sales"), user=None)
    assert result.data_version == 3
    # January's rows outside 10–20 January are still January's, with its name and time.
    assert result.uploads == [provenance(january), provenance(february), provenance(middle)]
    assert result.first["revenue"] == pytest.approx(20 * 2 * 10 + 29 * 2 * 20 + 11 * 2 * 30)

    # Replacing the rest of January removes it from the list.
    rest = upload(
        uploader_api,
        "january-rest.csv",
        sales_csv(dt.date(2024, 1, 1), dt.date(2024, 1, 31), amount=40, prefix="R"),
        mode="replace",
    )
    after = run_query(Summary(datasource="sales"), user=None)
    assert after.data_version == 4
    assert after.uploads == [provenance(february), provenance(rest)]


def test_a_filtered_query_reports_the_same_version(january_and_february) -> None:
    january_only = run_query(
        Summary(datasource="sales", filters=Filters(start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 31))), user=None
    )
    assert january_only.data_version == 2
    assert january_only.first["lines"] == 62


def test_an_empty_datasource_has_no_version_and_no_uploads() -> None:
    result = run_query(Summary(datasource="nothing_yet"), user=None)
    assert (result.data_version, result.uploads, result.source) == (None, [], "none")


def test_a_scoped_user_sees_the_names_of_their_own_uploads_only(january_and_february, role_groups) -> None:
    # File names tell which branch or period a file covered; dated entries keep the freshness.
    from accounts.services import api_token_create, user_branch_scope_set
    from analytics.runner import OTHER_UPLOAD_NAME
    from tests.conftest import token_client
    from tests.factories import UserFactory

    january, february = january_and_february
    scoped = UserFactory(role="uploader")
    user_branch_scope_set(user=scoped, branches=["A"])
    scoped_api = token_client(api_token_create(user=scoped)[1])
    march = upload(
        scoped_api,
        "march-a.csv",
        sales_csv(dt.date(2024, 3, 1), dt.date(2024, 3, 2), amount=5, prefix="M"),
        max_rejected_ratio="0.5",  # its branch B lines are rejected (the scope)
    )
    for _ in range(2):  # the second answer comes from the cache, shared with every user of scope A
        result = run_query(Summary(datasource="sales", comparison=Comparison.PREVIOUS_PERIOD), user=scoped)
        assert [(u.upload_id, u.name) for u in result.uploads] == [
            ("", OTHER_UPLOAD_NAME),
            ("", OTHER_UPLOAD_NAME),
            (str(march.pk), "march-a.csv"),
        ]
        assert [u.uploaded_at for u in result.uploads] == [january.created_at, february.created_at, march.created_at]
        assert {u.name for u in result.comparison.uploads} <= {OTHER_UPLOAD_NAME, "march-a.csv"}
    other_scoped = UserFactory(role="viewer")
    user_branch_scope_set(user=other_scoped, branches=["A"])
    names = [u.name for u in run_query(Summary(datasource="sales"), user=other_scoped).uploads]
    assert names == [OTHER_UPLOAD_NAME] * 3
    unscoped = run_query(Summary(datasource="sales"), user=None)
    assert [u.name for u in unscoped.uploads] == ["january.csv", "february.csv", "march-a.csv"]
    rest = scoped_api.get("/api/metrics/breakdown", {"by": "branch"}).json()
    assert [u["name"] for u in rest["uploads"]] == [OTHER_UPLOAD_NAME, OTHER_UPLOAD_NAME, "march-a.csv"]


def test_a_scoped_user_s_uploads_are_those_that_brought_rows_of_their_branches(role_groups) -> None:
    from accounts.services import user_branch_scope_set
    from tests.analytics.helpers import rows_publish, sale_line
    from tests.factories import UserFactory

    # upload-0: branch A at 12:00; upload-1: branch B only, at 12:01; upload-2: both, at 12:02.
    rows = [sale_line(branch="A"), sale_line(branch="B"), sale_line(branch="A"), sale_line(branch="B")]
    rows_publish(datasource="shops", rows=rows, cuts=(1, 2))
    scoped = UserFactory(role="viewer")
    user_branch_scope_set(user=scoped, branches=["A"])

    uploads = run_query(Summary(datasource="shops"), user=scoped).uploads

    assert [u.uploaded_at.minute for u in uploads] == [0, 2]  # not B's upload of 12:01
    assert all(u.branches == frozenset({"A"}) for u in uploads)  # nothing said of other branches
    assert len(run_query(Summary(datasource="shops"), user=None).uploads) == 3
