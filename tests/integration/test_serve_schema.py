"""Property-based tests of the running TES API with schemathesis, from the OpenAPI document
the server itself serves: generated requests (valid and invalid) for every operation, each
answer checked against the document (status codes, content types, headers, response bodies),
no server errors, authentication not ignored.

Every check runs but ``positive_data_acceptance``: a schema cannot say which images are
catalog releases, that a task needs an executor or that tag values pair with tag keys, so
schema-valid requests are rightly refused (400, a documented answer, with the reason).
(schemathesis' lazy pytest integration does not run under pytest 9, so each operation's
Hypothesis strategy is driven here directly.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.serve_fixtures import Instance
from tests.serve_helpers import ServerProcess

pytestmark = pytest.mark.docker

API = "/ga4gh/tes/v1"
OPERATIONS = (
    f"GET {API}/service-info",
    f"GET {API}/tasks",
    f"POST {API}/tasks",
    f"GET {API}/tasks/{{id}}",
    f"POST {API}/tasks/{{id}}:cancel",
    f"GET {API}/tasks/{{id}}/record",
)
EXAMPLES = 40


@pytest.fixture(scope="module")
def schema_server(tes_instance: Instance) -> Iterator[ServerProcess]:
    proc = tes_instance.server("schema")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def served(schema_server: ServerProcess, tes_instance: Instance) -> Any:
    token = tes_instance.tokens["writer"]
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"BearerAuth": {"bearer": token}}}})
    return schemathesis.openapi.from_url(f"{schema_server.url}{API}/openapi.json", config=config)


def test_every_operation_is_covered(served: Any) -> None:
    labels = {result.ok().label for result in served.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_the_api_keeps_its_own_contract(
    served: Any, tes_instance: Instance, label: str, mode: GenerationMode
) -> None:
    if label.endswith("/service-info") and mode is GenerationMode.NEGATIVE:
        return  # it takes no input: there is nothing invalid to send
    operation = served.find_operation_by_label(label)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        statuses[response.status_code] += 1

    statuses: Counter[int] = Counter()
    check()
    if mode is GenerationMode.POSITIVE:  # the token was sent: the API itself answered
        assert set(statuses) - {401}, statuses
