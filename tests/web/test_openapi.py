"""The generated OpenAPI description (firmware/web/openapi.py): each kind of route (JSON shape,
plain JSON, event stream, other media) mapped to its responses, errors, parameters, body,
security and operation id; and the document of the real route table: complete, every reference
resolving, every schema a valid JSON Schema."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from firmware import __version__
from firmware.web import schemas
from firmware.web.api import ROUTES, Param, Route
from firmware.web.http import Request, Response
from firmware.web.openapi import component_schemas, openapi_document

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


async def handler(context: Any, request: Request) -> Response:
    return Response(200)


def operation(route: Route) -> dict[str, Any]:
    document = openapi_document((route,))
    assert list(document["paths"]) == [route.path]
    return document["paths"][route.path][route.method.lower()]


def test_a_read_route_with_a_documented_shape_and_query() -> None:
    route = Route("GET", "/api/v1/actions/{id}/history", handler, "One action's history",
                  "read", schemas.HistoryResponse, errors=(404, 400),
                  query=(Param("limit", "integer", "newest first", minimum=1, maximum=10),
                         Param("kind", "string", "only this kind")),
                  tag="actions")
    op = operation(route)
    assert op["summary"] == "One action's history" and op["tags"] == ["actions"]
    assert op["operationId"] == "getActionsIdHistory"
    assert op["responses"]["200"] == {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/HistoryResponse"}}}}
    # its own errors, plus 401 and 403 that the access policy may always answer
    assert list(op["responses"]) == ["200", "400", "401", "403", "404"]
    for status in ("400", "401", "403", "404"):
        assert op["responses"][status]["content"]["application/json"]["schema"] == ERROR_REF
    assert op["responses"]["404"]["description"] == "not found"
    assert op["parameters"] == [
        {"name": "id", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}},
        {"name": "limit", "in": "query", "required": False, "description": "newest first",
         "schema": {"type": "integer", "minimum": 1, "maximum": 10}},
        {"name": "kind", "in": "query", "required": False, "description": "only this kind",
         "schema": {"type": "string"}},
    ]
    assert "requestBody" not in op
    assert op["security"] == [{}, {"bearer": []}]  # reads: open to some networks, or token


def test_a_write_route_with_a_body() -> None:
    route = Route("POST", "/api/v1/relays/{name}/pulse", handler, "Pulse", "write",
                  schemas.PulseResponse, errors=(418,), body=schemas.PulseRequest)
    op = operation(route)
    assert op["operationId"] == "postRelaysNamePulse"
    assert op["requestBody"] == {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/PulseRequest"}}}}
    assert op["security"] == [{"bearer": []}]
    assert op["responses"]["418"]["description"] == "error"  # a status without its own text
    assert [p["name"] for p in op["parameters"]] == ["name"]


@pytest.mark.parametrize(("content_type", "response", "schema"), [
    ("text/event-stream", None, {"type": "string"}),
    ("text/csv; charset=utf-8", None, {"type": "string"}),
    ("application/json", None, {"type": "object"}),
])
def test_answers_without_a_documented_shape(content_type: str, response: Any,
                                             schema: dict[str, str]) -> None:
    route = Route("GET", "/api/v1/export.csv", handler, "x", "read", response,
                  content_type=content_type)
    op = operation(route)
    [(media, content)] = op["responses"]["200"]["content"].items()
    assert media == content_type and content == {"schema": schema}
    assert op["operationId"] == "getExportCsv"
    assert "parameters" not in op


def test_routes_of_one_path_share_its_item() -> None:
    routes = (Route("GET", "/healthz", handler, "a", "read", None),
              Route("POST", "/healthz", handler, "b", "write", None))
    document = openapi_document(routes)
    assert list(document["paths"]["/healthz"]) == ["get", "post"]
    assert document["paths"]["/healthz"]["post"]["operationId"] == "postHealthz"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(ROUTES)


def test_the_document_of_the_route_table(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == __version__
    assert document["components"]["securitySchemes"] == {"bearer": {"type": "http",
                                                                     "scheme": "bearer"}}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == {(r.path, r.method.lower()) for r in ROUTES}
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == len(ROUTES)


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [r for k, v in value.items()
                for r in ([v] if k == "$ref" else references(v))]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def test_every_reference_resolves_and_every_shape_is_a_component(
        document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    refs = references(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in components, ref
    assert {m.__name__ for m in schemas.DOCUMENTED} <= set(components)
    assert component_schemas() == components


def test_every_component_is_a_valid_json_schema(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert schema.get("additionalProperties") is False or "enum" in schema, name
