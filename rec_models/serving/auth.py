"""The optional API key, on HTTP and on gRPC: one check, two transports.

    ADREC_API_KEY=...                 (or ADREC_API_KEY_FILE=/run/secrets/adrec-key)
    curl -H "Authorization: Bearer $ADREC_API_KEY" localhost:3000/recommend -d '{"user_id": 1}'
    tritonclient: client.infer(..., headers={"authorization": f"Bearer {key}"})

With a key set, every request carries `Authorization: Bearer <key>` (HTTP header, or gRPC
metadata `authorization`) or is answered 401 with `WWW-Authenticate: Bearer` (HTTP) or
UNAUTHENTICATED (gRPC), before its body is read. Open without a key: the health probes (an
orchestrator probes without credentials) and the API documentation (the schema is no secret).
The comparison is constant-time over sha256 digests, so neither the key's content nor its
length leaks through timing. Nothing here logs the presented or the expected key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from rec_models.serving.errors import UnauthenticatedError

# HTTP paths answered without a key: BentoML's probes, the v2 health routes, the docs.
OPEN_HTTP_PATHS = frozenset({
    "/livez", "/readyz", "/healthz", "/v2/health/live", "/v2/health/ready",
    "/", "/docs.json", "/docs",
})  # fmt: skip
OPEN_HTTP_PREFIXES = ("/static_content/",)  # the docs page's scripts and styles
# gRPC methods answered without a key: the OIP's server health.
OPEN_GRPC_METHODS = frozenset({
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
})  # fmt: skip


class ApiKey:
    """The expected key; `accepts(header)` checks an Authorization value ("Bearer <key>")."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("ApiKey: empty key")
        self._digest = hashlib.sha256(key.encode()).digest()

    def __repr__(self) -> str:  # never the key, even in a traceback's locals
        return "ApiKey(<hidden>)"

    def accepts(self, authorization: str | bytes | None) -> bool:
        if authorization is None:
            return False
        raw = authorization if isinstance(authorization, bytes) else authorization.encode()
        scheme, _, token = raw.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        presented = hashlib.sha256(token.strip()).digest()
        return hmac.compare_digest(presented, self._digest)


def reason(authorization: str | bytes | None) -> str:
    """Why a request was refused (without repeating what it sent)."""
    if authorization is None:
        return "this server requires an API key: send 'Authorization: Bearer <key>'"
    return "the API key is not valid"


def http_open(path: str) -> bool:
    return path in OPEN_HTTP_PATHS or path.startswith(OPEN_HTTP_PREFIXES)


class ApiKeyMiddleware:
    """ASGI middleware: 401 for an HTTP request without the key, except on the open paths."""

    def __init__(self, app: Any, api_key: ApiKey) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or http_open(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers") or [] if k == b"authorization"), None)
        if self.api_key.accepts(header):
            await self.app(scope, receive, send)
            return
        exc = UnauthenticatedError(reason(header))
        payload = json.dumps(exc.to_dict()).encode()
        await send({
            "type": "http.response.start",
            "status": exc.status,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                        (b"content-length", str(len(payload)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": payload})


def grpc_interceptor(api_key: ApiKey) -> Any:
    """A grpc.aio server interceptor: UNAUTHENTICATED for a call without the key, except the
    open health methods. The refusal happens before the request message is handled."""
    import grpc

    def refuse(handler: Any, message: str) -> Any:
        """A handler of the method's own kind (unary or streaming) that only aborts."""

        async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        if handler.request_streaming or handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(abort)
        return grpc.unary_unary_rpc_method_handler(abort)

    class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = await continuation(details)
            if handler is None or details.method in OPEN_GRPC_METHODS:
                return handler  # None: an unknown method, UNIMPLEMENTED as without a key
            header = next(
                (v for k, v in details.invocation_metadata or () if k == "authorization"), None
            )
            if api_key.accepts(header):
                return handler
            return refuse(handler, str(UnauthenticatedError(reason(header))))

    return ApiKeyInterceptor()


def http_layers(settings: Any) -> list[tuple[Any, dict[str, Any]]]:
    """The HTTP key check as ASGI layers for these settings (rec_models.serving.front): one
    when a key is set, none otherwise."""
    return [(ApiKeyMiddleware, {"api_key": ApiKey(settings.api_key)})] if settings.api_key else []


def grpc_interceptors(settings: Any) -> list[Any]:
    """The gRPC server's interceptors for these settings: the key check, when a key is set."""
    return [grpc_interceptor(ApiKey(settings.api_key))] if settings.api_key else []
