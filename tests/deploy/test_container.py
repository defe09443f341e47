"""The real image, built and run here: `make container-test` (opt-in: ADREC_CONTAINER_TEST=1).

Builds the image when missing (`make container` does it first), checks what is inside, starts it
with podman, waits for /readyz, calls /recommend over HTTP and `recommender` over gRPC, runs the
image's own HEALTHCHECK, and stops and removes the container whatever happens.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from rec_models.deploy.bento import default_version
from rec_models.deploy.image import build_image, image_id, image_size, image_tag
from rec_models.deploy.probe import recommend_grpc, recommend_http, wait_ready
from rec_models.deploy.runner import Container, site_packages, start
from rec_models.serving.store import load_store_model

pytestmark = pytest.mark.skipif(
    os.environ.get("ADREC_CONTAINER_TEST") != "1",
    reason="opt-in: `make container-test` (ADREC_CONTAINER_TEST=1) builds and runs the image",
)
READY_TIMEOUT_S = 900  # the container encodes the catalog and the known users at start-up
MAX_IMAGE_BYTES = 1_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image() -> str:
    tag = image_tag(default_version(), gpu=False)
    if image_id(tag) is None:
        build_image()
    return tag


@pytest.fixture(scope="module")
def known_user() -> int:
    from rec_models.serving.bundle import ScorerBundle

    folder, _ = load_store_model("adrec-scorer:latest")
    return int(ScorerBundle.load(folder).user_map.ids[0])


@pytest.fixture(scope="module")
def container(image: str):
    box = start(image, free_port(), free_port())
    try:
        seconds = wait_ready(box, READY_TIMEOUT_S)
        load = os.getloadavg()[0]
        print(f"\ncontainer start to ready: {seconds:.1f} s (load average {load:.2f})")
        yield box
    finally:
        box.stop()
    gone = subprocess.run(["podman", "container", "exists", box.cid]).returncode
    assert gone == 1, f"container {box.cid[:12]} still exists after stop"


def test_image_is_the_serving_set_as_a_non_root_user(image: str):
    names = set(site_packages(image))
    assert {"bentoml", "onnxruntime", "tokenizers", "numpy", "faiss"} <= names
    assert not {n for n in names if n.split("-")[0] in {"torch", "transformers", "optimum"}}
    assert "nvidia" not in names and not any(n.startswith("onnxruntime_gpu") for n in names)
    config = subprocess.run(
        ["podman", "image", "inspect", "--format",
         "{{.Config.User}}|{{json .Config.ExposedPorts}}|{{json .Config.Healthcheck.Test}}", image],
        capture_output=True, text=True, check=True,
    ).stdout.strip().split("|")  # fmt: skip
    assert config[0] == "bentoml"
    assert '"3000/tcp"' in config[1] and '"8001/tcp"' in config[1]
    assert "/readyz" in config[2]
    assert image_size(image) < MAX_IMAGE_BYTES


def test_http_recommend(container: Container, known_user: int):
    items = recommend_http(container.url, known_user, k=5)
    assert len(items) == 5 and len(set(items)) == 5
    assert container.healthcheck(), "the image's HEALTHCHECK failed on a ready container"


@pytest.mark.xfail(strict=True, reason="gRPC from the worker lands with the serving-core issue")
def test_grpc_recommender_gives_the_http_answer(container: Container, known_user: int):
    deadline = time.monotonic() + 30
    while True:  # readiness is HTTP's; give the gRPC port a moment
        try:
            items = recommend_grpc(container.grpc_port, known_user, k=5)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert items == recommend_http(container.url, known_user, k=5)
