"""`make fuzz`: schemathesis, a third-party OpenAPI fuzzer, against the service's own document.

    python -m benchmarks.fuzz [--max-examples 60] [--seed 1]

Starts `bentoml serve` as `make serve` does (benchmarks/server.py), loads the service's OpenAPI
document from GET /docs.json, and runs `schemathesis run` with every check that applies to a
stateless API: no 5xx, status codes, content types, headers and bodies as documented, schema-
violating requests refused, a malformed Content-Type refused, unsupported methods answered 405.
All phases run (examples, coverage, fuzzing, stateful). The summary lands in
benchmarks/results/reliability.json (key "http_fuzz") and reliability.md; the full JSON report
of schemathesis in .cache/benchmarks/. `run_schemathesis` is what the fast subset of `make test`
(tests/reliability/test_http_fuzz.py) calls too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import RESULTS, ROOT, load_average

# Checks of a stateful CRUD API (resources created then deleted, object-level authorization)
# do not apply to a read-only inference service; positive_data_acceptance would call a 404
# for an unknown id (which the document lists) a failure.
EXCLUDED_CHECKS = (
    "positive_data_acceptance,ignored_auth,use_after_free,"
    "ensure_resource_availability,object_level_authorization"
)
ALL_PHASES = "examples,coverage,fuzzing,stateful"


def run_schemathesis(
    url: str,
    report_dir: Path,
    max_examples: int,
    phases: str = ALL_PHASES,
    seed: int = 1,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the schemathesis CLI against `url` (the service's base URL); its JSON run report
    (test_cases, failures, errors, ...) plus the command line and the run time."""
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "schemathesis.json"
    report.unlink(missing_ok=True)
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/docs.json",
        "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS, "--phases", phases,
        "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "2",
        "--generation-database", "none", "--no-color", "--output-truncate", "true",
        "--request-timeout", "60", "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        cmd += ["--header", f"{name}: {value}"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    out = json.loads(report.read_text()) if report.is_file() else {}
    out["exit_code"] = proc.returncode
    out["wall_s"] = round(time.monotonic() - t0, 1)
    out["output"] = proc.stdout + proc.stderr
    (report_dir / "output.txt").write_text(out["output"])  # every failure, in full
    out["output_tail"] = out["output"][-6000:]
    return out


def tool_error_lines(output: str) -> list[str]:
    """'<operation>: <message>' for each error of the tool itself (ERRORS section)."""
    section = output.split("= ERRORS =", 1)[-1].split("= FAILURES =")[0].split("= WARNINGS =")[0]
    out, operation = [], None
    for line in section.splitlines():
        if line.startswith("___"):
            operation = line.strip("_ ")
        elif operation and line.strip() and line.strip() != "Runtime Error":
            out.append(f"{operation}: {line.strip()}")
            operation = None
    return out if "= ERRORS =" in output else []


def summary(run: dict[str, Any], command: str) -> dict[str, Any]:
    cases = run.get("test_cases", {})
    return {
        "command": command,
        "schemathesis": run.get("schemathesis_version"),
        "operations_tested": run.get("operations", {}).get("tested"),
        "cases": cases.get("generated"),
        "cases_with_failures": cases.get("with_failures"),
        "failures": run.get("failures", []),
        "tool_errors": run.get("errors", []),
        "tool_error_detail": tool_error_lines(run.get("output", "")),
        "phases": {k: v.get("status") for k, v in run.get("phases", {}).items()},
        "exit_code": run["exit_code"],
        "wall_s": run["wall_s"],
    }


def write_results(key: str, section: dict[str, Any]) -> None:
    """Merge `section` under `key` into reliability.json and rewrite reliability.md."""
    path = RESULTS / "reliability.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = section
    path.write_text(json.dumps(data, indent=2) + "\n")
    lines = ["# Reliability figures", "", "Written by the commands below; see README.", ""]
    for name, s in data.items():
        lines += [f"## {name}", "", f"    {s.get('command', '')}", ""]
        # per-second series live in the JSON and the plot, not in the summary
        lines += [f"- {k}: {v}" for k, v in s.items() if k not in ("command", "series")]
        lines.append("")
    (RESULTS / "reliability.md").write_text("\n".join(lines))


def main() -> None:
    from benchmarks.server import Service, have_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=60, help="cases per operation")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not have_models():
        sys.exit("no adrec models in the store: run `make export` first")
    command = f"make fuzz (python -m benchmarks.fuzz --max-examples {args.max_examples})"
    load_before = load_average()
    # A lax queue deadline: on a shared machine a slow moment must not turn into shed 503s,
    # which the document lists but which would hide what the fuzzer is after.
    with Service("fuzz", {"ADREC_BATCH_MAX_LATENCY_MS": "30000"}) as svc:
        print(f"fuzzing {svc.http_url} ({args.max_examples} cases per operation)...", flush=True)
        run = run_schemathesis(
            svc.http_url, ROOT / ".cache" / "benchmarks" / "fuzz", args.max_examples,
            seed=args.seed,
        )  # fmt: skip
        alive = svc.proc is not None and svc.proc.poll() is None
    section = summary(run, command) | {"server_alive_after": alive}
    section["load_average"] = [load_before, load_average()]
    write_results("http_fuzz", section)
    print(run["output_tail"][-2500:])
    print(json.dumps({k: v for k, v in section.items() if k != "command"}, indent=2))
    if section["failures"] or not section["cases"]:  # tool errors are reported, not failed on
        sys.exit(1)


if __name__ == "__main__":
    main()
