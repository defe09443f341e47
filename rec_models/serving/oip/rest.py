"""Open Inference Protocol (KServe v2) REST routes: the v2 models of protocol.py as an ASGI app.

Mounted into the BentoML service with `Recommender.mount_asgi_app(create_app(...), path="/")`: the
routes carry the /v2 prefix themselves, as a mount at "/v2" would never see GET /v2 itself
(BentoML's passive mount only takes paths that one of the app's routes matches).

    GET  /v2                                   server metadata
    GET  /v2/health/live, /v2/health/ready     200 {"live"|"ready": true}, 503 while loading
    GET  /v2/models/{name}[/versions/{v}]      model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

Tensors travel as JSON ("data": flat or nested row-major lists, BYTES as strings) or with the
binary tensor data extension (Triton's `Inference-Header-Content-Length`: a JSON header, then each
input's bytes, `parameters.binary_data_size` long, BYTES elements length-prefixed). Outputs come as
JSON, or binary when the request asks for it (`parameters.binary_data_output`, or an output's
`parameters.binary_data`), which is what tritonclient.http does by default. Errors are
{"error": "..."} with the ServingError's status, mapped in `error` alone: 400 (bad input,
over-size body), 404 (unknown model or id) or 503 + Retry-After (loading, encoder queue full).

`create_app(get_protocol)` builds the app over whatever `get_protocol()` returns: the service
passes its serving core's protocol (None while the core loads).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pydantic_core
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rec_models.serving.errors import InvalidArgumentError, ServingError, UnavailableError
from rec_models.serving.oip.codecs import InputTensor, check_request_size, raw_bytes
from rec_models.serving.oip.protocol import InferenceProtocol
from rec_models.serving.oip.specs import SERVER_NAME, ModelSpec, server_version

PREFIX = "/v2"
HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]

GetProtocol = Callable[[], InferenceProtocol | None]


def error(exc: ServingError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)


def parse_request(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """(JSON inference request, the binary data after it)."""
    json_size = len(body)
    if header_length is not None:
        try:
            json_size = int(header_length)
        except ValueError:
            raise InvalidArgumentError(
                f"header Inference-Header-Content-Length: {header_length!r} is not an integer"
            ) from None
        if not 0 <= json_size <= len(body):
            raise InvalidArgumentError(
                f"header Inference-Header-Content-Length: {json_size} is outside the "
                f"{len(body)}-byte body"
            )
    try:
        request = json.loads(body[:json_size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"request body: not a JSON inference request ({exc})") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise InvalidArgumentError("request body: expected an object with an 'inputs' list")
    check_optional(request, "request body", id=str, parameters=dict, outputs=list)
    return request, body[json_size:]


def check_optional(obj: dict[str, Any], where: str, **kinds: type) -> None:
    """Each optional member of `obj` that is present has its JSON type (null is not absent)."""
    names = {str: "a string", dict: "an object", list: "a list"}
    for key, kind in kinds.items():
        if key in obj and not isinstance(obj[key], kind):
            raise InvalidArgumentError(f"{where}: '{key}' must be {names[kind]}")


def request_inputs(request: dict[str, Any], binary: bytes) -> list[InputTensor]:
    """The request's inputs, taking each binary input's bytes from `binary` in order."""
    inputs, offset = [], 0
    for i, t in enumerate(request["inputs"]):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise InvalidArgumentError(f"inputs[{i}]: expected an object with a 'name'")
        name, shape, datatype = t["name"], t.get("shape"), t.get("datatype")
        check_optional(t, f"input '{name}'", parameters=dict, data=list)
        if not isinstance(shape, list) or not all(type(d) is int for d in shape):
            raise InvalidArgumentError(f"input '{name}': 'shape' must be a list of integers")
        if not isinstance(datatype, str):
            raise InvalidArgumentError(f"input '{name}': 'datatype' must be a string")
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise InvalidArgumentError(
                    f"input '{name}': binary_data_size {size!r} does not fit the "
                    f"{len(binary) - offset} bytes of binary data left"
                )
            inputs.append(InputTensor(name, datatype, shape, raw=binary[offset : offset + size]))
            offset += size
        elif isinstance(t.get("data"), list):
            inputs.append(InputTensor(name, datatype, shape, data=t["data"]))
        else:
            raise InvalidArgumentError(f"input '{name}': no 'data' list and no binary_data_size")
    if offset != len(binary):
        raise InvalidArgumentError(
            f"request body: {len(binary) - offset} bytes of binary data belong to no input"
        )
    return inputs


def requested_outputs(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{output name: its parameters} of the request's "outputs" (empty: all outputs)."""
    outputs, wanted = request.get("outputs") or [], {}
    if not isinstance(outputs, list):
        raise InvalidArgumentError("request body: 'outputs' must be a list")
    for i, o in enumerate(outputs):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise InvalidArgumentError(f"outputs[{i}]: expected an object with a 'name'")
        check_optional(o, f"output '{o['name']}'", parameters=dict)
        wanted[o["name"]] = o.get("parameters") or {}
    return wanted


