from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import capability_required
from accounts.roles import Capability


@require_GET
@capability_required(Capability.VIEW_DASHBOARDS)
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", {"page": "overview"})
