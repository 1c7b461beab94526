"""GraphiQL, the API docs and the admin in real Chromium: drawn from this site's own files, under the
Content-Security-Policy, with no console error (a refused script or style is one)."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_graphiql_runs_a_query_from_vendored_files(web, page, viewer) -> None:
    web.login(viewer)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    web.visit("/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible()
    page.locator(".graphiql-query-editor .CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("{ viewer { username } }")
    page.locator(".graphiql-execute-button").click()
    expect(page.locator(".graphiql-response")).to_contain_text(viewer.username)
    assert requested and all(url.startswith(web.base_url) for url in requested), requested
    web.assert_clean("in GraphiQL")


def test_swagger_ui_draws_the_api(web, page, viewer) -> None:
    web.login(viewer)
    web.visit("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Sales Analytics API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    web.assert_clean("in the API docs")


def test_admin_pages_work_under_the_policy(web, page, admin_user) -> None:
    web.login(admin_user)
    web.visit("/admin/")
    web.visit("/admin/accounts/apitoken/add/")
    expect(page.locator("#id_user")).to_be_visible()
    web.assert_clean("in the admin")