def infer_response(
    spec: ModelSpec,
    outputs: dict[str, np.ndarray],
    request: dict[str, Any],
    wanted: dict[str, dict[str, Any]],
) -> Response:
    binary_default = bool((request.get("parameters") or {}).get("binary_data_output", False))
    body: dict[str, Any] = {"model_name": spec.name, "model_version": spec.version, "outputs": []}
    if "id" in request:
        body["id"] = request["id"]
    chunks: list[bytes] = []
    for t in spec.outputs:
        if wanted and t.name not in wanted:
            continue
        arr = outputs[t.name]
        out: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(arr.shape)}
        if wanted.get(t.name, {}).get("binary_data", binary_default):
            raw = raw_bytes(arr, t.datatype)
            out["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            out["data"] = arr.reshape(-1).tolist()
        body["outputs"].append(out)
    header = pydantic_core.to_json(body)  # Rust: fast on the float arrays of "data"
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *chunks]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


async def read_body(request: Request, ceiling: int) -> bytes:
    """The body, refused unread beyond `ceiling` bytes (the message limit's hard stop)."""
    declared = request.headers.get("content-length", "")
    too_big = f"more than twice the {ceiling // 2}-byte message limit"
    if declared.isdigit() and int(declared) > ceiling:
        raise InvalidArgumentError(f"request body: {declared} bytes, {too_big}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > ceiling:
            raise InvalidArgumentError(f"request body: over {ceiling} bytes, {too_big}")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(get_protocol: GetProtocol, prefix: str = PREFIX) -> Starlette:
    """The v2 routes under `prefix` over the protocol `get_protocol()` returns."""

    def protocol() -> InferenceProtocol:
        p = get_protocol()
        if p is None:
            raise UnavailableError(
                "the models are still loading; retry when /v2/health/ready is 200"
            )
        return p

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(
            {"name": SERVER_NAME, "version": server_version(), "extensions": EXTENSIONS}
        )

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        p = get_protocol()
        ok = p is not None and p.ready
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def model_metadata(request: Request) -> Response:
        try:
            spec = protocol().model(
                request.path_params["name"], request.path_params.get("version", "")
            )
        except ServingError as exc:
            return error(exc)
        return JSONResponse(spec.metadata())

    async def model_ready(request: Request) -> Response:
        try:
            p = protocol()
            spec = p.model(request.path_params["name"], request.path_params.get("version", ""))
        except ServingError as exc:
            return error(exc)
        return JSONResponse(
            {"name": spec.name, "ready": p.ready}, status_code=200 if p.ready else 503
        )

    async def infer(request: Request) -> Response:
        try:
            p = protocol()
            name, version = request.path_params["name"], request.path_params.get("version", "")
            p.model(name, version)  # 404 before anything else
            body = await read_body(request, 2 * p.max_message_bytes)
            parsed, binary = parse_request(body, request.headers.get(HEADER_LENGTH))
            inputs = request_inputs(parsed, binary)
            check_request_size({t.name: t.nbytes for t in inputs}, len(body), p.max_message_bytes)
            wanted = requested_outputs(parsed)
            spec, outputs = await p.infer(name, version, inputs, list(wanted))
        except ServingError as exc:
            return error(exc)
        return infer_response(spec, outputs, parsed, wanted)

    model, versioned = f"{prefix}/models/{{name}}", f"{prefix}/models/{{name}}/versions/{{version}}"
    routes = [
        Route(prefix or "/", server_metadata, methods=["GET"]),
        Route(f"{prefix}/health/live", live, methods=["GET"]),
        Route(f"{prefix}/health/ready", ready, methods=["GET"]),
    ]
    for path in (model, versioned):
        routes += [
            Route(path, model_metadata, methods=["GET"]),
            Route(f"{path}/ready", model_ready, methods=["GET"]),
            Route(f"{path}/infer", infer, methods=["POST"]),
        ]
    return Starlette(routes=routes)
