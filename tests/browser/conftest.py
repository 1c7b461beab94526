"""Browser fixtures: Playwright driving Debian's headless Chromium against pytest-django's live server.

The test tools' own browser downloads fail on these machines (and `playwright install` must never
run): the browser is `/usr/bin/chromium` from `apt-get install chromium`. Without it the tests
skip with that reason, which REQUIRE_SERVICES=1 (CI) turns into a failed run.

The live server is a thread of this process, so `tasks_inline` (django-q2 in sync mode) also
runs the tasks that the pages queue. Every visit collects console errors, uncaught page errors,
server errors and JavaScript dialogs; `Web.visit` and the fixture's teardown fail on any.
"""

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import REAL_FILE
from tests.factories import TEST_PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = "Debian chromium not installed (apt-get install chromium)"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
DESKTOP = {"width": 1366, "height": 900}
TIMEOUT_MS = 30_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # The outcome of each phase, so the page fixture can keep a screenshot of a failure.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browser(live_server, transactional_db) -> Iterator:
    """Headless Debian Chromium, one per test.

    Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    thread with a running loop unless DJANGO_ALLOW_ASYNC_UNSAFE is set. It is set only while the
    browser is open (the test's own ORM calls), and the browser closes before the database is
    flushed, so other tests keep Django's guard.
    """
    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_MISSING)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class Web:
    """A page of the live app, with what went wrong in it so far."""

    page: object  # playwright.sync_api.Page
    base_url: str
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self) -> None:
        page = self.page
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught error: {error.stack or error}"))
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} ({message.location.get('url', '')})")

    def _response(self, response) -> None:
        if response.status >= 500:
            self.problems.append(f"HTTP {response.status} from {response.url}")

    def _dialog(self, dialog) -> None:
        # A hostile value that got executed would show up here (alert(1)).
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def url(self, path: str) -> str:
        return self.base_url + path

    def login(self, user) -> None:
        """Through the real login form, as a person would."""
        page = self.page
        page.goto(self.url("/accounts/login/"))
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", TEST_PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(re.compile(r"/$"))
        self.assert_clean()

    def visit(self, path: str) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.status == 200, f"{path}: HTTP {response and response.status}"
        self.page.wait_for_load_state("load")
        self.charts_wait()
        self.assert_clean(path)

    def charts_wait(self) -> None:
        """Every `.chart` on the page got its ECharts canvas."""
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.chart')].every(el => el.querySelector('canvas'))"
        )

    def charts_live(self) -> list[bool]:
        """For each `.chart`: drawn by a live ECharts instance into a canvas in this very element."""
        return self.page.evaluate(
            """() => [...document.querySelectorAll('.chart')].map(el => {
                   const chart = window.echarts && window.echarts.getInstanceByDom(el);
                   return Boolean(chart && chart.getDom() === el && el.querySelector('canvas'));
               })"""
        )

    def tooltips(self) -> list[str]:
        """Each chart's tooltip for its first data point, as text (what a hover shows)."""
        texts = []
        for index in range(self.page.locator(".chart").count()):
            chart = self.page.locator(".chart").nth(index)
            chart.scroll_into_view_if_needed()
            chart.evaluate(
                "el => echarts.getInstanceByDom(el).dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 0})"
            )
            tooltip = chart.locator(":scope > div").filter(has_not=self.page.locator("canvas")).last
            tooltip.wait_for(state="visible")
            texts.append(tooltip.inner_text())
        return texts

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if self.page.locator(".chart").count():
            self.page.wait_for_timeout(1_200)  # ECharts' entry animation (1 s by default) has ended
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, where: str = "") -> None:
        assert not self.dialogs, f"dialogs opened {where}: {self.dialogs}"
        assert not self.problems, f"problems {where}: {self.problems}"


def _web(browser, live_server, request: pytest.FixtureRequest, *, name: str, **context_options) -> Iterator[Web]:
    context = browser.new_context(accept_downloads=True, **context_options)
    web = Web(page=context.new_page(), base_url=live_server.url)
    web.watch()
    try:
        yield web
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            (ARTIFACTS / "failures").mkdir(parents=True, exist_ok=True)
            web.page.screenshot(path=str(ARTIFACTS / "failures" / f"{request.node.name}-{name}.png"), full_page=True)
        context.close()
    web.assert_clean("by the end of the test")


@pytest.fixture
def web(browser, live_server, request) -> Iterator[Web]:
    """A desktop-size page."""
    yield from _web(browser, live_server, request, name="desktop", viewport=DESKTOP)


@pytest.fixture
def phone(browser, live_server, request) -> Iterator[Web]:
    """A phone-size page (390×844, touch, mobile user agent behaviour)."""
    yield from _web(
        browser,
        live_server,
        request,
        name="phone",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )


@pytest.fixture
def page(web):
    """The Playwright page of `web`."""
    return web.page


@pytest.fixture
def real_data(transactional_db) -> None:
    """The shared real file, published through the real pipeline (`manage.py ingest`)."""
    assert REAL_FILE.exists(), f"missing {REAL_FILE}"
    call_command("ingest", str(REAL_FILE), stdout=io.StringIO(), stderr=io.StringIO())
