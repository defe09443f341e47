"""The service's front door: the API key check, the body reader and admission, wrapped around
the ASGI app BentoML builds, so that they run before any of BentoML's own per-request layers.

    front.install(Recommender, [(ApiKeyMiddleware, {...}), (BodyReader, {...}),
                                (AdmissionMiddleware, {...})])        # outermost first

Why not `add_asgi_middleware`: BentoML 1.4 puts those middlewares inside its own
(`_bentoml_impl/server/app.py`, `ServiceAppFactory.middlewares`: Starlette's error handler, the
Prometheus request metrics, an OpenTelemetry span for the request and for each message sent,
the access log, the request timeout's extra task per request), so every request paid for them
before admission could refuse it, and again for the refusal. Under 4x overload that work, not
the encoder, filled the event loop: accepted requests waited in socket buffers behind the
requests about to be refused (README, "Reliability and security"). Here a refusal costs
uvicorn's parsing and one small response.

What that changes: requests refused here (401, 408, 413, 429) are not in BentoML's request
metrics or access log; admission counts its own refusals (`/info`, `admission`).

BentoML has no setting for it, so `install` wraps `Service.to_asgi` (what its worker calls to
get the app it gives uvicorn) for this one service; BentoML is pinned (constraints.txt), and
tests/reliability/test_overload.py checks the order on a real server.
"""

from __future__ import annotations

from typing import Any

Layer = tuple[Any, dict[str, Any]]  # (ASGI middleware class, its keyword options)


def wrap(app: Any, layers: list[Layer]) -> Any:
    """`app` inside `layers`, the first one outermost."""
    for cls, options in reversed(layers):
        app = cls(app, **options)
    return app


def install(service: Any, layers: list[Layer]) -> None:
    """Wrap the ASGI app BentoML builds for `service` (and no other) in `layers`."""
    kind = type(service)
    to_asgi = kind.to_asgi

    def front_to_asgi(self: Any, *args: Any, **kwargs: Any) -> Any:
        app = to_asgi(self, *args, **kwargs)
        return wrap(app, layers) if self is service else app

    front_to_asgi.__wrapped__ = to_asgi  # type: ignore[attr-defined]
    kind.to_asgi = front_to_asgi
