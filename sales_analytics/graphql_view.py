"""`/graphql`: the same authentication as the REST API, 401 JSON for anonymous callers,
the GraphQL multipart request spec for uploads, and limits on query depth and field count."""

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView
from graphql import GraphQLError, ValidationRule, specified_rules
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
)

from accounts.authentication import CSRF_FAILED_DETAIL, CsrfFailed, refused_token_detail, request_authenticate
from accounts.roles import Capability, permission_name
from ingestion.errors import TOO_MANY_FILES, IngestionError
from ingestion.uploads import TOO_MANY_FILES_DETAIL, upload_disk_refusal_raise

MAX_QUERY_DEPTH = 8


def _graphql_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


def _selection_depth(node: Any, fragments: dict, seen: frozenset = frozenset(), introspection: bool = False) -> int:
    """How deep `node`'s selections nest, fragments expanded.

    Inside introspection (`__schema`, `__type`) an `ofType` does not count: it unwraps one list or
    non-null wrapper (a single object, at most a few levels deep in any schema). The standard
    introspection query (GraphiQL, gql, graphql-core) nests `ofType` nine times; counted, it would
    be refused, while `type { fields { type { fields … } } }`, the costly nesting, still counts.
    """
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            inside = introspection or name.startswith("__")
            step = 0 if introspection and name == "ofType" else 1
            deepest = max(deepest, step + _selection_depth(selection, fragments, seen, inside))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _selection_depth(selection, fragments, seen, introspection))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                deepest = max(
                    deepest, _selection_depth(fragment, fragments, seen | {selection.name.value}, introspection)
                )
    return deepest


