"""The footprint's Markdown: memory, cold start and install size tables with their notes."""

from __future__ import annotations

from typing import Any

from benchmarks.footprint.cold_start import COLD_START_GOAL_S


def dash(value: object) -> str:
    """A missing figure (no aarch64 cache, for instance) prints as "-"."""
    return "-" if value is None else str(value)


def markdown(report: dict[str, Any]) -> str:
    memory = report["memory"]
    rows = [
        ("bare interpreter, peak", "bare_interpreter_hwm_mib"),
        ("interpreter + `import edge_server.app`, peak", "import_gateway_hwm_mib"),
        ("bare ORT process: after `import onnxruntime`", "ort_import_rss_mib"),
        ("bare ORT session process, 1,000 runs, peak", "ort_session_process_hwm_mib"),
        ("ORT session cost (session process - bare interpreter)", "ort_session_cost_mib"),
        ("gateway at SERVING, peak", "gateway_serving_hwm_mib"),
        ("gateway after 1,000 Predict, peak", "gateway_1k_hwm_mib"),
        ("gateway after 2,000 Predict, peak", "gateway_2k_hwm_mib"),
        ("gateway RSS growth 1,000 -> 2,000 Predict", "gateway_rss_growth_1k_to_2k_mib"),
        ("gateway overhead (peak - ORT session cost; goal <= 60)", "gateway_overhead_mib"),
        ("budget: ORT session cost + 60", "budget_mib"),
    ]
    out = ["| Memory (MiB) | " + " | ".join(m["model"] for m in memory) + " |",
           "|---|" + "---:|" * len(memory)]  # fmt: skip
    for label, key in rows:
        out.append(f"| {label} | " + " | ".join(str(m.get(key, "-")) for m in memory) + " |")
    out.append("| within budget | " + " | ".join(str(m["within_budget"]) for m in memory) + " |")
    out += [f"- {m['model']}: {m['note']}" for m in memory]
    out += [f"- {note}" for note in report["notes"]]
    start = report["cold_start"]
    out += [
        "",
        "| Cold start to grpc.health SERVING (demo model, 5 runs) | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    for name, row in start.items():
        if isinstance(row, dict):
            out.append(f"| {name} | {row['median_s']} | {row['min_s']} | {row['max_s']} |")
    machine = report["machine"]
    out.append(
        f"- goal < {COLD_START_GOAL_S} s: {'met' if start['within_goal'] else 'MISSED'}; "
        f"edge-server / bare = {start['ratio_to_bare']}; load average "
        f"{machine['loadavg'][0]:.2f} before, {machine['loadavg_after'][0]:.2f} after "
        f"({machine['cpus']} CPUs)"
    )
    size = report["install_size"]
    out += [
        "",
        "| Runtime install (MiB) | version | via | x86_64 wheel | x86_64 installed "
        "| aarch64 wheel | aarch64 installed |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in size["packages"]:
        out.append(
            f"| {r['package']} | {r['version']} | {r['required_by']} | {r['x86_64_wheel_mib']} | "
            f"{r['x86_64_installed_mib']} | {dash(r['aarch64_wheel_mib'])} | "
            f"{dash(r['aarch64_installed_mib'])} |"
        )
    out.append(
        f"| **total** | | | | {size['x86_64_installed_total_mib']} | | "
        f"{dash(size['aarch64_installed_total_mib'])} |"
    )
    return "\n".join(out)
