"""Branch scope on the ingestion side (DESIGN.md, security model): a scoped user never sees
another branch's numbers through tasks, and a scoped uploader changes only their branches' rows."""

import io

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from accounts.services import api_token_create, user_branch_scope_set
from ingestion.models import IngestionTask
from ingestion.services import ingestion_task_run
from tests.conftest import token_client
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

BRANCH_B_FILE = (
    b"Date,Branch,Product line,Quantity,Total\n"
    b"2024-05-01,B,Food,1,1000\n2024-05-02,B,Food,x,5\n2024-05-03,B,Home,2,2000\n2024-05-04,B,Home,3,3000\n"
)


def _named(content: bytes) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = "sales.csv"
    return handle


def _upload(client: Client, content: bytes, **fields):
    return client.post("/api/ingest/upload", {"file": _named(content), **fields})


def _scoped(role: str, branches: list[str]):
    user = UserFactory(role=role)
    user_branch_scope_set(user=user, branches=branches)
    return user, token_client(api_token_create(user=user)[1])


@pytest.fixture
def other_branch_task(uploader_api, tasks_inline) -> str:
    """An unscoped uploader's file of branch B, with one rejected row (an error report)."""
    body = _upload(uploader_api, BRANCH_B_FILE, max_rejected_ratio="0.5").json()
    status = uploader_api.get(body["status_url"]).json()
    assert (status["status"], status["rows_rejected"]) == ("succeeded", 1), status
    return body["task_id"]


def test_a_scoped_viewer_sees_no_task_of_another_user(role_groups, other_branch_task, uploader_api) -> None:
    # The task shows B's row counts, rejected values and error report: B's numbers.
    viewer, viewer_api = _scoped("viewer", ["A"])
    assert viewer_api.get("/api/ingest/tasks").json()["items"] == []
    for path in (f"/api/ingest/status/{other_branch_task}", f"/api/ingest/tasks/{other_branch_task}/error-report"):
        response = viewer_api.get(path)
        assert (response.status_code, response.json()["code"]) == (404, "task_not_found"), path
    graphql = viewer_api.post(
        "/graphql", {"query": "{ ingestionTasks { totalCount items { id } } }"}, content_type="application/json"
    ).json()
    assert graphql["data"]["ingestionTasks"] == {"totalCount": 0, "items": []}
    browser = Client()
    assert browser.login(username=viewer.username, password=TEST_PASSWORD)
    assert other_branch_task not in browser.get("/uploads").content.decode()
    assert browser.get(f"/uploads/{other_branch_task}").status_code == 404
    assert browser.get(f"/uploads/{other_branch_task}/errors.csv").status_code == 404
    # Everyone unscoped still sees it.
    assert [task["task_id"] for task in uploader_api.get("/api/ingest/tasks").json()["items"]] == [other_branch_task]


def test_a_scoped_uploader_cannot_fetch_another_user_s_raw_file(role_groups, other_branch_task) -> None:
    uploader, _ = _scoped("uploader", ["A"])
    browser = Client()
    assert browser.login(username=uploader.username, password=TEST_PASSWORD)
    assert browser.get(f"/uploads/{other_branch_task}/raw").status_code == 404


def test_a_scoped_uploader_s_rows_of_other_branches_are_rejected(role_groups, tasks_inline) -> None:
    _, scoped_api = _scoped("uploader", ["A"])
    content = b"Date,Branch,Product line,Quantity,Total\n" + b"".join(
        f"2024-05-0{day},{branch},Food,1,{10 * day}\n".encode() for day in range(1, 9) for branch in "AAAB"
    )
    body = _upload(scoped_api, content).json()
    status = scoped_api.get(body["status_url"]).json()
    assert (status["status"], status["rows_valid"], status["rows_rejected"]) == ("succeeded", 24, 8), status
    assert {error["reason"] for error in status["errors"]} == {"branch is not one of your branches (A)"}
    assert {error["value"] for error in status["errors"]} == {"B"}
    totals = scoped_api.get("/api/metrics/breakdown", {"by": "branch", "metric": "lines"}).json()["rows"]
    assert totals == [{"branch": "A", "lines": 24}]
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert default_storage.exists(task.error_report_key)


def test_a_scoped_uploader_may_not_replace(role_groups, other_branch_task, uploader_api) -> None:
    # A replace swaps out every branch's rows of the file's days: B's, which this user never sees.
    _, scoped_api = _scoped("uploader", ["A"])
    response = _upload(scoped_api, b"Date,Branch,Product line,Quantity,Total\n2024-05-03,A,Food,1,10\n", mode="replace")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert "append mode" in response.json()["detail"]
    assert IngestionTask.objects.count() == 1
    rows = uploader_api.get("/api/metrics/breakdown", {"by": "branch", "metric": "revenue"}).json()["rows"]
    assert rows == [{"branch": "B", "revenue": 6000.0}]


