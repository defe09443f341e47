"""Open Inference Protocol (KServe v2) models over the serving runtime, for gRPC and v2 HTTP alike.

The transports (grpc_server.py, v2_http.py) only turn wire tensors into numpy arrays and back;
everything else happens here, once: look the model up, check each input's name, datatype and
shape, call `RecommenderRuntime` (the same code path as the native HTTP API) or, for `encoder`,
the batched encoder the native /embed uses (awaited on the event loop: no thread hops), and shape
the outputs. Errors are `OipError`s naming the tensor and the reason, mapped by the transports to
INVALID_ARGUMENT / 400, NOT_FOUND / 404 or UNAVAILABLE / 503.

Models (shapes: -1 = any size >= 1):
    encoder      TEXT BYTES [-1] (UTF-8)             -> EMBEDDING FP32 [-1, d] (L2-normalised)
    recommender  USER_ID INT64 [-1], K INT32 [1] opt -> ITEM_IDS INT64 [-1, k], SCORES FP32 [-1, k]
    scorer       USER_ID INT64 [1], ITEM_IDS INT64 [-1] -> PROBABILITY FP32 [-1] (input order)
SCORES are the hybrid scores of /recommend (best first); PROBABILITY the calibrated click
probabilities of /score. A user with fewer than k unseen items gets rows padded with ITEM_ID -1
and SCORE NaN. Metadata: platform "onnxruntime_onnx" (Triton's name for ONNX Runtime models),
one version per model, "<variant>-<model store version>" (e.g. "int8-3xk2..." for the encoder,
"hybrid-..." for recommender and scorer, which share the scorer bundle).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from rec_models.serving.batcher import BatcherOverloadedError
from rec_models.serving.errors import BadRequestError, ServingError
from rec_models.serving.runtime import MAX_SCORE_ITEMS, MAX_TEXT_CHARS, MAX_TEXTS

logger = logging.getLogger(__name__)

DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}  # fmt: skip
SERVER_NAME = "lm-adrec"
PLATFORM = "onnxruntime_onnx"
DEFAULT_K = 10
MAX_USERS = 256  # USER_ID elements per recommender request
MAX_MESSAGE_BYTES = 4 << 20  # per request and per response, gRPC and v2 HTTP


def server_version() -> str:
    try:
        return version("lm-adrec")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "0"


class OipError(Exception):
    grpc_code = "INVALID_ARGUMENT"  # a grpc.StatusCode name
    http_status = 400


class InvalidArgumentError(OipError):
    pass


class NotFoundError(OipError):
    grpc_code, http_status = "NOT_FOUND", 404


class UnavailableError(OipError):
    grpc_code, http_status = "UNAVAILABLE", 503


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 = any size >= 1
    optional: bool = False
    max_size: int | None = None  # elements along the first dimension

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str = PLATFORM

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata response ($metadata_model_response)."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [t.metadata() for t in self.inputs],
            "outputs": [t.metadata() for t in self.outputs],
        }


def model_specs(dim: int, encoder_version: str, scorer_version: str) -> dict[str, ModelSpec]:
    text = TensorSpec("TEXT", "BYTES", (-1,), max_size=MAX_TEXTS)
    embedding = TensorSpec("EMBEDDING", "FP32", (-1, dim))
    users = TensorSpec("USER_ID", "INT64", (-1,), max_size=MAX_USERS)
    k = TensorSpec("K", "INT32", (1,), optional=True)
    top_ids, top_scores = (
        TensorSpec("ITEM_IDS", "INT64", (-1, -1)),
        TensorSpec("SCORES", "FP32", (-1, -1)),
    )
    user = TensorSpec("USER_ID", "INT64", (1,))
    item_ids = TensorSpec("ITEM_IDS", "INT64", (-1,), max_size=MAX_SCORE_ITEMS)
    probability = TensorSpec("PROBABILITY", "FP32", (-1,))
    specs = [
        ModelSpec("encoder", encoder_version, (text,), (embedding,)),
        ModelSpec("recommender", scorer_version, (users, k), (top_ids, top_scores)),
        ModelSpec("scorer", scorer_version, (user, item_ids), (probability,)),
    ]
    return {s.name: s for s in specs}


def max_message_bytes() -> int:
    """ADREC_MAX_MESSAGE_BYTES, default 4 MiB: the request and response limit of both transports."""
    raw = os.environ.get("ADREC_MAX_MESSAGE_BYTES", "").strip()
    try:
        value = int(raw) if raw else MAX_MESSAGE_BYTES
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"ADREC_MAX_MESSAGE_BYTES={raw!r}: expected a positive integer")
    return value


def tag_version(tag: str) -> str:
    """The version of a model store tag, resolving ':latest' through the store ('unknown' when
    the store cannot say: metadata should not fail inference)."""
    name, _, ver = tag.partition(":")
    if ver and ver != "latest":
        return ver
    try:
        import bentoml

        return str(bentoml.models.get(f"{name}:latest").tag.version)
    except Exception:
        logger.warning("cannot resolve the version of model store tag %r", tag, exc_info=True)
        return "unknown"


def model_versions(encoder_variant: str, encoder_tag: str, runtime: Any) -> tuple[str, str]:
    """("<variant>-<store version>" of the encoder, the same of the scorer bundle)."""
    scorer_tag = str(runtime.source.get("tag", "adrec-scorer:latest"))
    scorer_variant = str(runtime.bundle.config.get("model", "hybrid"))
    return (
        f"{encoder_variant}-{tag_version(encoder_tag)}",
        f"{scorer_variant}-{tag_version(scorer_tag)}",
    )


# -- wire codecs shared by the transports -----------------------------------------------------
def decode_bytes(buf: bytes, tensor: str) -> list[bytes]:
    """BYTES elements, each a 4-byte little-endian length then the bytes (raw / binary data)."""
    out, offset, view = [], 0, memoryview(buf)
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidArgumentError(
                f"input '{tensor}': truncated BYTES length prefix at byte {offset}"
            )
        (size,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + size > len(view):
            raise InvalidArgumentError(
                f"input '{tensor}': BYTES element {len(out)} overruns the data"
            )
        out.append(bytes(view[offset : offset + size]))
        offset += size
    return out


def encode_bytes(values: np.ndarray) -> bytes:
    parts = []
    for v in values.reshape(-1):
        b = v if isinstance(v, bytes) else str(v).encode()
        parts += [struct.pack("<I", len(b)), b]
    return b"".join(parts)


def np_dtype(datatype: str, tensor: str) -> Any:
    if datatype not in DATATYPES:
        raise InvalidArgumentError(
            f"input '{tensor}': unknown datatype '{datatype}' (one of {', '.join(DATATYPES)})"
        )
    return DATATYPES[datatype]


def _objects(values: Sequence[bytes]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)  # (n,) of bytes; np.asarray would make a 2-D array
    out[:] = values
    return out


@dataclass
class InputTensor:
    """One input as it came over the wire: raw little-endian bytes or a list of values."""

    name: str
    datatype: str
    shape: list[int]
    raw: bytes | None = None  # gRPC raw_input_contents, HTTP binary data
    data: Sequence[Any] | None = None  # JSON "data", gRPC typed contents (flat or nested)

    @property
    def nbytes(self) -> int:
        return len(self.raw) if self.raw is not None else len(str(self.data or ""))

    def decode(self) -> np.ndarray:
        """The tensor, shaped (BYTES: an object array of bytes); errors name the tensor."""
        dtype = np_dtype(self.datatype, self.name)
        flat = self._from_raw(dtype, self.raw) if self.raw is not None else self._from_list(dtype)
        if any(d < 0 for d in self.shape):
            raise InvalidArgumentError(f"input '{self.name}': negative dimension in {self.shape}")
        expected = int(np.prod(self.shape, dtype=np.int64))
        if flat.size != expected:
            raise InvalidArgumentError(
                f"input '{self.name}': shape {self.shape} needs {expected} elements, "
                f"the data holds {flat.size}"
            )
        return flat.reshape(self.shape)

    def _from_raw(self, dtype: Any, raw: bytes) -> np.ndarray:
        if dtype is np.object_:
            return _objects(decode_bytes(raw, self.name))
        if len(raw) % np.dtype(dtype).itemsize:
            raise InvalidArgumentError(
                f"input '{self.name}': {len(raw)} bytes is not a whole number of {self.datatype}"
            )
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)

    def _from_list(self, dtype: Any) -> np.ndarray:
        name, datatype = self.name, self.datatype
        ragged = InvalidArgumentError(f"input '{name}': the data is not a rectangular array")
        try:
            flat = np.asarray(self.data or [], dtype=object).reshape(-1)
        except ValueError:
            raise ragged from None
        if dtype is np.object_:
            kinds: tuple[type, ...] = (str, bytes)
        else:
            kinds = (
                (bool,) if datatype == "BOOL" else (int,) if datatype[0] in "IU" else (int, float)
            )
        for v in flat:
            if isinstance(v, list):  # numpy keeps the lists of ragged nesting as objects
                raise ragged
            if type(v) not in kinds:
                raise InvalidArgumentError(f"input '{name}': {v!r} is not a valid {datatype} value")
        if dtype is np.object_:
            return _objects([v.encode() if isinstance(v, str) else v for v in flat])
        try:
            return flat.astype(dtype)
        except OverflowError:
            raise InvalidArgumentError(
                f"input '{name}': a value is out of the {datatype} range"
            ) from None


def check_request_size(sizes: Mapping[str, int], total: int, limit: int) -> None:
    """An over-limit request names its largest input tensor."""
    if total > limit:
        name = max(sizes, key=lambda k: sizes[k]) if sizes else "?"
        raise InvalidArgumentError(
            f"input '{name}': request of {total} bytes is over the {limit}-byte message limit "
            f"(the input '{name}' holds {sizes.get(name, 0)} bytes)"
        )


# -- the protocol over the runtime ------------------------------------------------------------
FIELDS = {"user_id": "USER_ID", "item_ids": "ITEM_IDS", "k": "K", "texts": "TEXT"}


Embed = Callable[[list[str]], Awaitable[np.ndarray]]  # texts -> (N, d) float32, batched


class InferenceProtocol:
    """Model metadata, readiness and inference of the v2 models over one `RecommenderRuntime`
    and its batched encoder `embed` (gRPC: the MicroBatcher; HTTP: the Encoder service)."""

    def __init__(
        self,
        runtime: Any,
        embed: Embed,
        encoder_version: str,
        scorer_version: str,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        threads: int = 64,
    ) -> None:
        self.runtime, self.embed = runtime, embed
        dim = int(runtime.bundle.config["embedding_dim"])
        self.models = model_specs(dim, encoder_version, scorer_version)
        self.max_message_bytes = max_message_bytes
        # Runtime calls block (ONNX Runtime, numpy; a cold profile waits on the encoder): threads.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="oip")
        self._run: dict[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] = {
            "recommender": self._recommender, "scorer": self._scorer,
        }  # fmt: skip

    @property
    def ready(self) -> bool:
        return bool(self.runtime.ready)

    def model(self, name: str, version: str = "") -> ModelSpec:
        spec = self.models.get(name)
        if spec is None:
            raise NotFoundError(f"model '{name}' not found (models: {', '.join(self.models)})")
        if version and version != spec.version:
            raise NotFoundError(
                f"model '{name}' has no version '{version}' (versions: {spec.version})"
            )
        return spec

    async def infer(
        self, name: str, version: str, inputs: Sequence[InputTensor], outputs: Sequence[str] = ()
    ) -> tuple[ModelSpec, dict[str, np.ndarray]]:
        """Run `name` on `inputs`; returns the spec and the requested outputs (all when none)."""
        spec = self.model(name, version)
        known = [t.name for t in spec.outputs]
        for out in outputs:
            if out not in known:
                raise InvalidArgumentError(
                    f"output '{out}': model '{name}' has no such output ({', '.join(known)})"
                )
        if not self.ready:
            raise UnavailableError(f"model '{name}' is not ready: the models are still loading")

        def run() -> dict[str, np.ndarray]:
            return self._run[name](self.decode_inputs(spec, inputs))

        try:
            if name == "encoder":
                result = await self._encoder(self.decode_inputs(spec, inputs))
            else:
                result = await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except ServingError as exc:
            raise _from_serving(exc) from None
        except BatcherOverloadedError as exc:
            raise UnavailableError(f"model '{name}': {exc}") from None
        result = {k: v for k, v in result.items() if not outputs or k in outputs}
        size = sum(v.nbytes for v in result.values())
        if size > self.max_message_bytes:
            biggest = max(result, key=lambda k: result[k].nbytes)
            raise InvalidArgumentError(
                f"output '{biggest}': the response would be {size} bytes, over the "
                f"{self.max_message_bytes}-byte message limit; send fewer elements"
            )
        return spec, result

    @staticmethod
    def decode_inputs(spec: ModelSpec, inputs: Sequence[InputTensor]) -> dict[str, np.ndarray]:
        """Check each input's name, datatype and shape against `spec`, then decode its data."""
        expected = {t.name: t for t in spec.inputs}
        given: dict[str, InputTensor] = {}
        for t in inputs:
            if t.name not in expected:
                raise InvalidArgumentError(
                    f"input '{t.name}': model '{spec.name}' has no such input "
                    f"(inputs: {', '.join(expected)})"
                )
            if t.name in given:
                raise InvalidArgumentError(f"input '{t.name}': given more than once")
            given[t.name] = t
        arrays = {}
        for want in spec.inputs:
            t = given.get(want.name)
            if t is None:
                if not want.optional:
                    raise InvalidArgumentError(
                        f"input '{want.name}': required by model '{spec.name}', missing"
                    )
                continue
            if t.datatype != want.datatype:
                raise InvalidArgumentError(
                    f"input '{t.name}': wrong datatype {t.datatype}, expected {want.datatype}"
                )
            shape = list(t.shape)
            ok = len(shape) == len(want.shape) and all(
                (w == -1 and h >= 1) or w == h for w, h in zip(want.shape, shape, strict=True)
            )
            if not ok:
                raise InvalidArgumentError(
                    f"input '{t.name}': wrong shape {shape}, expected {list(want.shape)} "
                    "(-1: any size >= 1)"
                )
            if want.max_size is not None and shape[0] > want.max_size:
                raise InvalidArgumentError(
                    f"input '{t.name}': at most {want.max_size} elements, got {shape[0]}"
                )
            arrays[t.name] = t.decode()
        return arrays

    # -- models: the encoder awaits its batch on the loop, the others run in worker threads ---
    async def _encoder(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """TEXT -> EMBEDDING with the rules of RecommenderRuntime.embed, awaiting the batch."""
        texts = []
        for i, raw in enumerate(inputs["TEXT"]):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgumentError(f"input 'TEXT': element {i} is not UTF-8 text") from None
            if not text.strip():
                raise BadRequestError(("texts", i), "must be a non-empty string")
            if len(text) > MAX_TEXT_CHARS:
                raise BadRequestError(
                    ("texts", i), f"at most {MAX_TEXT_CHARS} characters, got {len(text)}"
                )
            texts.append(text)
        try:
            embeddings = await self.embed(texts)
        except Exception as exc:  # the Encoder service's own 503 (overloaded) stays a 503
            if getattr(exc, "error_code", None) == 503:
                raise UnavailableError(f"model 'encoder': {exc}") from None
            raise
        return {"EMBEDDING": np.asarray(embeddings, dtype=np.float32)}

    def _recommender(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        users = inputs["USER_ID"]
        k = int(inputs["K"][0]) if "K" in inputs else DEFAULT_K
        results = []
        for row, user in enumerate(users.tolist()):
            try:
                results.append(self.runtime.recommend(user, k=k))  # checks k before we allocate
            except ServingError as exc:
                raise _from_serving(exc, element=row if len(users) > 1 else None) from None
        ids = np.full((len(users), k), -1, dtype=np.int64)  # (N, k), padded with -1 / NaN
        scores = np.full((len(users), k), np.nan, dtype=np.float32)
        for row, recs in enumerate(results):
            ids[row, : len(recs)] = [r.item_id for r in recs]
            scores[row, : len(recs)] = [r.score for r in recs]
        return {"ITEM_IDS": ids, "SCORES": scores}

    def _scorer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        user, items = int(inputs["USER_ID"][0]), inputs["ITEM_IDS"].tolist()
        return {"PROBABILITY": np.asarray(self.runtime.score(user, items), dtype=np.float32)}


def _from_serving(exc: ServingError, element: int | None = None) -> OipError:
    """A runtime error as an OIP error naming the input tensor (and the element, when known)."""
    if exc.status == 503:  # still loading, or the encoder shed the request
        return UnavailableError(str(exc))
    loc, msg = exc.errors[0]
    tensor = FIELDS.get(str(loc[0]), str(loc[0])) if loc else ""
    index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else element
    where = f"element {index}: " if index is not None else ""
    cls = NotFoundError if exc.status == 404 else InvalidArgumentError
    return cls(f"input '{tensor}': {where}{msg}" if tensor else msg)
