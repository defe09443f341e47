"""Start-up loading for the services: pick the runtime, fetch the verified models from the store.

Environment: ADREC_DEVICE (auto | cpu | cuda), ADREC_ENCODER_VARIANT (fp32, opt, int8,
distilled_int8, fp16; empty = chosen by select_runtime), ADREC_THREADS (ONNX Runtime intra-op
threads; default all cores), ADREC_SCORER_TAG (default adrec-scorer:latest).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rec_models.serving.store import ENCODER_PREFIX, SCORER_NAME

logger = logging.getLogger(__name__)
SCORER_TAG = f"{SCORER_NAME}:latest"


def env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def env_threads() -> int | None:
    raw = env("ADREC_THREADS")
    if raw is None:
        return None
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"ADREC_THREADS={raw!r}: expected a positive integer") from None
    if threads < 1:
        raise ValueError(f"ADREC_THREADS={raw!r}: expected a positive integer")
    return threads


def published_variants() -> list[str]:
    """Encoder variants in the BentoML model store ('adrec-encoder-distilled-int8' ->
    'distilled_int8', the inverse of store.encoder_model_name)."""
    import bentoml

    names = {m.tag.name for m in bentoml.models.list()}
    return sorted(
        n[len(ENCODER_PREFIX) :].replace("-", "_") for n in names if n.startswith(ENCODER_PREFIX)
    )


def choose_runtime(device: str | None = None, variant: str | None = None) -> Any:
    """select_runtime over the published variants, from ADREC_DEVICE / ADREC_ENCODER_VARIANT."""
    from rec_models.serving.providers import select_runtime

    return select_runtime(
        device=device or env("ADREC_DEVICE"),
        variant=variant or env("ADREC_ENCODER_VARIANT"),
        published_variants=published_variants(),
    )


def store_folder(tag: str) -> tuple[Path, dict[str, Any]]:
    """(folder, metadata) of a store model, every file checked against metadata['sha256'];
    metadata['tag'] is the resolved tag (name:version)."""
    import bentoml

    from rec_models.serving.store import load_store_model

    path, metadata = load_store_model(tag)  # raises ValueError naming a file that fails sha256
    return Path(path), {**metadata, "tag": str(bentoml.models.get(tag).tag)}


def versions() -> dict[str, str]:
    """Versions of the serving stack, for /info."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("lm-adrec", "bentoml", "onnxruntime", "onnxruntime-gpu", "faiss-cpu", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def load_encoder(threads: int | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(OnnxEncoder, RuntimeChoice, source) for the variant and provider select_runtime picks."""
    from rec_models.serving.onnx_encoder import OnnxEncoder
    from rec_models.serving.store import encoder_model_name

    choice = choose_runtime()
    tag = f"{encoder_model_name(choice.variant)}:latest"
    folder, metadata = store_folder(tag)
    encoder = OnnxEncoder(
        folder, providers=list(choice.provider_list), threads=threads or env_threads()
    )
    source = {"tag": metadata["tag"], "sha256_verified": True}
    logger.info(
        "encoder: variant %s on %s (%s); %s", encoder.variant, encoder.provider, choice.reason, tag
    )
    return encoder, choice, source


def token_counter(tag: str) -> Callable[[str], int]:
    """Tokens of a text (special tokens included, no truncation) with the encoder's tokenizer."""
    from tokenizers import Tokenizer

    folder, _ = store_folder(tag)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return lambda text: len(tokenizer.encode(text).ids)


def load_runtime(encode: Callable[..., Any], encoder_tag: str, **kwargs: Any) -> Any:
    """The RecommenderRuntime over the store's scorer bundle (sha256-verified)."""
    from rec_models.serving.runtime import RecommenderRuntime

    tag = env("ADREC_SCORER_TAG") or SCORER_TAG
    count_tokens = token_counter(encoder_tag)
    kwargs.setdefault("threads", env_threads())
    runtime = RecommenderRuntime.from_store(encode, tag=tag, count_tokens=count_tokens, **kwargs)
    import bentoml

    runtime.source["tag"] = str(bentoml.models.get(tag).tag)  # name:version actually loaded
    return runtime
