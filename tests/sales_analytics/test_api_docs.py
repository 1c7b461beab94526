"""The API docs (Swagger UI, the OpenAPI schema) and GraphiQL: for logged-in callers only, and with
every script and style served by this site (no CDN: many sites are offline)."""

from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db

DOCS = ("/api/docs", "/api/openapi.json")


@pytest.mark.parametrize("path", DOCS)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token"])
def test_docs_need_a_session_or_an_api_token(path: str, authorization: str | None) -> None:
    client = Client(**({"HTTP_AUTHORIZATION": authorization} if authorization else {}))
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert "Location" not in response


@pytest.mark.parametrize("path", DOCS)
def test_docs_answer_logged_in_callers(path: str, viewer, viewer_api) -> None:
    assert viewer_api.get(path).status_code == 200
    browser = Client()
    browser.force_login(viewer)
    assert browser.get(path).status_code == 200
    assert viewer_api.get("/api/openapi.json").json()["info"]["title"] == "Sales Analytics API"


class _Assets(HTMLParser):
    """Every URL a page makes the browser load or link to (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls.extend(value for name, value in attrs if name in ("src", "href") and value)


def _page_assets(content: bytes) -> list[str]:
    parser = _Assets()
    parser.feed(content.decode())
    return parser.urls


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("/api/docs", {}, {"/static/ninja/swagger-ui-bundle.js", "/static/ninja/swagger-ui.css"}),
        (
            "/graphql",
            {"HTTP_ACCEPT": "text/html"},
            {"/static/vendor/graphiql/graphiql.min.js", "/static/vendor/graphiql/react.production.min.js"},
        ),
    ],
)
def test_docs_and_graphiql_load_nothing_from_another_host(path: str, headers: dict, expected: set, viewer) -> None:
    browser = Client()
    browser.force_login(viewer)
    response = browser.get(path, **headers)
    assert response.status_code == 200
    urls = _page_assets(response.content)
    assert expected <= set(urls)
    external = [url for url in urls if not url.startswith("/") or url.startswith("//")]
    assert external == []
    assert b"://" not in b"".join(
        line for line in response.content.splitlines() if b"<script" in line or b"<link" in line
    )
    for url in urls:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file of this site"


def test_graphiql_page_has_no_inline_script(viewer) -> None:
    """Settings travel as JSON data; every executed script is a file (see the Content-Security-Policy)."""
    browser = Client()
    browser.force_login(viewer)
    page = browser.get("/graphql", HTTP_ACCEPT="text/html").content.decode()
    assert 'id="graphene-settings" type="application/json"' in page
    scripts = page.split("<script")[1:]
    assert all(" src=" in script.split(">")[0] or "application/json" in script.split(">")[0] for script in scripts)
