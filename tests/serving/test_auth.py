"""The optional API key: the check itself, its settings, and a real server started with a key
file, over real HTTP and gRPC clients."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from harness import Service, own_home, start_service, stop_service

from rec_models.serving.auth import ApiKey
from rec_models.serving.settings import ServingSettings

from .support import have_models

KEY = "k3y-for-the-tests-0123456789abcdef"
OTHER = "k3y-for-the-tests-0123456789abcdeX"  # same length, last character differs


def test_api_key_accepts_only_the_bearer_key():
    key = ApiKey(KEY)
    assert key.accepts(f"Bearer {KEY}") and key.accepts(f"bearer {KEY}".encode())
    for wrong in (None, "", KEY, f"Basic {KEY}", f"Bearer {OTHER}", f"Bearer {KEY}x", "Bearer"):
        assert not key.accepts(wrong), wrong
    assert KEY not in repr(key)


def test_settings_read_the_key_and_never_show_it(tmp_path):
    s = ServingSettings.from_env({"ADREC_API_KEY": KEY})
    assert s.api_key == KEY and KEY not in repr(s) and KEY not in str(s.public())
    assert s.public()["api_key_required"] is True
    assert ServingSettings.from_env({}).public()["api_key_required"] is False
    secret = tmp_path / "key"
    secret.write_text(KEY + "\n")
    assert ServingSettings.from_env({"ADREC_API_KEY_FILE": str(secret)}).api_key == KEY


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ADREC_API_KEY": "short"}, "ADREC_API_KEY: the key has 5 characters; use at least 16"),
        ({"ADREC_API_KEY": "with space 0123456789"}, "ADREC_API_KEY: the key must be printable"),
        ({"ADREC_API_KEY": KEY, "ADREC_API_KEY_FILE": "/x"}, "not both"),
        ({"ADREC_API_KEY_FILE": "/no/such/key"}, "ADREC_API_KEY_FILE: cannot read /no/such/key"),
    ],
)
def test_bad_keys_name_the_variable_not_the_key(env, message):
    with pytest.raises(ValueError) as err:
        ServingSettings.from_env(env)
    assert message in str(err.value) and KEY not in str(err.value)


def test_empty_key_file_is_refused(tmp_path):
    (tmp_path / "key").write_text("\n")
    with pytest.raises(ValueError, match=r"ADREC_API_KEY_FILE: .*key is empty"):
        ServingSettings.from_env({"ADREC_API_KEY_FILE": str(tmp_path / "key")})


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Service:
    """One worker with a key file and the access log on (so the test sees what it logs)."""
    if not have_models():
        pytest.skip("no adrec models in the store: run `make export` first")
    folder = tmp_path_factory.mktemp("keyed")
    (folder / "key").write_text(KEY + "\n")
    svc = start_service(
        folder / "serve.log",
        headers={"Authorization": f"Bearer {KEY}"},
        BENTOML_HOME=own_home(folder),
        ADREC_API_KEY_FILE=str(folder / "key"),
        ADREC_WORKERS="1",
        ADREC_ACCESS_LOG="1",
    )
    yield svc
    stop_service(svc)


def test_http_requires_the_key_but_health_and_docs_stay_open(keyed):
    good = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=keyed.url, timeout=60) as c:
        for path in ("/livez", "/readyz", "/v2/health/live", "/v2/health/ready", "/docs.json"):
            assert c.get(path).status_code == 200, path
        routes = [("POST", "/recommend", {"user_id": 1, "k": 3}), ("GET", "/info", None),
                  ("GET", "/metrics", None), ("GET", "/v2/models/encoder", None),
                  ("POST", "/embed", {"texts": ["a"]})]  # fmt: skip
        for method, path, body in routes:
            for headers in ({}, {"Authorization": f"Bearer {OTHER}"}, {"Authorization": KEY}):
                r = c.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                detail = r.json()["detail"][0]
                assert detail["loc"] == ["header", "authorization"]
                assert detail["type"] == "unauthorized" and KEY not in r.text
            assert c.request(method, path, json=body, headers=good).status_code == 200, path
        # A body over the size limit is refused 401 before it is read, then 413 with the key.
        big = b"x" * (2 << 20)
        assert c.post("/embed", content=big).status_code == 401
        assert c.post("/embed", content=big, headers=good).status_code == 413
        info = c.get("/info", headers=good).json()
    assert info["settings"]["api_key_required"] is True and KEY not in str(info)


def test_grpc_requires_the_key_but_health_stays_open(keyed):
    import tritonclient.grpc as tgrpc
    from tritonclient.utils import InferenceServerException

    client = tgrpc.InferenceServerClient(keyed.grpc)
    assert client.is_server_live() and client.is_server_ready()  # no key needed
    text = tgrpc.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"a space opera"], dtype=object))
    for headers in (None, {"authorization": f"Bearer {OTHER}"}, {"authorization": KEY}):
        with pytest.raises(InferenceServerException) as err:
            client.infer("encoder", [text], headers=headers)
        assert err.value.status() == "StatusCode.UNAUTHENTICATED", err.value
        assert KEY not in str(err.value)
        with pytest.raises(InferenceServerException) as err:
            client.get_model_metadata("encoder", headers=headers)
        assert err.value.status() == "StatusCode.UNAUTHENTICATED"
    good = {"authorization": f"Bearer {KEY}"}
    out = client.infer("encoder", [text], headers=good).as_numpy("EMBEDDING")
    assert out.shape[0] == 1 and abs(float(np.linalg.norm(out[0])) - 1) < 1e-3


def test_the_key_is_never_logged(keyed):
    log = keyed.log.read_text(errors="replace")
    assert "/recommend" in log  # the access log is on: requests are logged...
    assert KEY not in log  # ...but never the key
