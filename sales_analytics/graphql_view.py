"""`/graphql`: the same authentication as the REST API, and 401 JSON for anonymous callers."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView

from accounts.authentication import CsrfFailed, request_authenticate
from accounts.roles import Capability, permission_name


def _graphql_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


_graphql = GraphQLView.as_view(graphiql=True)


# CSRF is checked in request_authenticate for session callers; token callers need none.
@csrf_exempt
def graphql_endpoint(request: HttpRequest) -> HttpResponse:
    try:
        user = request_authenticate(request)
    except CsrfFailed:
        return _graphql_error(403, "csrf_failed", "CSRF check failed: send the X-CSRFToken header.")
    if user is None:
        return _graphql_error(401, "not_authenticated", "Authentication required: log in or send a valid bearer token.")
    if not user.has_perm(permission_name(Capability.VIEW_DASHBOARDS)):
        return _graphql_error(403, "permission_denied", "Your role does not allow reading data.")
    return _graphql(request)
