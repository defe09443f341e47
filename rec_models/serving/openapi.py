"""The service's OpenAPI document (GET /docs.json), complete and true to what the server answers.

BentoML generates a document for the native API routes only, names their schemas after its
internal classes (`RecommendRequestIODescriptor`), documents error bodies with a string `detail`
while the server answers a list, and knows nothing of /info, the v2 routes, 401, 413 or 503.
`complete_spec(bentoml_spec, ...)` fixes that: public schema names, one `Error` schema for every
error status, the statuses each route can answer (401 when an API key is set, 413 over the body
limit, 415 for a form body, 429 / 503 with Retry-After when full or loading, 408 past the
request's deadline), and the /info and v2 routes.
`OpenAPIMiddleware` answers GET /docs.json with it, so the API docs page and any OpenAPI tool
(the schemathesis fuzzing of `make fuzz`) see the same document.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from rec_models.serving.oip.specs import MAX_USERS

JSON = "application/json"
REF_ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "'field: reason' of the first error"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                                 {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}  # fmt: skip
RETRY_AFTER = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}
STATUS_TEXT = {
    400: "Invalid request (the field and the reason)",
    401: "Missing or invalid API key",
    408: "The request's deadline (X-Request-Timeout) passed before its turn: not computed; "
    "or its body did not arrive in full within the body deadline (ADREC_BODY_TIMEOUT_MS)",
    404: "Unknown id or model",
    413: "Request body too large",
    415: "Content type not accepted (send application/json)",
    429: "Too many requests in flight: retry after Retry-After seconds",
    500: "Internal error (a bug: please report it)",
    503: "Not ready yet, or overloaded: retry after Retry-After seconds",
}
MODELS = ["encoder", "recommender", "scorer"]
TIMEOUT_PARAMETER = {
    "name": "X-Request-Timeout",
    "in": "header",
    "required": False,
    "description": "seconds; a request still waiting when they have passed is dropped (408)",
    "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 3600},
}
DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES"]  # fmt: skip


def error_response(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": STATUS_TEXT[status],
        "content": {JSON: {"schema": REF_ERROR}},
    }
    if status in (429, 503):
        out["headers"] = RETRY_AFTER
    return out


def json_ok(schema: dict[str, Any], description: str = "Successful Response") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


TENSOR_IN = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": DATATYPES},
        "data": {"type": "array", "items": {}},  # flat or nested, numbers, strings or booleans
        "parameters": {"type": "object"},
    },
}
TENSOR_OUT = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": TENSOR_IN, "minItems": 1},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}}}},
    },
    "example": {"inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES",
                            "data": ["a space opera"]}]},
}  # fmt: skip
INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {"type": "array", "items": TENSOR_OUT},
    },
}
MODEL_METADATA = {
    "type": "object",
    "required": ["name", "versions", "platform", "inputs", "outputs"],
    "properties": {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": TENSOR_OUT},
        "outputs": {"type": "array", "items": TENSOR_OUT},
    },
}


def _op(summary: str, responses: dict[Any, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": extra.pop("tags", ["Open Inference Protocol (v2)"]),
            "responses": {str(k): v for k, v in responses.items()}, **extra}  # fmt: skip


def v2_paths(auth: int | None) -> dict[str, Any]:
    """The v2 REST routes (rec_models/serving/oip/rest.py), each with every status it answers."""
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": MODELS}}  # fmt: skip
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    guarded = {auth: error_response(auth)} if auth else {}
    errors = {**guarded, 404: error_response(404), 503: error_response(503)}
    paths: dict[str, Any] = {
        "/v2": {"get": _op("Server metadata", {200: json_ok(_obj(
            name={"type": "string"}, version={"type": "string"},
            extensions={"type": "array", "items": {"type": "string"}})), **guarded})},
        "/v2/health/live": {"get": _op("Liveness", {200: json_ok(_obj(live={"type": "boolean"}))})},
        "/v2/health/ready": {"get": _op("Readiness", {
            200: json_ok(_obj(ready={"type": "boolean"})),
            503: json_ok(_obj(ready={"type": "boolean"}), "Not ready yet")})},
    }  # fmt: skip
    ready = _obj(name={"type": "string"}, ready={"type": "boolean"})
    ok = json_ok(INFER_RESPONSE)  # or the binary tensor data extension's body
    ok["content"]["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    for base, params in (("/v2/models/{name}", [name]),
                         ("/v2/models/{name}/versions/{version}", [name, version])):  # fmt: skip
        paths[base] = {"get": _op("Model metadata", {200: json_ok(MODEL_METADATA), **errors},
                                  parameters=params)}  # fmt: skip
        paths[f"{base}/ready"] = {"get": _op("Model readiness", {200: json_ok(ready), **errors},
                                             parameters=params)}  # fmt: skip
        body = {"required": True, "content": {JSON: {"schema": INFER_REQUEST}}}
        summary = (
            f"Inference (encoder: TEXT; recommender: USER_ID or PROFILE, up to {MAX_USERS}; "
            "scorer: USER_ID and ITEM_IDS)"
        )
        responses = {200: ok, 400: error_response(400), **errors}
        responses |= {408: error_response(408), 429: error_response(429)}
        paths[f"{base}/infer"] = {
            "post": _op(
                summary, responses, parameters=[*params, TIMEOUT_PARAMETER], requestBody=body
            )
        }
    return paths


def use_component_schema(op: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The request body by reference to its component: BentoML inlines a copy that drops the
    `null` its optional fields accept (the component keeps it)."""
    content = op.get("requestBody", {}).get("content", {}).get(JSON)
    title = (content or {}).get("schema", {}).get("title")
    if title in schemas:
        content["schema"] = {"$ref": f"#/components/schemas/{title}"}


