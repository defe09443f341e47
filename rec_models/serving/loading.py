"""Start-up loading for the serving core: pick the runtime, fetch the verified models from the
store. Every choice comes from the `ServingSettings` passed in (device, encoder variant, scorer
tag, threads, ANN options); nothing here reads the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rec_models.serving.settings import ServingSettings
from rec_models.serving.store import ENCODER_PREFIX

logger = logging.getLogger(__name__)


def published_variants() -> list[str]:
    """Encoder variants in the BentoML model store ('adrec-encoder-distilled-int8' ->
    'distilled_int8', the inverse of store.encoder_model_name)."""
    import bentoml

    names = {m.tag.name for m in bentoml.models.list()}
    return sorted(
        n[len(ENCODER_PREFIX) :].replace("-", "_") for n in names if n.startswith(ENCODER_PREFIX)
    )


def choose_runtime(settings: ServingSettings) -> Any:
    """select_runtime over the published variants, for the settings' device and variant."""
    from rec_models.serving.providers import select_runtime

    return select_runtime(
        device=settings.device,
        variant=settings.encoder_variant or None,
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


def load_encoder(settings: ServingSettings) -> tuple[Any, Any, dict[str, Any]]:
    """(OnnxEncoder, RuntimeChoice, source) for the variant and provider select_runtime picks."""
    from rec_models.serving.onnx_encoder import OnnxEncoder
    from rec_models.serving.store import encoder_model_name

    choice = choose_runtime(settings)
    tag = f"{encoder_model_name(choice.variant)}:latest"
    folder, metadata = store_folder(tag)
    encoder = OnnxEncoder(
        folder,
        providers=list(choice.provider_list),
        threads=settings.intra_op_threads,
        spinning=settings.thread_spinning,
        batch_size=settings.batch_max_size,
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


def load_runtime(encode: Callable[..., Any], encoder_tag: str, settings: ServingSettings) -> Any:
    """The RecommenderRuntime over the store's scorer bundle (sha256-verified)."""
    from rec_models.serving.runtime import RecommenderRuntime

    tag = settings.scorer_tag
    ann = {
        "ann_threshold": settings.ann_threshold,
        "method": settings.ann_kind,
        "nprobe": settings.ann_nprobe,
        "ef_search": settings.ann_ef_search,
    }
    runtime = RecommenderRuntime.from_store(
        encode,
        tag=tag,
        count_tokens=token_counter(encoder_tag),
        threads=settings.intra_op_threads,
        ann=ann,
    )
    import bentoml

    runtime.source["tag"] = str(bentoml.models.get(tag).tag)  # name:version actually loaded
    return runtime


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
    """The v2 model versions: "<variant>-<store version>" of the encoder and of the scorer
    bundle (e.g. "int8-3xk2...", "hybrid-...")."""
    scorer_tag = str(runtime.source.get("tag", "adrec-scorer:latest"))
    scorer_variant = str(runtime.bundle.config.get("model", "hybrid"))
    return (
        f"{encoder_variant}-{tag_version(encoder_tag)}",
        f"{scorer_variant}-{tag_version(scorer_tag)}",
    )
