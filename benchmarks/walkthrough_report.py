"""benchmarks/results/walkthrough.md from the record benchmarks/walkthrough.py keeps."""

from __future__ import annotations

from typing import Any


def _cells(phase: dict[str, Any]) -> list[str]:
    rows = ["| arm | model version | responses | impressions | clicks | CTR | conversions |",
            "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for c in phase.get("by_arm_and_version", {}).values():
        rows.append(f"| {c['arm']} | {c['model_version']} | {c['responses']:,} | "
                    f"{c['impressions']:,} | {c['clicks']:,} | {c['ctr']} | "
                    f"{c['conversions']:,} |")  # fmt: skip
    return rows


def _traffic(phase: dict[str, Any]) -> str:
    lat = phase.get("recommend_latency", {})
    kinds = f" {phase['failure_kinds']}" if phase["failure_kinds"] else ""
    return (f"{phase['requests']:,} responses, {phase['failed']} failed{kinds}, "
            f"{phase['feedback_failed']} feedback calls failed; "
            f"/recommend p50 {lat.get('median_ms')} ms, p99 {lat.get('p99_ms')} ms; "
            f"load average {phase.get('load_avg_1m')}")  # fmt: skip


def render_markdown(rec: dict[str, Any]) -> str:
    m = rec.get("machine", {})
    out = [
        "# The feedback loop end to end (`python -m benchmarks.walkthrough`)",
        "",
        f"`{rec['command']}`: {m.get('cpu', m.get('model name', '?'))}, "
        f"{m.get('cores', m.get('logical_cores', '?'))} cores; load average (1 min) "
        f"{rec.get('load_avg_1m_start')} at the start, {rec.get('load_avg_1m_end')} at the end; "
        f"{rec.get('total_s')} s in all; every step succeeded: **{rec.get('ok')}**.",
        "",
        f"1. Scratch store: version 1 = `adrec-scorer:{rec.get('version_1')}`; A/B config "
        f"`{rec.get('ab_config')}` (A pinned to version 1, B on the newest).",
    ]
    started = rec.get("started")
    if started:
        sc = started["scorer"] or {}
        out.append(f"2. Service ready in {started['seconds']} s, serving scorer "
                   f"`{sc.get('tag')}`, pinned arms {sc.get('pinned')}")  # fmt: skip
    if "before" in rec:
        out += ["3. Traffic before the retrain: " + _traffic(rec["before"]), "",
                *_cells(rec["before"]), ""]  # fmt: skip
    rt = rec.get("retrain")
    if rt:
        out += [f"4. `{rt['command']}`: exit {rt['returncode']}, {rt['wall_s']} s wall, "
                f"{rt['cpu_s']} s CPU, peak RSS {rt['peak_rss_mb']:,} MB, load average "
                f"{rt['load_avg_1m'][0]} -> {rt['load_avg_1m'][1]}", "", "```text",
                (rt["stdout"] or "\n".join(rt["stderr_tail"])).strip(), "```", ""]  # fmt: skip
    sw = rec.get("swap")
    if sw:
        r = sw["reload"]
        settled = (f"arm B settled on version {r.get('version')} "
                   f"{sw['settled'] - r['sent']:.1f} s after the reload"
                   if sw.get("settled") else "arm B never settled on the new version")  # fmt: skip
        out += [f"5. `POST /admin/reload` -> {r['status']} `{{version: {r.get('version')}, "
                f"previous: {r.get('previous')}, state: {r.get('state')}}}`; {settled}. "
                "Traffic across the swap and after it: " + _traffic(sw), "",
                *_cells(sw), ""]  # fmt: skip
    ab = rec.get("abtest")
    if ab:
        out += [f"6. `python -m rec_models.abtest --config {rec.get('ab_config')} "
                f"--since {ab['since']}` (the impressions served after the swap):", "",
                "```text", ab["text"].rstrip(), "```", ""]  # fmt: skip
    return "\n".join(out) + "\n"
