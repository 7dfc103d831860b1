"""The OpenAPI 3.1 description of the API, generated from the route table and the shapes.

Generated, not written by hand, so it cannot drift from what is served: every route of
``api.ROUTES`` appears with its parameters, its access (bearer token or not), its answer's
schema (``schemas.py``) and its error answers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic.json_schema import models_json_schema

from firmware import __version__
from firmware.web import schemas

if TYPE_CHECKING:
    from firmware.web.api import Route

REF = "#/components/schemas/{model}"


def component_schemas() -> dict[str, Any]:
    """JSON Schemas of every documented shape, referring to each other by ``$ref``."""
    _, top = models_json_schema([(m, "serialization") for m in schemas.DOCUMENTED],
                                ref_template=REF)
    return dict(top.get("$defs", {}))


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if route.content_type == "text/event-stream":
        responses["200"] = {"description": "event stream (events: results, action, status)",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    elif route.response is None and route.content_type != "application/json":
        responses["200"] = {"description": "OK",
                            "content": {route.content_type: {"schema": {"type": "string"}}}}
    elif route.response is None:
        responses["200"] = {"description": "OK",
                            "content": {route.content_type: {"schema": {"type": "object"}}}}
    else:
        responses["200"] = {"description": "OK",
                            "content": {"application/json": {"schema": _ref(route.response)}}}
    errors = {*route.errors, 401, 403}
    for status in sorted(errors):
        responses[str(status)] = {"description": _ERROR_TEXT.get(status, "error"),
                                  "content": {"application/json": {
                                      "schema": _ref(schemas.ErrorResponse)}}}
    operation: dict[str, Any] = {
        "summary": route.summary, "tags": [route.tag],
        "operationId": _operation_id(route),
        "responses": responses,
    }
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}}
                  for name in re.findall(r"\{(\w+)\}", route.path)]
    for param in route.query:
        schema: dict[str, Any] = {"type": param.kind}
        if param.minimum is not None:
            schema["minimum"] = param.minimum
        if param.maximum is not None:
            schema["maximum"] = param.maximum
        parameters.append({"name": param.name, "in": "query", "required": False,
                           "description": param.description, "schema": schema})
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(route.body)}}}
    operation["security"] = ([{"bearer": []}] if route.access == "write"
                             else [{}, {"bearer": []}])
    return operation


def _operation_id(route: Route) -> str:
    words = re.sub(r"[{}]", "", route.path.removeprefix("/api/v1")).strip("/").split("/")
    return route.method.lower() + "".join(w.replace(".", "_").title().replace("_", "")
                                          for w in words if w)


_ERROR_TEXT = {400: "bad request or query", 401: "token missing", 403: "token wrong, "
               "writes disabled, or reads not allowed from this network", 404: "not found",
               409: "not applicable now", 415: "body is not JSON", 422: "invalid value, or "
               "the new script failed (the old version runs on)", 500: "done, but it could "
               "not be saved", 503: "no data yet, busy, or faulted"}


def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pafw appliance API", "version": __version__,
                 "description": "Photoacoustic analyzer: status, results, actions, live "
                 "stream and operator changes. Reads are open to loopback (or the LAN, "
                 "web.read_access); writes need the bearer token web.token."},
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
