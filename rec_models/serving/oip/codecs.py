"""Wire codecs of the Open Inference Protocol: tensors as they travel <-> numpy arrays.

Both transports hand the protocol `InputTensor`s (raw little-endian bytes from gRPC
`raw_input_contents` or the HTTP binary extension, or value lists from JSON `data` / gRPC typed
contents) and send back numpy arrays encoded here. Every error is an `InvalidArgumentError`
naming the tensor.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rec_models.serving.errors import InvalidArgumentError

DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}  # fmt: skip
# The typed `contents` field of a gRPC InferInputTensor for each datatype.
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


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


def raw_bytes(arr: np.ndarray, datatype: str) -> bytes:
    """An output tensor's raw little-endian bytes (BYTES: length-prefixed elements)."""
    if datatype == "BYTES":
        return encode_bytes(arr)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


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
