"""Open Inference Protocol (KServe v2) gRPC server: the v2 models of oip.py over grpc.aio.

    python -m rec_models.serving.grpc_server --host 127.0.0.1 --port 8001

The servicer and messages are tritonclient's generated `GRPCInferenceService` stubs, so Triton
and KServe clients work unchanged. It loads the same store models as the HTTP service
(adrec-encoder-<variant> picked by providers.select_runtime, adrec-scorer; sha256-verified) and
answers ServerLive at once, ServerReady / ModelReady once they are loaded and warmed up.

Encoder calls of concurrent requests (the `encoder` model, the runtime's) go through one
adaptive micro-batcher (batcher.py; --max-batch-size 64, --max-latency-ms 1000, as the HTTP
service's Encoder, from the same ADREC_BATCH_* variables); ModelStatistics reports
its batches by size (`batch_stats`), e.g. `tritonclient.grpc` `get_inference_statistics("encoder")`.

Message size: requests and responses are limited to --max-message-mb (4 MiB); an over-limit
request is answered INVALID_ARGUMENT naming its largest input. gRPC itself refuses messages of
more than twice the limit (RESOURCE_EXHAUSTED) before reading them into memory.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from rec_models.serving.batcher import MicroBatcher
from rec_models.serving.oip import (
    MAX_MESSAGE_BYTES,
    SERVER_NAME,
    InferenceProtocol,
    InputTensor,
    InvalidArgumentError,
    OipError,
    UnavailableError,
    check_request_size,
    max_message_bytes,
    model_versions,
    server_version,
)

logger = logging.getLogger("rec_models.serving.grpc_server")

EXTENSIONS = ["model_statistics"]
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip
ENCODE_TIMEOUT_S = 120.0
R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def oip_errors(handler: Handler[R]) -> Handler[R]:
    """OipError -> its status code and message; anything else is a bug: INTERNAL, logged."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await handler(self, request, context)
        except OipError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s failed", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{handler.__name__}: internal error")
        raise AssertionError("unreachable: abort() raises")

    return wrapped


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService over an InferenceProtocol (None while the models load)."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.protocol: InferenceProtocol | None = None
        self.batcher: MicroBatcher[str] | None = None
        self.max_message_bytes = max_message_bytes

    def _protocol(self) -> InferenceProtocol:
        if self.protocol is None:
            raise UnavailableError("the models are still loading; retry when ServerReady is true")
        return self.protocol

    @oip_errors
    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @oip_errors
    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.protocol is not None and self.protocol.ready)

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
            response.raw_output_contents.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        return response

    @oip_errors
    async def ModelStatistics(self, request: Any, context: Any) -> pb.ModelStatisticsResponse:
        """Batch statistics of the encoder's micro-batcher (the other models run unbatched)."""
        protocol = self._protocol()
        names = [request.name] if request.name else list(protocol.models)
        response = pb.ModelStatisticsResponse()
        for name in names:
            spec = protocol.model(name, request.version)
            stats = response.model_stats.add(name=spec.name, version=spec.version)
            if spec.name == "encoder" and self.batcher is not None:
                s = self.batcher.stats()
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


def encode_each(encoder: Any, texts: list[str]) -> np.ndarray | None:
    """(N, d) embeddings of `texts`, each encoded alone. Dynamic int8 scales activations per
    batch, so a text's embedding depends on its batch-mates; alone, the known users' profile
    embeddings (and so their vectors and scores) do not depend on how start-up was batched."""
    return np.concatenate([encoder.encode([t]) for t in texts]) if texts else None


async def load(servicer: InferenceServicer, max_batch_size: int, max_latency_ms: float) -> None:
    """Load the store models, put the encoder behind the micro-batcher, warm up, go ready."""
    from rec_models.serving import loading

    loop = asyncio.get_running_loop()
    encoder, _, source = await asyncio.to_thread(loading.load_encoder)
    batcher: MicroBatcher[str] = MicroBatcher(encoder.encode, max_batch_size, max_latency_ms)

    def encode(texts: list[str]) -> Any:  # the runtime calls it from worker threads
        future = asyncio.run_coroutine_threadsafe(batcher.submit(list(texts)), loop)
        return future.result(ENCODE_TIMEOUT_S)

    runtime = await asyncio.to_thread(loading.load_runtime, encode, source["tag"])
    profile_emb = await asyncio.to_thread(encode_each, encoder, runtime.profile_texts())
    await asyncio.to_thread(runtime.prepare, profile_emb)
    encoder_version, scorer_version = await asyncio.to_thread(
        model_versions, encoder.variant, source["tag"], runtime
    )
    servicer.batcher = batcher
    servicer.protocol = InferenceProtocol(
        runtime, batcher.submit, encoder_version, scorer_version, servicer.max_message_bytes
    )
    logger.info("models ready: encoder %s, scorer %s", encoder_version, scorer_version)


async def serve(args: argparse.Namespace) -> int:
    limit = int(args.max_message_mb * (1 << 20))
    options = [
        ("grpc.max_receive_message_length", 2 * limit),
        ("grpc.max_send_message_length", 2 * limit),
        ("grpc.so_reuseport", 0),  # a second server on a taken port fails instead of sharing it
    ]
    server = grpc.aio.server(options=options)
    servicer = InferenceServicer(limit)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    address = f"{args.host}:{args.port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError:
        logger.error("cannot listen on %s: the address is in use or invalid", address)
        return 1
    await server.start()
    logger.info("gRPC OIP server listening on %s (live; loading the models)", address)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    load_task = asyncio.create_task(load(servicer, args.max_batch_size, args.max_latency_ms))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([load_task, stopping], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if load_task.done() and load_task.exception() is not None:
        logger.error("loading the models failed", exc_info=load_task.exception())
        code = 1
    elif load_task.done():
        logger.info("gRPC OIP server ready on %s", address)
        await stopping
    logger.info("gRPC OIP server stopping")
    load_task.cancel()
    stopping.cancel()
    await server.stop(grace=2.0)
    if servicer.batcher is not None:
        await servicer.batcher.close()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--max-message-mb",
        type=float,
        default=max_message_bytes() / (1 << 20),
        help="request/response limit (env ADREC_MAX_MESSAGE_BYTES; default 4)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=int(os.environ.get("ADREC_BATCH_MAX_SIZE", "64")),
        help="texts per encoder batch (env ADREC_BATCH_MAX_SIZE, as the HTTP service)",
    )
    parser.add_argument(
        "--max-latency-ms",
        type=float,
        default=float(os.environ.get("ADREC_BATCH_MAX_LATENCY_MS", "1000")),
        help="queue wait after which a request is refused, UNAVAILABLE "
        "(env ADREC_BATCH_MAX_LATENCY_MS, as the HTTP service)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