class DepthLimitRule(ValidationRule):
    """Refuse queries nested deeper than MAX_QUERY_DEPTH (cheap protection against abusive queries)."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args) -> None:
        fragments = {
            definition.name.value: definition
            for definition in self.context.document.definitions
            if definition.__class__.__name__ == "FragmentDefinitionNode"
        }
        depth = _selection_depth(node, fragments)
        if depth > MAX_QUERY_DEPTH:
            self.report_error(GraphQLError(f"Query depth {depth} exceeds the limit of {MAX_QUERY_DEPTH}.", node))


def _fields(node: Any, fragments: dict, seen: frozenset = frozenset()) -> list[FieldNode]:
    """The fields selected directly in `node`, through inline fragments and fragment spreads."""
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return []
    fields: list[FieldNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            fields.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            fields.extend(_fields(selection, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                fields.extend(_fields(fragment, fragments, seen | {selection.name.value}))
    return fields


def _field_count(node: Any, fragments: dict, budget: int) -> int:
    """Fields selected anywhere under `node`, fragments expanded once per use; stops past `budget`.

    A fragment spread five times costs five times its fields: each use is resolved again.
    """
    count = 0
    pending = [node]
    while pending and count <= budget:
        for field in _fields(pending.pop(), fragments):
            count += 1
            pending.append(field)
    return count


class FieldCountLimitRule(ValidationRule):
    """Refuse documents with too many root fields per operation or too many fields in all.

    Each field, under its own alias and arguments, is resolved (and its result cached) on its own:
    thousands of aliased `dashboardData(filters: …)` in one request ran for minutes and filled the
    cache. The limits are checked on the whole document before anything executes.
    """

    def enter_document(self, node: DocumentNode, *_args) -> Any:
        fragments = {
            definition.name.value: definition
            for definition in node.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        max_root: int = settings.GRAPHQL_MAX_ROOT_FIELDS
        max_total: int = settings.GRAPHQL_MAX_FIELDS
        total = 0
        for operation in node.definitions:
            if not isinstance(operation, OperationDefinitionNode):
                continue
            roots = len(_fields(operation, fragments))
            if roots > max_root:
                self.report_error(
                    GraphQLError(
                        f"The operation selects {roots} root fields; the limit is {max_root} "
                        "(GRAPHQL_MAX_ROOT_FIELDS). Send the rest in further requests.",
                        operation,
                    )
                )
                return self.BREAK
            total += _field_count(operation, fragments, budget=max_total - total)
            if total > max_total:
                self.report_error(
                    GraphQLError(
                        f"The request selects more than {max_total} fields, aliases and fragment uses "
                        "included (GRAPHQL_MAX_FIELDS). Split it into smaller requests.",
                        operation,
                    )
                )
                return self.BREAK
        return None


class SalesGraphQLView(GraphQLView):
    graphiql = True
    # graphql-core runs only the rules given: without the standard ones, a misspelled argument or
    # field (`brnch:`, `bogus`) was ignored and the answer silently unfiltered.
    validation_rules = (*specified_rules, FieldCountLimitRule, DepthLimitRule)

    def render_graphiql(self, request: HttpRequest, **data: Any) -> HttpResponse:
        # templates/graphene/graphiql.html hands these to graphene's graphiql.js as JSON (no inline script).
        data["graphene_settings"] = {
            "graphiqlHeaderEditorEnabled": data["graphiql_header_editor_enabled"],
            "graphiqlShouldPersistHeaders": data["graphiql_should_persist_headers"],
            "graphiqlInputValueDeprecation": data["graphiql_input_value_deprecation"],
        }
        return super().render_graphiql(request, **data)

    def parse_body(self, request: HttpRequest) -> dict:
        if request.content_type != "multipart/form-data" or "operations" not in request.POST:
            try:
                return super().parse_body(request)
            except RecursionError as exc:  # json.loads of a deeply nested body (was a 500)
                raise GraphQLHttpError("The request body is nested too deeply.") from exc
        # GraphQL multipart request spec: `operations` JSON, `map` {file key: ["variables.file"]}, the files.
        upload_disk_refusal_raise(request)
        try:
            operations = json.loads(request.POST["operations"])
            file_map = json.loads(request.POST.get("map", "{}"))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise GraphQLHttpError("operations and map must be JSON, not nested too deeply.") from exc
        if not isinstance(operations, dict) or not _is_file_map(file_map):
            raise GraphQLHttpError(
                "operations must be a JSON object, and map an object of file key → list of paths "
                '(e.g. "variables.file").'
            )
        for key, paths in file_map.items():
            for path in paths:
                try:
                    _assign(operations, path.split("."), request.FILES.get(key))
                except (KeyError, IndexError, ValueError, TypeError) as exc:
                    raise GraphQLHttpError(f"map path '{path[:100]}' does not lead into operations.") from exc
        return operations


def _is_file_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(paths, list) and all(isinstance(path, str) for path in paths) for paths in value.values()
    )


class GraphQLHttpError(Exception):
    pass


def _assign(target: Any, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = path[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


_graphql = SalesGraphQLView.as_view()


# CSRF is checked in request_authenticate for session callers; token callers need none.
@csrf_exempt
def graphql_endpoint(request: HttpRequest) -> HttpResponse:
    try:
        return _graphql_answer(request)
    except TooManyFilesSent:  # from parsing the body, in the CSRF check or the view
        return _graphql_error(400, TOO_MANY_FILES, TOO_MANY_FILES_DETAIL)


def _graphql_answer(request: HttpRequest) -> HttpResponse:
    try:
        user = request_authenticate(request)
    except CsrfFailed:
        return _graphql_error(403, "csrf_failed", CSRF_FAILED_DETAIL)
    if user is None:
        return _graphql_error(
            401,
            "not_authenticated",
            refused_token_detail(request) or "Authentication required: log in or send a valid bearer token.",
        )
    if not user.has_perm(permission_name(Capability.VIEW_DASHBOARDS)):
        return _graphql_error(403, "permission_denied", "Your role does not allow reading data.")
    try:
        return _graphql(request)
    except GraphQLHttpError as exc:
        return _graphql_error(400, "bad_request", str(exc))
    except IngestionError as exc:  # the server's disk refused the file while it streamed
        return _graphql_error(exc.status, exc.code, exc.detail)
