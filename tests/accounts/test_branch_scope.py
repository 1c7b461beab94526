"""The branch scope as the admin sets it, and as the selector reads what is stored."""

import datetime as dt
import html
import logging
import uuid

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts.models import BranchScope
from accounts.selectors import user_allowed_branches
from analytics.models import Datasource, Segment
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _user_add(client: Client, *, username: str, branches: str):
    return client.post(
        "/admin/auth/user/add/",
        {
            "username": username,
            "password1": "a long enough password 1",
            "password2": "a long enough password 1",
            "usable_password": "true",
            "branch_scope-TOTAL_FORMS": "1",
            "branch_scope-INITIAL_FORMS": "0",
            "branch_scope-MIN_NUM_FORMS": "0",
            "branch_scope-MAX_NUM_FORMS": "1",
            "branch_scope-0-branches": branches,
        },
    )


def _published_branches(*branches: str) -> None:
    datasource = Datasource.objects.create(name="sales", data_version=1)
    Segment.objects.create(
        datasource=datasource,
        upload_id=uuid.uuid4(),
        interval_start=dt.date(2019, 1, 1),
        interval_end=dt.date(2019, 1, 31),
        rows=10,
        branches=list(branches),
        path="curated/sales/x.parquet",
        version=1,
    )


@pytest.mark.parametrize(
    ("branches", "refusal"),
    [
        ('"AB"', 'Use a list of branch names in quotes, e.g. ["A", "C"] (got "AB").'),
        ('{"A": false}', "Use a list of branch names"),
        ("5", "Use a list of branch names"),
        ('[""]', 'Each branch must be a non-empty name in quotes, e.g. ["A", "C"] (got "").'),
        ('["A", 5]', 'Each branch must be a non-empty name in quotes, e.g. ["A", "C"] (got 5).'),
    ],
)
def test_the_admin_refuses_a_branch_scope_that_is_not_a_list_of_names(
    superuser_client, branches: str, refusal: str
) -> None:
    response = _user_add(superuser_client, username="scoped", branches=branches)

    assert response.status_code == 200, "refused with a form error, not saved (302) nor a server error (500)"
    assert refusal in html.unescape(response.content.decode())
    assert not BranchScope.objects.exists()


def test_the_admin_stores_branch_names_trimmed_and_warns_of_a_name_no_data_has(superuser_client) -> None:
    _published_branches("A", "B")

    response = _user_add(superuser_client, username="scoped", branches='[" A ", "a", "A"]')

    assert response.status_code == 302
    assert BranchScope.objects.get(user__username="scoped").branches == ["A", "a"]
    warnings = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("No published data has branch 'a' (did you mean 'A'?)" in message for message in warnings), warnings


@pytest.mark.parametrize("stored", ["AB", {"A": False}, 5, ["A", 5], [""]])
def test_a_malformed_stored_scope_allows_no_branch(viewer, stored, caplog) -> None:
    BranchScope.objects.create(user=viewer, branches=stored)

    with caplog.at_level(logging.ERROR, logger="accounts.selectors"):
        assert user_allowed_branches(user=viewer) == ()
    assert "branch scope unreadable" in caplog.text
    assert "no branches" in str(BranchScope.objects.get(user=viewer))


def test_a_stored_scope_is_read_trimmed(viewer) -> None:
    BranchScope.objects.create(user=viewer, branches=[" A ", "B"])

    assert user_allowed_branches(user=viewer) == ("A", "B")