def test_a_retry_switched_to_replace_is_refused_for_a_scoped_uploader(
    role_groups, other_branch_task, uploader_api, monkeypatch
) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # the scoped upload waits in the queue
    _, scoped_api = _scoped("uploader", ["A"])
    body = _upload(scoped_api, b"Date,Branch,Product line,Quantity,Total\n2024-05-03,A,Food,1,10\n").json()
    assert uploader_api.post(f"/api/ingest/tasks/{body['task_id']}/cancel").json()["status"] == "cancelled"
    # Refused when asked, as the upload is (it was accepted, stored as replace, and failed each run).
    for client, whose in ((scoped_api, "your account"), (uploader_api, "the account that uploaded this file")):
        response = client.post(f"/api/ingest/tasks/{body['task_id']}/retry", {"mode": "replace"})
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
        assert f"{whose} covers only A" in response.json()["detail"]
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert (task.status, task.mode) == (IngestionTask.Status.CANCELLED, IngestionTask.Mode.APPEND)
    # The run checks it too (the uploader's scope may change while the task waits).
    IngestionTask.objects.filter(pk=task.pk).update(mode=IngestionTask.Mode.REPLACE, status=IngestionTask.Status.QUEUED)
    task = ingestion_task_run(task_id=str(task.pk))
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "permission_denied")
    rows = uploader_api.get("/api/metrics/breakdown", {"by": "branch", "metric": "revenue"}).json()["rows"]
    assert rows == [{"branch": "B", "revenue": 6000.0}]


def test_a_refused_retry_does_not_name_a_task_the_user_cannot_see(role_groups, other_branch_task) -> None:
    scoped, scoped_api = _scoped("uploader", ["A"])
    other = IngestionTask.objects.get(pk=other_branch_task)
    mine = IngestionTask.objects.create(
        datasource=other.datasource,
        created_by=scoped,
        status=IngestionTask.Status.FAILED,
        original_filename="mine.csv",
        sha256=other.sha256,
        raw_key=other.raw_key,
    )
    response = scoped_api.post(f"/api/ingest/tasks/{mine.pk}/retry")
    assert (response.status_code, response.json()["code"]) == (409, "duplicate_upload")
    assert "another user's upload" in response.json()["detail"]
    assert other_branch_task not in response.json()["detail"] and "sales.csv" not in response.json()["detail"]


def test_a_duplicate_refusal_does_not_name_a_task_the_user_cannot_see(role_groups, other_branch_task) -> None:
    _, scoped_api = _scoped("uploader", ["A"])
    response = _upload(scoped_api, BRANCH_B_FILE)
    assert (response.status_code, response.json()["code"]) == (409, "duplicate_upload")
    assert "another user's upload" in response.json()["detail"]
    assert other_branch_task not in response.json()["detail"]


def test_the_admin_lists_a_scoped_staff_user_s_own_uploads_only(role_groups, other_branch_task) -> None:
    staff = UserFactory(role="admin", is_staff=True)
    user_branch_scope_set(user=staff, branches=["A"])
    browser = Client()
    assert browser.login(username=staff.username, password=TEST_PASSWORD)
    listing = browser.get("/admin/ingestion/ingestiontask/")
    assert listing.status_code == 200
    assert other_branch_task not in listing.content.decode()
    assert browser.get(f"/admin/ingestion/ingestiontask/{other_branch_task}/change/").status_code in (302, 404)


def _sales_with_profit(day: int, branch: str = "A") -> bytes:
    # Revenue is 'Total' by its name; 'gross income' is the profit.
    return (
        b"Date,Branch,Product line,Quantity,Total,gross income\n"
        + f"2024-06-{day:02d},{branch},Food,1,100,5\n2024-06-{day:02d},{branch},Home,2,300,15\n".encode()
    )


PROFIT_AS_REVENUE = '{"Total": null, "gross income": "revenue"}'


def _task_of(response) -> IngestionTask:
    body = response.json()
    assert response.status_code == 202, body
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    return task


def test_a_scoped_uploader_s_mapping_does_not_change_how_others_files_are_read(
    role_groups, uploader_api, tasks_inline
) -> None:
    from ingestion.models import ColumnMapping

    _task_of(_upload(uploader_api, _sales_with_profit(1)))
    saved = ColumnMapping.objects.get().mapping
    assert saved["revenue"] == "Total"
    _, scoped_api = _scoped("uploader", ["A"])

    own = _task_of(_upload(scoped_api, _sales_with_profit(2), mapping=PROFIT_AS_REVENUE))

    assert own.applied_mapping["revenue"] == "gross income"  # their upload is read as they asked
    assert ColumnMapping.objects.get().mapping == saved
    later = _task_of(_upload(uploader_api, _sales_with_profit(3)))
    assert later.applied_mapping["revenue"] == "Total"
    assert not any("saved mapping" in note for note in later.notes)


