"""The v2 models' specs: what each model takes and gives, its metadata, and the input checks.

Models (shapes: -1 = any size >= 1):
    encoder      TEXT BYTES [-1] (UTF-8)              -> EMBEDDING FP32 [-1, d] (L2-normalised)
    recommender  USER_ID INT64 [-1] | PROFILE BYTES [-1] (JSON cold profiles), K INT32 [1] opt
                          -> ITEM_IDS INT64 [-1, k], SCORES FP32 [-1, k], REQUEST_ID BYTES [-1],
                             ARM BYTES [-1]
    scorer       USER_ID INT64 [1], ITEM_IDS INT64 [-1] -> PROBABILITY FP32 [-1] (input order)
Metadata: platform "onnxruntime_onnx" (Triton's name for ONNX Runtime models), one version per
model, "<variant>-<model store version>". The checks here are the wire contract (name, datatype,
shape, size) and need no model; what the values mean is checked in protocol.py and the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from rec_models.serving.errors import InvalidArgumentError
from rec_models.serving.oip.codecs import InputTensor
from rec_models.serving.runtime import MAX_SCORE_ITEMS, MAX_TEXTS

SERVER_NAME = "lm-adrec"
PLATFORM = "onnxruntime_onnx"
DEFAULT_K = 10
MAX_USERS = 256  # USER_ID / PROFILE elements per recommender request


def server_version() -> str:
    try:
        return version("lm-adrec")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "0"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 = any size >= 1
    optional: bool = False
    max_size: int | None = None  # elements along the first dimension

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def check(self, t: InputTensor) -> None:
        """InvalidArgumentError naming the tensor when `t` has another datatype or shape."""
        if t.datatype != self.datatype:
            raise InvalidArgumentError(
                f"input '{t.name}': wrong datatype {t.datatype}, expected {self.datatype}"
            )
        shape = list(t.shape)
        ok = len(shape) == len(self.shape) and all(
            (w == -1 and h >= 1) or w == h for w, h in zip(self.shape, shape, strict=True)
        )
        if not ok:
            raise InvalidArgumentError(
                f"input '{t.name}': wrong shape {shape}, expected {list(self.shape)} "
                "(-1: any size >= 1)"
            )
        if self.max_size is not None and shape[0] > self.max_size:
            raise InvalidArgumentError(
                f"input '{t.name}': at most {self.max_size} elements, got {shape[0]}"
            )


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

    def decode_inputs(self, inputs: Sequence[InputTensor]) -> dict[str, np.ndarray]:
        """Check each input's name, datatype and shape against the spec, then decode its data."""
        expected = {t.name: t for t in self.inputs}
        given: dict[str, InputTensor] = {}
        for t in inputs:
            if t.name not in expected:
                raise InvalidArgumentError(
                    f"input '{t.name}': model '{self.name}' has no such input "
                    f"(inputs: {', '.join(expected)})"
                )
            if t.name in given:
                raise InvalidArgumentError(f"input '{t.name}': given more than once")
            given[t.name] = t
        arrays = {}
        for want in self.inputs:
            t = given.get(want.name)
            if t is None:
                if not want.optional:
                    raise InvalidArgumentError(
                        f"input '{want.name}': required by model '{self.name}', missing"
                    )
                continue
            want.check(t)
            arrays[t.name] = t.decode()
        return arrays


def model_specs(dim: int, encoder_version: str, scorer_version: str) -> dict[str, ModelSpec]:
    text = TensorSpec("TEXT", "BYTES", (-1,), max_size=MAX_TEXTS)
    embedding = TensorSpec("EMBEDDING", "FP32", (-1, dim))
    users = TensorSpec("USER_ID", "INT64", (-1,), optional=True, max_size=MAX_USERS)
    profiles = TensorSpec("PROFILE", "BYTES", (-1,), optional=True, max_size=MAX_USERS)
    k = TensorSpec("K", "INT32", (1,), optional=True)
    top_ids = TensorSpec("ITEM_IDS", "INT64", (-1, -1))
    top_scores = TensorSpec("SCORES", "FP32", (-1, -1))
    request_ids = TensorSpec("REQUEST_ID", "BYTES", (-1,))
    arms = TensorSpec("ARM", "BYTES", (-1,))
    user = TensorSpec("USER_ID", "INT64", (1,))
    item_ids = TensorSpec("ITEM_IDS", "INT64", (-1,), max_size=MAX_SCORE_ITEMS)
    probability = TensorSpec("PROBABILITY", "FP32", (-1,))
    specs = [
        ModelSpec("encoder", encoder_version, (text,), (embedding,)),
        ModelSpec(
            "recommender",
            scorer_version,
            (users, profiles, k),
            (top_ids, top_scores, request_ids, arms),
        ),
        ModelSpec("scorer", scorer_version, (user, item_ids), (probability,)),
    ]
    return {s.name: s for s in specs}
