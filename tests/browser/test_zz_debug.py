import pytest
from playwright.sync_api import expect
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def test_debug(web, page, viewer, real_data):
    web.login(viewer)
    web.visit("/")
    page.evaluate("() => { window.__mark = 1; }")
    page.select_option('#filter-bar select[name="branch"]', "A")
    expect(page.locator('[data-kpi="Revenue"]')).to_have_text("106,200.37")
    page.go_back()
    expect(page.locator('[data-kpi="Revenue"]')).to_have_text("322,966.75")
    page.wait_for_timeout(1000)
    print("INFO-DEBUG", page.evaluate("""() => ({mark: window.__mark,
      res: performance.getEntriesByType('resource').map(e => e.name.split('/').pop()),
      charts: [...document.querySelectorAll('.chart')].map(el => ({attr: el.getAttribute('_echarts_instance_'), kids: el.children.length,
          inst: !!echarts.getInstanceByDom(el), same: echarts.getInstanceByDom(el) && echarts.getInstanceByDom(el).getDom() === el})),
      scripts: document.querySelectorAll('script').length})"""))
