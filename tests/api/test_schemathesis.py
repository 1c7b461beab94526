"""schemathesis over every operation of the live OpenAPI schema, as an uploader, with its default checks.

Each operation is one test: positive and negative cases generated from the schema the live server
serves at /api/openapi.json, every default check (no server error, documented status codes, content
types and headers, response bodies that match their schemas, negative data rejected, …), with the real
file published first so the metric endpoints answer with data and the task endpoints have a real task.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from sales_analytics.api import api
from tests.api.conftest import bearer
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MAX_EXAMPLES = 15
# Collected from the NinjaAPI in this process; the test checks the live schema has exactly these.
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, methods in api.get_openapi_schema(path_prefix="/api/")["paths"].items()
    for method in methods
)


@pytest.fixture
def live_schema(live_server, published):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json")
    return schema


@pytest.fixture
def uploader_headers(role_groups) -> dict[str, str]:
    return bearer(UserFactory(role="uploader"))


def test_live_schema_lists_every_operation(live_server) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json")
    live = sorted(result.ok().label for result in schema.get_all_operations())
    assert live == OPERATIONS
    assert len(OPERATIONS) >= 13


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms(label: str, live_schema, uploader_headers, published) -> None:
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, label
    # The published task first: the task endpoints' success and conflict answers, not only 404s.
    if "{task_id}" in operation.path:
        operation.Case(path_parameters={"task_id": published}).call_and_validate(headers=uploader_headers)

    strategy = st.one_of(operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        case.call_and_validate(headers=uploader_headers)

    run()
