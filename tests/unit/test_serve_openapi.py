"""The served OpenAPI document against the published GA4GH TES 1.1 one
(tests/fixtures/tes/, unchanged from the v1.1 tag): the same paths and operation ids, query
parameters, states, views, and every field name of every TES type, with the same required
fields (the task as *shown* may lack executors: TES defines the MINIMAL view)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ruamel.yaml import YAML

from gefreg.serve.app import create_app
from tests.serve_helpers import NoImagesEngine, published_catalog, serve_config, tokens

OFFICIAL = (
    Path(__file__).resolve().parents[1] / "fixtures" / "tes" / "task_execution_service.openapi.yaml"
)
PREFIX = "/ga4gh/tes/v1"
TYPES = {
    "tesTask": "TesTask",
    "tesExecutor": "TesExecutor",
    "tesInput": "TesInput",
    "tesOutput": "TesOutput",
    "tesResources": "TesResources",
    "tesExecutorLog": "TesExecutorLog",
    "tesOutputFileLog": "TesOutputFileLog",
    "tesTaskLog": "TesTaskLog",
    "tesListTasksResponse": "TesListTasksResponse",
    "tesCreateTaskResponse": "TesCreateTaskResponse",
}


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    root = tmp_path_factory.mktemp("openapi")
    settings = published_catalog(root)
    (root / "data").mkdir()
    tokens(root / "tokens.jsonl", writer={})
    app = create_app(
        serve_config(settings, root / "tokens.jsonl", root / "data"),
        start_workers=False,
        engine_factory=NoImagesEngine,  # type: ignore[arg-type]
    )
    served = TestClient(app).get(f"{PREFIX}/openapi.json").json()
    official = YAML(typ="safe", pure=True).load(OFFICIAL.read_text())
    return served, official


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][name])


def _properties(schema: dict[str, Any]) -> set[str]:
    return set(schema.get("properties", {}))


def test_paths_and_operations_are_tes_1_1s(
    documents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    served, official = documents
    for path, methods in official["paths"].items():
        ours = served["paths"][PREFIX + path]
        for method, operation in methods.items():
            assert ours[method]["operationId"] == operation["operationId"], (path, method)
            want = {p["name"] for p in operation.get("parameters", []) if "name" in p}
            want |= {"view"} if any("$ref" in p for p in operation.get("parameters", [])) else set()
            got = {p["name"] for p in ours[method].get("parameters", [])}
            assert want <= got, (path, method, want - got)


def test_states_views_and_file_types_are_tes_1_1s(
    documents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    served, official = documents
    assert _schema(served, "TesState")["enum"] == _schema(official, "tesState")["enum"]
    assert _schema(served, "TesFileType")["enum"] == _schema(official, "tesFileType")["enum"]
    view = official["components"]["parameters"]["view"]["schema"]["enum"]
    assert _schema(served, "TesView")["enum"] == view


def test_every_tes_type_has_the_official_fields(
    documents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    served, official = documents
    for theirs, ours in TYPES.items():
        want, got = _schema(official, theirs), _schema(served, ours)
        assert _properties(want) == _properties(got), (theirs, _properties(want) ^ _properties(got))
        assert set(want.get("required", [])) == set(got.get("required", [])), theirs
    info = _schema(served, "TesServiceInfo")
    extra = official["components"]["schemas"]["tesServiceInfo"]["allOf"][1]["properties"]
    assert set(extra) <= _properties(info)
    assert {"id", "name", "type", "organization", "version"} <= set(info["required"])
    view = _schema(served, "TesTaskView")
    assert _properties(view) == _properties(_schema(official, "tesTask"))
    assert set(view["required"]) == {"id", "state"}


def test_task_endpoints_declare_bearer_auth(
    documents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    served, _ = documents
    assert served["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    assert "security" not in served["paths"][f"{PREFIX}/service-info"]["get"]
    for method in ("get", "post"):
        assert served["paths"][f"{PREFIX}/tasks"][method]["security"] == [{"BearerAuth": []}]
