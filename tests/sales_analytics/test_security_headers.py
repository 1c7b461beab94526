"""The Content-Security-Policy: scripts and style sheets only from this site, on every response."""

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";")}


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/uploads", "/api/health", "/admin/login/"])
def test_every_response_carries_the_policy(path: str, viewer) -> None:
    client = Client()
    client.force_login(viewer)
    directives = _directives(client.get(path))
    assert directives["script-src"] == "script-src 'self'"
    assert directives["style-src"] == "style-src 'self'"
    assert directives["object-src"] == "object-src 'none'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/sales", "/uploads", "/alerts"])
def test_pages_have_no_inline_script_or_style_element(path: str, viewer) -> None:
    """What the policy would refuse: every script is a file, and htmx is told not to evaluate code."""
    client = Client()
    client.force_login(viewer)
    page = client.get(path).content.decode()
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert " src=" in tag or 'type="application/json"' in tag, tag
    assert "<style" not in page
    assert '"allowEval": false' in page and '"includeIndicatorStyles": false' in page
