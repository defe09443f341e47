"""schemathesis (a third-party OpenAPI fuzzer) against the session's real server, over the
service's own OpenAPI document: the fast subset of `make fuzz` (benchmarks/fuzz.py)."""

from __future__ import annotations

import httpx
from harness import Service

from benchmarks.fuzz import run_schemathesis

MIN_CASES = 200


def test_the_document_covers_every_route_and_error(service: Service):
    spec = httpx.get(f"{service.url}/docs.json", timeout=30).json()
    paths = spec["paths"]
    for path in ("/recommend", "/score", "/similar_items", "/embed", "/info", "/v2",
                 "/v2/models/{name}/infer", "/v2/health/ready"):  # fmt: skip
        assert path in paths, path
    assert not [name for name in spec["components"]["schemas"] if "IODescriptor" in name]
    responses = paths["/recommend"]["post"]["responses"]
    assert {"200", "400", "404", "413", "415", "503"} <= set(responses)
    assert responses["503"]["headers"]["Retry-After"]
    detail = spec["components"]["schemas"]["Error"]["properties"]["detail"]
    assert detail["type"] == "array"  # as the server answers, not BentoML's string


def test_schemathesis_finds_nothing(service: Service, tmp_path):
    run = run_schemathesis(service.url, tmp_path, max_examples=25, phases="examples,fuzzing")
    cases = run.get("test_cases", {})
    assert run.get("operations", {}).get("tested", 0) >= 18, run["output_tail"]
    assert cases.get("generated", 0) >= MIN_CASES, run["output_tail"]
    assert run["failures"] == [], run["output_tail"]
    assert run["exit_code"] == 0, run["output_tail"]
    # The server kept serving.
    assert httpx.get(f"{service.url}/readyz", timeout=10).status_code == 200
