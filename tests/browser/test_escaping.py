"""Hostile values stay text in a real browser: a product line named `<script>alert(1)</script>` and
a column named `<img src=x onerror=alert(1)>`, uploaded through the page, then shown everywhere."""

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import REAL_FILE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE_LINE = "<script>alert(1)</script>"
HOSTILE_COLUMN = "<img src=x onerror=alert(1)>"
HOSTILE_VALUE = "<img src=y onerror=alert(2)>"
PAGES = ("/", "/sales", "/products", "/branches", "/profitability", "/alerts", "/uploads")
# Anything that would mean the markup was parsed instead of shown.
INJECTED = "img[src=x], img[src=y], script:not([src])"


def hostile_csv(path: Path, rows: int = 200) -> Path:
    """The first rows of the real file; one product line renamed, and an extra hostile column."""
    with REAL_FILE.open(newline="", encoding="utf-8") as source, path.open("w", newline="", encoding="utf-8") as out:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(out, fieldnames=[*reader.fieldnames, HOSTILE_COLUMN])
        writer.writeheader()
        for number, row in enumerate(reader):
            if number == rows:
                break
            if row["Product line"] == "Health and beauty":
                row["Product line"] = HOSTILE_LINE
            writer.writerow({**row, HOSTILE_COLUMN: HOSTILE_VALUE})
    return path


def assert_nothing_injected(web, where: str) -> None:
    assert web.page.locator(INJECTED).count() == 0, f"markup from the data was parsed on {where}"
    web.assert_clean(where)


def all_tooltips(page) -> list[str]:
    """Hover every data point of every chart (ECharts' showTip) and return each tooltip's HTML."""
    return page.evaluate(
        """() => {
            const seen = [];
            for (const el of document.querySelectorAll('.chart')) {
                const chart = echarts.getInstanceByDom(el);
                const series = chart.getOption().series[0];
                for (let i = 0; i < Math.min((series.data || []).length, 100); i++) {
                    chart.dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: i});
                    const tip = [...el.children].filter(child => !child.querySelector('canvas')).pop();
                    if (tip) seen.push(tip.innerHTML);
                }
                chart.dispatchAction({type: 'hideTip'});
            }
            return seen;
        }"""
    )


def test_hostile_values_are_shown_as_text(web, page, uploader, tasks_inline, tmp_path: Path) -> None:
    path = hostile_csv(tmp_path / "hostile.csv")
    web.login(uploader)
    web.visit("/uploads")
    page.set_input_files("#id_file", str(path))
    expect(page.locator("#upload-status")).to_contain_text("Looks good")
    expect(page.locator("#preview-sample th", has_text=HOSTILE_COLUMN)).to_have_count(1)
    expect(page.locator("#preview-sample td", has_text=HOSTILE_VALUE).first).to_be_visible()
    assert_nothing_injected(web, "the upload preview")
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(re.compile(r"/uploads/[0-9a-f-]{36}$"))
    expect(page.locator("#task-status .status")).to_have_text("Succeeded")
    assert_nothing_injected(web, "the task page")

    tooltips_with_it = 0
    for path_ in PAGES:
        web.visit(path_)
        for html in all_tooltips(page):
            if "alert(1)" in html:
                tooltips_with_it += 1
                assert "<script" not in html and "&lt;script&gt;" in html, f"{path_}: tooltip {html!r}"
        assert_nothing_injected(web, path_)
    assert tooltips_with_it > 0, "no chart tooltip showed the hostile product line"
    web.visit("/")
    expect(page.locator("#filter-bar option", has_text=HOSTILE_LINE)).to_have_count(1)
    expect(page.locator("#panel-revenue_by_product_line .drill a", has_text=HOSTILE_LINE)).to_have_count(1)

    # The chart tooltip (HTML that ECharts builds) shows the name as text too.
    shown = page.evaluate(
        """(name) => {
            for (const el of document.querySelectorAll('.chart')) {
                const chart = echarts.getInstanceByDom(el);
                const axis = chart.getOption().xAxis;
                const index = axis && axis[0].data ? axis[0].data.indexOf(name) : -1;
                if (index >= 0) {
                    chart.dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: index});
                    return el.closest('section').id;
                }
            }
            return null;
        }""",
        HOSTILE_LINE,
    )
    assert shown == "panel-revenue_by_product_line"
    tooltip = page.locator("#panel-revenue_by_product_line .chart > div").filter(has_text=HOSTILE_LINE)
    expect(tooltip.first).to_be_visible()
    assert_nothing_injected(web, "the chart tooltip")

    # Filtering on it (HTMX swap) and drilling down into it keep it text.
    page.select_option('#filter-bar select[name="product_line"]', HOSTILE_LINE)
    expect(page.locator("#panel-revenue_by_product_line tbody tr")).to_have_count(1)
    expect(page.locator("#panel-revenue_by_product_line tbody td").first).to_have_text(HOSTILE_LINE)
    assert_nothing_injected(web, "the filtered Overview")
    page.locator("#panel-revenue_by_product_line .drill a", has_text=HOSTILE_LINE).click()
    page.wait_for_url(re.compile(r"/products\?"))
    web.charts_wait()
    expect(page.locator("#panel-product_ranking tbody tr")).to_have_count(1)
    expect(page.locator("#panel-product_ranking tbody td").first).to_have_text(HOSTILE_LINE)
    expect(page.locator("h1")).to_have_text("Products")
    assert_nothing_injected(web, "the drill-down")
