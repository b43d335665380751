"""Schemathesis fuzzes every operation of the live service's OpenAPI (positive and negative
cases, bounded examples): no request may get a 5xx. Writes carry the token so that they get
past the 401 and into validation; PUT /adapters multipart is also covered by hand in
test_bad_input.py (random bytes are all schemathesis can send there)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis  # the test extra: a missing install fails here, it never skips
from hypothesis import HealthCheck, given, settings  # schemathesis brings it
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from harness.reliability import AUTH, task_artifact, upload_files
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
MAX_EXAMPLES = 20  # per operation and generation mode
SPEC = create_app(Settings()).openapi()  # read without starting anything
READS_OF_A_TASK = {("POST", "/v1/{task}/predict"), ("GET", "/adapters/{task}")}
# (method, path, mode, task): every documented operation with valid and with invalid data;
# the reads of a task once more with the task fixed to an uploaded one, so that fuzzed bodies
# reach the tokenizer and the model instead of a 404.
CASES = [
    (method.upper(), path, mode, None)
    for path, methods in SPEC["paths"].items()
    for method in methods
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
] + [(m, p, mode, "fuzz") for m, p in sorted(READS_OF_A_TASK) for mode in GenerationMode]


@pytest.fixture(scope="module")
def api_schema(slot, minilm):
    url = slot.get().url
    files = upload_files(*task_artifact(minilm, "fuzz"))
    assert httpx.put(f"{url}/adapters", files=files, headers=AUTH).status_code == 201
    return schemathesis.openapi.from_url(f"{url}/openapi.json"), url


@pytest.mark.parametrize(
    ("method", "path", "mode", "task"),
    CASES,
    ids=[f"{m} {p} {g.value}{' ' + t if t else ''}" for m, p, g, t in CASES],
)
def test_no_server_errors(api_schema, method, path, mode, task):
    schema, url = api_schema
    operation = schema[path][method]
    fixed = {"task": task} if task else None
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case) -> None:
        response = case.call(base_url=url, headers=AUTH, timeout=30)
        calls.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    try:
        fuzz()
    except Unsatisfiable:
        pytest.skip(f"schemathesis has no {mode.value} data for {method} {path}")
    assert calls and max(calls) < 500
    print(f"{method} {path} [{mode.value}]: {len(calls)} calls, statuses {sorted(set(calls))}")
