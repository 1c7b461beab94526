"""Dashboard pages: full pages for plain requests, the panels partial for HTMX swaps."""

import datetime as dt
import json
import logging

from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from accounts.decorators import capability_required
from accounts.roles import Capability
from analytics.catalogue import datasource_list
from analytics.engines import EngineError
from analytics.query import Breakdown
from dashboard.exports import export_response
from dashboard.filters import GRAINS, MULTI_DIMENSIONS, PRESETS, FilterError, PageFilters, page_filters_parse
from dashboard.panels import PAGES, Panel, PanelContext, panel_build, panel_key

logger = logging.getLogger(__name__)


FILTER_OPTIONS_UNAVAILABLE = (
    "The filter values could not be loaded: the analytics engine did not answer. Filters already chosen still apply."
)


# More values than this and a dimension's filter is a text box suggesting its top values (a
# <datalist>) instead of a <select>: 100,000 branches made a 5 MB select on every page.
FILTER_SELECT_MAX = 200


def _filter_options(ctx: PanelContext) -> tuple[list[dict], str]:
    """Values offered for each filter, scoped like every other number, and a note when the
    engine could not give them: the page still renders, its panels showing the engine's error."""
    if ctx.filters.snapshot is None:
        return [], ""
    columns = set(ctx.filters.snapshot.datasource.columns)
    dimensions = [(name, label) for name, label in MULTI_DIMENSIONS if name in columns]
    try:
        found = {name: _dimension_values(ctx, name) for name, _label in dimensions}
    except EngineError:
        logger.warning("filter values of %s could not be loaded", ctx.datasource, exc_info=True)
        # The values chosen stay offered (selected), so applying the bar keeps them.
        return [_filter_option(ctx, name, label, [], False) for name, label in dimensions], FILTER_OPTIONS_UNAVAILABLE
    return [_filter_option(ctx, name, label, *found[name]) for name, label in dimensions], ""


def _dimension_values(ctx: PanelContext, name: str) -> tuple[list[str], bool]:
    """A dimension's values to offer, and whether they are all of them: by name when they fit a
    <select>, else the FILTER_SELECT_MAX with the most revenue, as suggestions."""
    result = ctx.run(
        Breakdown(datasource=ctx.datasource, by=(name,), metrics=("revenue",), limit=FILTER_SELECT_MAX + 1)
    )
    values = [row[name] for row in result.rows if row[name] is not None]
    if len(result.rows) > FILTER_SELECT_MAX:
        return values[:FILTER_SELECT_MAX], False
    return sorted(values), True


def _filter_option(ctx: PanelContext, name: str, label: str, values: list[str], complete: bool) -> dict:
    selected = ctx.filters.include.get(name, ())
    if not complete and values:
        # A text box per value chosen, and an empty one to add another: the same repeated
        # parameter a multiple <select> sends, so links and the API read it alike.
        return {"name": name, "label": label, "searchable": True, "suggestions": values, "chosen": list(selected)}
    offered, chosen = set(values), set(selected)  # sets: a dimension may have thousands of values
    # A value chosen on another datasource stays offered (selected) so that it can be cleared.
    values = values + [value for value in dict.fromkeys(selected) if value not in offered]
    return {"name": name, "label": label, "values": [{"value": v, "selected": v in chosen} for v in values]}


def _chart_json(panels: list[Panel]) -> None:
    for panel in panels:
        panel.chart_json = json.dumps(panel.chart, cls=DjangoJSONEncoder) if panel.chart else ""


def _page_context(request: HttpRequest, page_key: str, filters: PageFilters) -> dict:
    page = PAGES[page_key]
    ctx = PanelContext(filters=filters, user=request.user)
    # No data the user may see (none published, or none of their branches'): the empty state,
    # not panels of zeros whose period and comparison would come from nowhere.
    shown = filters.visible_days or filters.days_unknown
    panels = [panel_build(builder, ctx) for builder in page.panels] if shown else []
    _chart_json(panels)
    datasources = datasource_list()
    filter_options, filter_options_note = _filter_options(ctx)
    return {
        "page": page_key,
        "page_title": page.title,
        "filters": filters,
        "panels": panels,
        "filter_options": [option for option in filter_options if option.get("values") or option.get("searchable")],
        "filter_options_note": filter_options_note,
        "presets": PRESETS,
        "grains": GRAINS,
        "datasources": datasources,
        # A name in the URL that no datasource has stays the one shown as chosen: the first
        # datasource was shown selected instead, and the next filter change switched to it.
        "datasource_unknown": all(ds.name != filters.datasource for ds in datasources),
        "is_demo": filters.snapshot is not None and filters.snapshot.datasource.is_demo,
        "scope_empty": filters.snapshot is not None and not shown,
        "query_string": filters.query_string(),
    }


