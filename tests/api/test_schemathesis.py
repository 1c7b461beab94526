"""schemathesis over every operation of the live OpenAPI schema, as an uploader, with its default checks.

Each operation is one test: cases generated from the schema the live server serves at
/api/openapi.json, in both generation modes (valid and invalid data), through every default check: no
server error, documented status codes, content types and headers, bodies that match their response
schemas, invalid data rejected, valid data accepted, auth not ignored, unsupported methods refused.
The real file is published first, so the metric endpoints answer with data and the task endpoints are
also called with a real task (not only with ids that do not exist).

Two documented widenings of "valid data is accepted" (`positive_data_acceptance`), each for a rule a
JSON Schema cannot state:
- metrics: 400 `invalid_query` for rules across parameters (`start` after `end`, `sort` not among the
  requested columns) or about the data (a dimension this datasource does not have);
- upload and preview: 415/422 for the file's contents (a `format: binary` part can hold any bytes;
  DESIGN.md's contract refuses unreadable files with 415 and unusable ones with 422).
And two filters: "invalid" upload/preview data that is valid as sent (see `_valid_on_the_wire`) is dropped,
and so is a metrics or alerts query made invalid only by blank values, which mean "not given" there as on
the pages (see `_valid_without_blanks`).
"""

import json
import os
import random

import jsonschema_rs
import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transforms import to_wire_text
from schemathesis.generation.modes import GenerationMode
from schemathesis.transport.serialization import Binary

from sales_analytics.api import api
from tests.api.conftest import bearer
from tests.conftest import REAL_FILE
from tests.factories import UserFactory
from tests.ingestion import sample_files as sf

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Per operation and generation mode; raise it for a deeper local run (API_FUZZ_EXAMPLES=200).
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))
# Collected from the NinjaAPI in this process; a test checks the live schema has exactly these.
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, methods in api.get_openapi_schema(path_prefix="/api/")["paths"].items()
    for method in methods
)
_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' default
CONFIG = {
    "operations": [
        {
            "include-path-regex": "^/api/metrics/",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, "400"]}},
        },
        {
            # Its form schema says additionalProperties: false, which schemathesis' form-encoded
            # generation does not honour: an extra field is refused with 400 `invalid_form`.
            "include-path": ["/api/ingest/tasks/{task_id}/retry"],
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, "400"]}},
        },
        {
            "include-path": ["/api/ingest/upload", "/api/ingest/preview"],
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, "415", "422"]}},
        },
    ]
}


def _sales_files() -> st.SearchStrategy[bytes]:
    """Readable sales files (slices of the real one) as well as arbitrary bytes for the `file` parts."""
    header, *rows = REAL_FILE.read_bytes().splitlines(keepends=True)

    def sliced(seed: int, size: int) -> bytes:
        return header + b"".join(random.Random(seed).sample(rows, size))

    return st.one_of(st.builds(sliced, st.integers(0, 2**32), st.integers(1, 40)), st.binary(max_size=2048))


# Without this, every generated file is random bytes and uploads only ever answer 415.
schemathesis.openapi.format("binary", st.deferred(_sales_files))


UPLOAD_PATHS = ("/api/ingest/upload", "/api/ingest/preview")