def complete_spec(spec: dict[str, Any], api_key: bool, max_body_bytes: int) -> dict[str, Any]:
    """BentoML's document `spec`, corrected and completed (see the module docstring)."""
    text = json.dumps(spec).replace("IODescriptor", "")  # public schema names, refs included
    out = json.loads(text)
    schemas = out.setdefault("components", {}).setdefault("schemas", {})
    for internal in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(internal, None)
    schemas["Error"] = copy.deepcopy(ERROR_SCHEMA)
    auth = 401 if api_key else None
    for path, ops in out["paths"].items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            if op.get("x-bentoml-name"):  # a native API route
                use_component_schema(op, schemas)
                op.setdefault("parameters", []).append(TIMEOUT_PARAMETER)
                statuses = [400, auth, 404, 408, 413, 415, 429, 500, 503]
                op["description"] = (op.get("description") or "") + (
                    f"\n\nBodies over {max_body_bytes} bytes are refused (413)."
                )
                for status in filter(None, statuses):
                    responses[str(status)] = error_response(status)
            elif path == "/readyz":
                responses["503"] = {"description": "Not ready yet (loading or failed)"}
            elif path == "/metrics":
                text = {"text/plain": {"schema": {"type": "string"}}}
                responses["200"] = {"description": "Prometheus text format", "content": text}
                if auth:
                    responses["401"] = error_response(401)
    info = {"get": _op("Readiness, models, batching, settings (never the API key)",
                       {200: json_ok({"type": "object", "required": ["ready"],
                                      "properties": {"ready": {"type": "boolean"}}}),
                        **({auth: error_response(auth)} if auth else {})},
                       tags=["Infrastructure"])}  # fmt: skip
    out["paths"]["/info"] = info
    out["paths"] |= v2_paths(auth)
    if api_key:
        out["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return out


class OpenAPIMiddleware:
    """Answers GET /docs.json with the completed document (built once, on first request)."""

    def __init__(self, app: Any, build: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.build = build
        self.body: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != "/docs.json":
            await self.app(scope, receive, send)
            return
        if self.body is None:
            self.body = json.dumps(self.build()).encode()
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", JSON.encode()),
                        (b"content-length", str(len(self.body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": self.body})