def test_an_upload_read_by_the_saved_mapping_against_its_column_names_says_so(
    role_groups, uploader_api, tasks_inline
) -> None:
    # An unscoped uploader's explicit mapping is saved, and decides the next uploader's file.
    _task_of(_upload(uploader_api, _sales_with_profit(1), mapping=PROFIT_AS_REVENUE))
    colleague = token_client(api_token_create(user=UserFactory(role="uploader"))[1])

    later = _task_of(_upload(colleague, _sales_with_profit(2)))

    assert later.applied_mapping["revenue"] == "gross income"
    sentence = (
        "Used the saved mapping of this datasource: revenue ← 'gross income' (by the file's column names: 'Total')"
    )
    assert any(note.startswith(sentence) for note in later.notes), later.notes
    assert sentence in later.message
    status = colleague.get(f"/api/ingest/status/{later.pk}").json()
    assert any(note.startswith(sentence) for note in status["notes"])
    preview = colleague.post(
        "/api/ingest/preview", {"file": _named(_sales_with_profit(3)), "datasource_name": "sales"}
    ).json()
    assert any(note.startswith(sentence) for note in preview["schema_drift"]), preview


def test_saved_mappings_in_the_admin_are_for_unscoped_staff_and_keep_their_datasource(
    role_groups, uploader_api, tasks_inline, admin_user
) -> None:
    from analytics.models import Datasource
    from ingestion.models import ColumnMapping

    _task_of(_upload(uploader_api, _sales_with_profit(1)))
    saved = ColumnMapping.objects.get()
    other = Datasource.objects.create(name="other")
    staff = UserFactory(role="admin", is_staff=True)
    user_branch_scope_set(user=staff, branches=["A"])
    scoped = Client()
    scoped.force_login(staff)
    change = f"/admin/ingestion/columnmapping/{saved.pk}/change/"
    assert scoped.get("/admin/ingestion/columnmapping/").status_code == 403
    assert scoped.get(change).status_code == 403
    assert scoped.post(change, {"mapping": '{"revenue": "gross income"}', "source_columns": "[]"}).status_code == 403

    head_office = Client()
    head_office.force_login(admin_user)
    assert head_office.get("/admin/ingestion/columnmapping/").status_code == 200
    response = head_office.post(
        change, {"datasource": other.pk, "mapping": '{"revenue": "Total"}', "source_columns": '["Total"]'}
    )
    assert response.status_code == 302, response.content.decode()
    saved.refresh_from_db()
    assert (saved.datasource.name, saved.source_columns) == ("sales", ["Total"])


def test_a_scoped_uploader_s_preview_reports_the_rows_the_upload_would_fail_for(role_groups, real_file) -> None:
    # "1000 rows checked, 660 rejected" and "Looks good"; the task then failed (66% rejected).
    _, scoped_api = _scoped("uploader", ["A"])
    body = scoped_api.post("/api/ingest/preview", {"file": _named(real_file.read_bytes())}).json()
    assert body["validation"]["rows_rejected"] == 660
    assert [problem["code"] for problem in body["problems"]] == ["too_many_rejected_rows"]
    assert body["problems"][0]["detail"].startswith("660 of the 1,000 rows checked (66.0%) were rejected")


ZURICH_COMPOSED, ZURICH_DECOMPOSED = "Z\u00fcrich", "Zu\u0308rich"


def test_a_scope_and_filters_match_a_branch_however_its_name_is_encoded(role_groups, tasks_inline) -> None:
    # Files' text is read in NFC without invisible edges; a scope or filter typed on a Mac (NFD) or
    # pasted with a zero-width space must name the same branch, or its uploader's rows were all refused.
    _, uploader_api = _scoped("uploader", [ZURICH_DECOMPOSED, "\u200bBern"])
    rows = (
        f"Date,Branch,Product line,Quantity,Total\n2024-05-01,{ZURICH_DECOMPOSED},Food,1,10\n2024-05-02,Bern,Food,1,5\n"
    )
    body = _upload(uploader_api, rows.encode()).json()
    status = uploader_api.get(body["status_url"]).json()
    assert (status["status"], status["rows_valid"]) == ("succeeded", 2), status["message"]

    for value, revenue in ((ZURICH_DECOMPOSED, 10), (ZURICH_COMPOSED, 10), ("\u200bBern", 5)):
        summary = uploader_api.get("/api/metrics/summary", {"branch": value}).json()
        assert summary["total_revenue"] == revenue, value
