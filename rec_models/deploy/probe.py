"""Probing a running container: readiness, `/recommend` over HTTP, `recommender` over gRPC."""

from __future__ import annotations

import time

import httpx
import numpy as np

from .runner import Container
from .tools import ContainerError


def wait_ready(container: Container, timeout: float) -> float:
    """Seconds from now until /readyz answers 200; ContainerError if the container dies first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not container.running():
            raise ContainerError(f"the container exited before ready:\n{container.logs()[-4000:]}")
        try:
            if httpx.get(f"{container.url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ContainerError(f"not ready after {timeout} s:\n{container.logs()[-4000:]}")


def recommend_http(url: str, user_id: int, k: int) -> list[int]:
    resp = httpx.post(f"{url}/recommend", json={"user_id": user_id, "k": k}, timeout=60)
    if resp.status_code != 200:
        raise ContainerError(f"/recommend answered {resp.status_code}: {resp.text[:500]}")
    return [int(item["item_id"]) for item in resp.json()["items"]]


def recommend_grpc(port: int, user_id: int, k: int) -> list[int]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        user = grpcclient.InferInput("USER_ID", [1], "INT64")
        user.set_data_from_numpy(np.array([user_id], dtype=np.int64))
        top = grpcclient.InferInput("K", [1], "INT32")
        top.set_data_from_numpy(np.array([k], dtype=np.int32))
        result = client.infer("recommender", [user, top], client_timeout=60)
        return [int(i) for i in result.as_numpy("ITEM_IDS")[0]]
    finally:
        client.close()
