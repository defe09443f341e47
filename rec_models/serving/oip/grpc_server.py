"""Open Inference Protocol (KServe v2) over gRPC, served from inside each BentoML worker.

`await start(core, host, port, max_message_bytes)` opens a grpc.aio server on the worker's own
event loop (the service's on_startup hook), over the same serving core as the HTTP routes: one
process, one copy of the models, one answer whatever the transport. Several workers share the
port through SO_REUSEPORT (the kernel spreads connections over them); `await server.stop()`
(the on_shutdown hook) closes it with the worker.

The servicer and messages are tritonclient's generated `GRPCInferenceService` stubs, so Triton
and KServe clients work unchanged. ServerLive answers at once, ServerReady / ModelReady once the
core has loaded and warmed up. ModelStatistics reports the encoder micro-batcher's batches by
size (`batch_stats`). Messages are limited to `max_message_bytes` (an over-limit request is
answered INVALID_ARGUMENT naming its largest input); gRPC itself refuses messages of more than
twice the limit (RESOURCE_EXHAUSTED) before reading them into memory.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from rec_models.serving.errors import InvalidArgumentError, ServingError, UnavailableError
from rec_models.serving.oip.codecs import CONTENTS_FIELD, InputTensor, check_request_size, raw_bytes
from rec_models.serving.oip.protocol import InferenceProtocol
from rec_models.serving.oip.specs import SERVER_NAME, server_version

logger = logging.getLogger("bentoml.adrec.grpc")

EXTENSIONS = ["model_statistics"]
# Calls that hold an admission slot (rec_models/serving/admission.py); metadata and health
# calls answer at once, even under overload.
ADMITTED_METHODS = frozenset({"/inference.GRPCInferenceService/ModelInfer"})
R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def oip_errors(handler: Handler[R]) -> Handler[R]:
    """ServingError -> its gRPC status code and message, in this one place; anything else is a
    bug: INTERNAL, logged."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await handler(self, request, context)
        except ServingError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s failed", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{handler.__name__}: internal error")
        raise AssertionError("unreachable: abort() raises")

    return wrapped


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService over the core's InferenceProtocol (None while the core loads)."""

    def __init__(self, core: Any, max_message_bytes: int) -> None:
        self.core = core
        self.max_message_bytes = max_message_bytes

    def _protocol(self) -> InferenceProtocol:
        protocol = self.core.protocol
        if protocol is None:
            raise UnavailableError("the models are still loading; retry when ServerReady is true")
        return protocol

    @oip_errors
    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @oip_errors
    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        protocol = self.core.protocol
        return pb.ServerReadyResponse(ready=protocol is not None and protocol.ready)

    @oip_errors
    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=server_version(), extensions=EXTENSIONS
        )

    @oip_errors
    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        protocol = self._protocol()
        protocol.model(request.name, request.version)
        return pb.ModelReadyResponse(ready=protocol.ready)

    @oip_errors
    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        meta = self._protocol().model(request.name, request.version).metadata()
        tensors = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensors(**t) for t in meta["inputs"]],
            outputs=[tensors(**t) for t in meta["outputs"]],
        )

    @oip_errors
    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        protocol = self._protocol()
        protocol.model(request.model_name, request.model_version)  # NOT_FOUND before size checks
        inputs = request_inputs(request)
        sizes = {t.name: t.nbytes for t in inputs}
        check_request_size(sizes, request.ByteSize(), self.max_message_bytes)
        wanted = [o.name for o in request.outputs]
        spec, outputs = await protocol.infer(
            request.model_name, request.model_version, inputs, wanted
        )
        response = pb.ModelInferResponse(
            model_name=spec.name, model_version=spec.version, id=request.id
        )
        for name in wanted or [t.name for t in spec.outputs]:
            arr = outputs[name]
            datatype = next(t.datatype for t in spec.outputs if t.name == name)
            response.outputs.add(name=name, datatype=datatype, shape=list(arr.shape))
            response.raw_output_contents.append(raw_bytes(arr, datatype))
        return response

    @oip_errors
    async def ModelStatistics(self, request: Any, context: Any) -> pb.ModelStatisticsResponse:
        """Batch statistics of this worker's encoder micro-batcher (the others run unbatched)."""
        protocol = self._protocol()
        names = [request.name] if request.name else list(protocol.models)
        response = pb.ModelStatisticsResponse()
        for name in names:
            spec = protocol.model(name, request.version)
            stats = response.model_stats.add(name=spec.name, version=spec.version)
            if spec.name == "encoder" and self.core.batcher is not None:
                s = self.core.batcher.stats()
                stats.inference_count, stats.execution_count = s.items, s.batches
                stats.last_inference = s.last_ms
                for size in sorted(s.by_size):
                    batch = stats.batch_stats.add(batch_size=size)
                    batch.compute_infer.count = s.by_size[size]
                    batch.compute_infer.ns = s.ns_by_size[size]
        return response


def request_inputs(request: Any) -> list[InputTensor]:
    """The request's inputs: all in raw_input_contents, or each in its typed contents field."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgumentError(
            f"raw_input_contents holds {len(raw)} tensors for {len(request.inputs)} inputs: "
            "give every input there, or none"
        )
    inputs = []
    for i, t in enumerate(request.inputs):
        if raw:
            inputs.append(InputTensor(t.name, t.datatype, list(t.shape), raw=raw[i]))
            continue
        field = CONTENTS_FIELD.get(t.datatype)
        data = list(getattr(t.contents, field)) if field else []
        inputs.append(InputTensor(t.name, t.datatype, list(t.shape), data=data))
    return inputs


async def start(
    core: Any, host: str, port: int, max_message_bytes: int, interceptors: Sequence[Any] = ()
) -> grpc.aio.Server:
    """A started grpc.aio server on `host:port` over `core`, on the running event loop;
    `interceptors` run before every call (the API key check)."""
    options = [
        ("grpc.max_receive_message_length", 2 * max_message_bytes),
        ("grpc.max_send_message_length", 2 * max_message_bytes),
        ("grpc.so_reuseport", 1),  # every worker of this service listens on the one port
    ]
    server = grpc.aio.server(options=options, interceptors=list(interceptors))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(core, max_message_bytes), server
    )
    address = f"{host}:{port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"gRPC: cannot listen on {address} (in use or invalid)") from exc
    await server.start()
    logger.info("gRPC (Open Inference Protocol) listening on %s", address)
    return server