def _part_text(value) -> str | None:
    """What the server reads from a generated multipart value: the part's text (the last of repeated
    parts, as Django's `request.POST[name]` does); None when no part is sent."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value[-1] if value else None  # a list of strings goes out as repeated parts
    if isinstance(value, str):
        return value  # strings go out as they are, even in a part declared application/json
    return to_wire_text(value)  # null, booleans, numbers, objects: their JSON spelling


def _valid_on_the_wire(case) -> bool:
    """Whether a generated upload/preview request is, as sent, valid after all.

    Multipart parts are text. A "negative" value can be sent as text that is valid: 5 in a plain text
    part is "5"; the string "5" in a part declared application/json is the JSON number 5; ["x"] is one
    part "x"; "" is an empty part, which means "not given". Such cases are not invalid data.
    """
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("file"), bytes | Binary):
        return False
    form = case.operation.definition.raw["requestBody"]["content"]["multipart/form-data"]
    properties, encoded = form["schema"]["properties"], form.get("encoding", {})
    for name, value in body.items():
        if name == "file" or name not in properties:
            continue
        text = _part_text(value)
        if text is None or (name in encoded and not text.strip()):
            continue  # no part, or an empty one: not given
        if name in encoded:
            try:
                value = json.loads(text)
            except ValueError:
                return False
        else:
            value = text
        if not jsonschema_rs.validator_for(properties[name]).is_valid(value):
            return False
    return True


# Routers where a blank query value means "not given" (sales_analytics.query_params).
BLANK_MEANS_NOT_GIVEN = ("/api/metrics/", "/api/alerts")


def _valid_without_blanks(case) -> bool:
    """Whether a generated query holds a blank value and is valid as sent once its blank values are dropped."""
    sent = {name: _wire_texts(value) for name, value in (case.query or {}).items()}
    if not any("" in texts for texts in sent.values()):
        return False
    # A parameter's schema may refer to the document's components ($ref): validated with them.
    components = {"components": case.operation.schema.raw_schema.get("components", {})}
    schemas = {
        parameter["name"]: {**parameter["schema"], **components}
        for parameter in case.operation.definition.raw.get("parameters", [])
        if parameter["in"] == "query"
    }
    for name, texts in sent.items():
        given = [text for text in texts if text != ""]
        if not given:
            continue
        if name not in schemas or not jsonschema_rs.validator_for(schemas[name]).is_valid(_read(schemas[name], given)):
            return False
    return True


def _wire_texts(value) -> list[str]:
    """A query value as the texts sent: a list is repeated parameters, anything else its text."""
    items = value if isinstance(value, list) else [value]
    # An empty object goes out as a blank value (`offset=`), as OpenAPI's form style writes it.
    return [item if isinstance(item, str) else "" if item == {} else to_wire_text(item) for item in items]


def _read(schema: dict, texts: list[str]):
    """Query texts as the server reads them for `schema`: a list for an array, else the last text as its type."""
    if schema.get("type") == "array":
        return [_read(schema.get("items", {}), [text]) for text in texts]
    text = texts[-1]
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "boolean":
            return {"true": True, "false": False}.get(text.lower(), text)
    except ValueError:
        return text
    return text


@pytest.fixture
def uploader_headers(role_groups) -> dict[str, str]:
    return bearer(UserFactory(role="uploader"))


@pytest.fixture
def live_schema(live_server, published, uploader_headers):
    # The schema, like every API call but health, needs an API token.
    return schemathesis.openapi.from_url(
        f"{live_server.url}/api/openapi.json", config=SchemathesisConfig.from_dict(CONFIG), headers=uploader_headers
    )


def test_live_schema_lists_every_operation(live_server, uploader_headers) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json", headers=uploader_headers)
    live = sorted(result.ok().label for result in schema.get_all_operations())
    assert live == OPERATIONS
    assert {"POST /api/ingest/upload", "GET /api/metrics/summary", "GET /api/metrics/compare"} <= set(live)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms(label: str, live_schema, uploader_headers, published) -> None:
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, label
    if "{task_id}" in operation.path:
        # The published task: the success and conflict answers of the task endpoints, not only 404s.
        operation.Case(path_parameters={"task_id": published}).call_and_validate(headers=uploader_headers)
    if operation.path in UPLOAD_PATHS:
        # A readable file with no options (the first 40 lines of the real file): 202 / 200.
        head = b"".join(REAL_FILE.read_bytes().splitlines(keepends=True)[:41])
        response = operation.Case(body={"file": head}).call_and_validate(headers=uploader_headers)
        assert response.status_code in (200, 202), response.text

    definition = operation.definition.raw
    has_inputs = bool(definition.get("parameters") or definition.get("requestBody"))
    # An operation without parameters or body (GET /api/health) has no invalid input to generate.
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_inputs else (GenerationMode.POSITIVE,)
    for mode in modes:
        strategy = operation.as_strategy(mode)
        if mode is GenerationMode.NEGATIVE and operation.path in UPLOAD_PATHS:
            strategy = strategy.filter(lambda case: not _valid_on_the_wire(case))
        if mode is GenerationMode.NEGATIVE and operation.path.startswith(BLANK_MEANS_NOT_GIVEN):
            strategy = strategy.filter(lambda case: not _valid_without_blanks(case))

        @given(case=strategy)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            case.call_and_validate(headers=uploader_headers)

        run()


# --- What schemathesis found, pinned as plain examples ----------------------------------


@pytest.fixture
def uploader_client(role_groups) -> Client:
    return Client(HTTP_AUTHORIZATION=bearer(UserFactory(role="uploader"))["Authorization"])


@pytest.mark.parametrize(
    "url",
    [
        "/api/metrics/compare?start=0055-08-19",  # previous period before year 1 (was a 500)
        "/api/metrics/compare?start=0001-03-01&end=0001-03-02&comparison=same_period_last_year",
        "/api/metrics/timeseries?start=0001-01-01&end=0001-01-01&comparison=previous_period",
    ],
)
@pytest.mark.django_db(transaction=False)
def test_comparison_before_year_one_is_400(published_inline, uploader_client, url: str) -> None:
    response = uploader_client.get(url)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_query"


@pytest.mark.parametrize("limit", ["9223372036854775808", "11986231770297067640136837103616"])
@pytest.mark.django_db(transaction=False)
def test_breakdown_limit_past_a_64_bit_integer_is_400(published_inline, uploader_client, limit: str) -> None:
    # Was a 500 from DuckDB's LIMIT, and only when rows reached it: schemathesis found it rarely.
    response = uploader_client.get(f"/api/metrics/breakdown?limit={limit}")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_query"
    # The largest limit taken is METRICS_MAX_ROWS (an answer is never longer), no more the engine's 2⁶³ − 1.
    largest = uploader_client.get(f"/api/metrics/breakdown?limit={django_settings.METRICS_MAX_ROWS}")
    assert largest.status_code == 200 and len(largest.json()["rows"]) == 3  # branches A, B, C
    past = uploader_client.get("/api/metrics/breakdown?limit=9223372036854775807")
    assert past.status_code == 400 and "METRICS_MAX_ROWS" in past.json()["detail"]


@pytest.mark.parametrize(
    "url", ["/api/ingest/tasks?limit=39898865016401125376", "/api/ingest/tasks?offset=7624946370691629056"]
)
def test_page_parameters_past_the_database_integers_are_422(uploader_client, url: str) -> None:
    response = uploader_client.get(url)  # was a 500 (SQLite: datatype mismatch)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_unknown_api_urls_answer_json(uploader_client) -> None:
    for url in ("/api/nothing-here", "/api/ingest/status/not-a-uuid/extra", "/graphql/nothing"):
        response = uploader_client.get(url)
        assert response.status_code == 404 and response["Content-Type"] == "application/json", url
        assert response.json()["code"] == "not_found"
    malformed = uploader_client.get("/api/ingest/status/not-a-uuid")
    assert malformed.status_code == 422 and malformed.json()["code"] == "invalid_request"
    assert Client().get("/no-such-page").status_code in (302, 404)  # pages keep their HTML handling


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"force": "maybe"}, 400, "invalid_option"),  # was silently false
        ({"header_row": "99"}, 422, "header_row_not_found"),  # the option does not fit this file (was 400)
        ({"mode": "", "header_row": "", "max_rejected_ratio": "", "mapping": "", "force": ""}, 202, None),
    ],
)
def test_upload_option_answers(uploader_client, fields: dict, status: int, code: str | None) -> None:
    sample = b"".join(REAL_FILE.read_bytes().splitlines(keepends=True)[:11])
    response = uploader_client.post("/api/ingest/upload", {"file": ContentFile(sample, name="s.csv"), **fields})
    assert response.status_code == status, response.content
    if code:
        assert response.json()["code"] == code


@pytest.mark.parametrize("endpoint", ["/api/ingest/upload", "/api/ingest/preview"])
@pytest.mark.parametrize("header_row", ["1048577", "100000000000000000000"])
def test_header_row_past_a_sheets_last_row_is_400(uploader_client, tmp_path, endpoint: str, header_row: str) -> None:
    # Was a 500 on preview (the Excel reader overflowed) and a failed task on upload.
    workbook = sf.xlsx_write(tmp_path / "s.xlsx", {"Sales": [["Date", "Total"], ["2019-01-05", 1]]})
    upload = ContentFile(workbook.read_bytes(), name="s.xlsx")
    response = uploader_client.post(endpoint, {"file": upload, "header_row": header_row})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_option"


def test_preview_of_a_file_whose_rows_are_all_blank_says_so(uploader_client) -> None:
    # More blank rows than detection reads, and a date format given: was a 500 (no first batch).
    body = b"Date,Branch,Product line,Quantity,Total\n" + b",,,,\n" * 300_000
    response = uploader_client.post(
        "/api/ingest/preview", {"file": ContentFile(body, name="b.csv"), "date_format": "%d/%m/%y"}
    )
    assert response.status_code == 200, response.content
    assert [problem["code"] for problem in response.json()["problems"]] == ["header_only"]


UPLOAD_MUTATION = 'mutation($file: Upload!) { uploadFile(file: $file, datasourceName: "scratch") { task { id } } }'


@pytest.mark.parametrize(
    ("operations", "file_map"),
    [
        ({"query": UPLOAD_MUTATION, "variables": {"file": None}}, {"0": ["variables.file.x"]}),  # KeyError
        ({"query": UPLOAD_MUTATION, "variables": {"file": None}}, {"0": ["nope.file"]}),
        ({"query": UPLOAD_MUTATION, "variables": {"files": [None]}}, {"0": ["variables.files.x"]}),  # ValueError
        ({"query": UPLOAD_MUTATION, "variables": {"files": [None]}}, {"0": ["variables.files.5"]}),  # IndexError
        ({"query": UPLOAD_MUTATION, "variables": "file"}, {"0": ["variables.file"]}),  # TypeError
        ([{"query": UPLOAD_MUTATION}], {"0": ["0.variables.file"]}),
        (None, {"0": ["variables.file"]}),
        ({"query": UPLOAD_MUTATION, "variables": {"file": None}}, ["variables.file"]),
        ({"query": UPLOAD_MUTATION, "variables": {"file": None}}, {"0": "variables.file"}),
        ({"query": UPLOAD_MUTATION, "variables": {"file": None}}, {"0": [1]}),
    ],
)
def test_malformed_graphql_multipart_requests_are_400(uploader_client, operations, file_map) -> None:
    # Each was a 500 from the multipart parser.
    response = uploader_client.post(
        "/graphql",
        {"operations": json.dumps(operations), "map": json.dumps(file_map), "0": ContentFile(b"x", name="s.csv")},
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["extensions"]["code"] == "bad_request"


@pytest.mark.parametrize("part", ["operations", "map", "body"])
def test_graphql_json_nested_too_deeply_is_400(uploader_client, part: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    if part == "body":
        response = uploader_client.post("/graphql", deep, content_type="application/json")
    else:
        fields = {"operations": json.dumps({"query": UPLOAD_MUTATION}), "map": "{}", part: deep}
        response = uploader_client.post("/graphql", {**fields, "0": ContentFile(b"x", name="s.csv")})
    assert response.status_code == 400, response.content