@require_GET
@capability_required(Capability.VIEW_DASHBOARDS)
def dashboard_page(request: HttpRequest, page_key: str) -> HttpResponse:
    if page_key not in PAGES:
        raise Http404("No such page")
    try:
        filters = page_filters_parse(request.GET, user=request.user)
    except FilterError as exc:
        context = {"page": page_key, "page_title": PAGES[page_key].title, "filter_error": str(exc)}
        if request.htmx and request.htmx.target == "panels":
            # htmx swaps no 4xx answer: the panels would keep numbers the filter bar no longer
            # describes, with no word why. The error replaces them instead.
            return render(request, "dashboard/page.html#panels", context)
        return render(request, "dashboard/page.html", context, status=400)
    context = _page_context(request, page_key, filters)
    if request.htmx and request.htmx.target == "panels":
        searchable = [option["name"] for option in context["filter_options"] if option.get("searchable")]
        return _panels_answer(request, context, stale=_bar_parts_stale(request.GET, filters, searchable=searchable))
    return render(request, "dashboard/page.html", context)


def _bar_parts_stale(query: QueryDict, filters: PageFilters, *, searchable: list[str]) -> list[str]:
    """The parts of the filter bar an HTMX answer makes wrong: HTMX swaps only the panels.

    A preset fills in dates the bar does not show yet; another datasource has other values to
    offer; a value typed in a dimension's empty text box needs a new empty box to add the next.
    A part is swapped only when it changed, so a field being typed in is not replaced.
    """
    stale = ["bar_shown"]  # hidden, so never in the user's way
    if (query.get("start") or "", query.get("end") or "") != (_day(filters.start), _day(filters.end)):
        stale.append("bar_dates")
    # The bar ends each searchable dimension with an empty box: sent filled, it was just used.
    box_filled = any(query.getlist(name) and query.getlist(name)[-1] != "" for name in searchable)
    if query.get("shown_datasource") != filters.datasource:
        stale += ["bar_options", "bar_actions"]
    elif box_filled:
        stale.append("bar_options")
    return stale


def _day(value: dt.date | None) -> str:
    return value.isoformat() if value else ""


def _panels_answer(request: HttpRequest, context: dict, *, stale: list[str]) -> HttpResponse:
    """The panels, followed by the stale parts of the filter bar as out-of-band swaps."""
    parts = [render_to_string("dashboard/page.html#panels", context, request)]
    parts += [render_to_string(f"dashboard/page.html#{name}", {**context, "oob": True}, request) for name in stale]
    return HttpResponse("".join(parts))


def _panel_builder(page_key: str, key: str):
    page = PAGES.get(page_key)
    builder = next((b for b in page.panels if panel_key(b) == key), None) if page else None
    if builder is None:
        raise Http404("No such panel")
    return builder


@require_GET
@capability_required(Capability.VIEW_DASHBOARDS)
def dashboard_panel(request: HttpRequest, page_key: str, key: str) -> HttpResponse:
    """One panel again (the retry button of a failed panel)."""
    builder = _panel_builder(page_key, key)
    try:
        filters = page_filters_parse(request.GET, user=request.user)
    except FilterError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    panel = panel_build(builder, PanelContext(filters=filters, user=request.user))
    _chart_json([panel])
    return render(
        request, "dashboard/page.html#panel", {"panel": panel, "page": page_key, "query_string": filters.query_string()}
    )


@require_GET
@capability_required(Capability.VIEW_DASHBOARDS)
def dashboard_export(request: HttpRequest, page_key: str, key: str, fmt: str) -> HttpResponse:
    builder = _panel_builder(page_key, key)
    try:
        filters = page_filters_parse(request.GET, user=request.user)
    except FilterError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    panel = panel_build(builder, PanelContext(filters=filters, user=request.user))
    if panel.error or panel.table is None:
        return HttpResponse(panel.error or "This panel has no table.", status=503, content_type="text/plain")
    return export_response(panel=panel, filters=filters, fmt=fmt, filename=f"{page_key}-{key}")


def overview(request: HttpRequest) -> HttpResponse:
    return dashboard_page(request, "overview")
