"""Pages when the analytics engine cannot answer: rendered, with the filter bar degraded and each
panel showing the engine's failure, never an HTTP 500."""

import io
import socket
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.services import user_branch_scope_set
from analytics.engines import druid as druid_module
from dashboard.views import FILTER_OPTIONS_UNAVAILABLE
from tests.conftest import REAL_FILE

PAGES = ["/", "/sales", "/products", "/branches", "/profitability"]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _degraded(client: Client, path: str) -> str:
    response = client.get(path)
    html = response.content.decode()
    assert response.status_code == 200, html[:2000]
    assert FILTER_OPTIONS_UNAVAILABLE in html
    assert "This panel could not be loaded" in html
    return html


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scoped", [False, True], ids=["every-branch", "branch-scoped"])
def test_pages_render_when_the_druid_router_is_unreachable(viewer, settings, closed_port, monkeypatch, scoped):
    call_command("ingest", str(REAL_FILE), stdout=io.StringIO(), stderr=io.StringIO())  # embedded engine
    settings.ANALYTICS_ENGINE = "druid"
    settings.DRUID_ROUTER_URL = f"http://127.0.0.1:{closed_port}"
    settings.DRUID_RETRIES = 0
    monkeypatch.setattr(druid_module, "BACKOFF_SECONDS", 0.0)
    if scoped:
        user_branch_scope_set(user=viewer, branches=["A"])
    client = Client()
    client.force_login(viewer)

    for path in PAGES:
        _degraded(client, path)
    # A filter chosen stays in the bar, so applying it again keeps it.
    html = _degraded(client, "/?payment=Cash")
    assert '<option value="Cash" selected>' in html
    # The panels' HTMX answer swaps the degraded options in too.
    response = client.get("/?datasource=sales", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="panels")
    assert response.status_code == 200
