"""The benchmark result as a readable table: one line per figure, its value, and what it was measured on."""

from __future__ import annotations

from typing import Any

#: width of the figure-name column
NAME_WIDTH = 30


def _rate(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2f}{unit}"


def _line(name: str, value: str) -> str:
    return f"{name:<{NAME_WIDTH}} {value}"


def _engine_lines(result: dict[str, Any]) -> list[str]:
    rates = result.get("images_per_s_by_batch")
    if not rates:
        return []
    engine = result["details"]["engine"]
    by_batch = "  ".join(f"{size}: {_rate(rate)}" for size, rate in rates.items())
    speedup = result.get("batched_speedup")
    lines = [_line("engine images/s by batch", f"{by_batch}  ({engine['forced_new_tokens']} new tokens each)")]
    if speedup is not None:
        lines.append(_line("batched speed-up", f"x{speedup:.1f} (batch {engine['best_batch_size']} over batch 1)"))
    return lines


def _constrained_lines(result: dict[str, Any]) -> list[str]:
    overhead = result.get("constrained_overhead")
    if overhead is None:
        return []
    lines = []
    for size, facts in result["details"]["constrained"].items():
        detail = f"{facts['images']} images, {facts['steps']} steps, {facts['extra_ms_per_step']:+.2f} ms per step"
        value = f"{facts['constrained_overhead']:+.1%} per image ({detail})"
        lines.append(_line(f"constrained overhead, batch {size}", value))
    return lines


def _quantization_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for mode, figures in (result.get("quantization") or {}).items():
        if "error" in figures:
            value = f"failed: {figures['error']}"
        else:
            value = (
                f"{_rate(figures['images_per_s'])} images/s, peak {figures['peak_memory_mb']:,.0f} MB, "
                f"weights {figures['weights_mb']:,.0f} MB"
            )
        lines.append(_line(f"quantization {mode}", value))
    return lines


def _service_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    if result.get("producer_keys_per_s") is not None:
        peaks = ", ".join(f"{mb:,.0f} MB at {int(count):,}" for count, mb in result["producer_peak_rss_mb"].items())
        lines.append(_line("producer keys/s", f"{_rate(result['producer_keys_per_s'])} (largest bucket)"))
        lines.append(_line("producer peak RSS", peaks))
    if result.get("db_rows_per_s"):
        rates = ", ".join(f"batch {size}: {_rate(rate)}" for size, rate in result["db_rows_per_s"].items())
        lines.append(_line("catalog upserts rows/s", rates))
    if result.get("pipeline_efficiency") is not None:
        facts = result["details"]["pipeline"]
        lines.append(
            _line(
                "pipeline efficiency",
                f"{result['pipeline_efficiency']:.2f} (pipeline {_rate(facts['pipeline_images_per_s'])} vs engine "
                f"{_rate(facts['engine_images_per_s'])} images/s, {facts['images']} images, batch "
                f"{facts['batch_size']}, {facts['decoding']})",
            )
        )
    return lines


def _gpu_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, figures in (result.get("gpu") or {}).items():
        if not isinstance(figures, dict):
            continue
        rows = "  ".join(
            f"{size}: {_rate(row['images_per_s'])}/s {row['peak_memory_mb']:,.0f} MB"
            if "images_per_s" in row
            else f"{size}: {row['error']}"
            for size, row in figures["by_batch"].items()
        )
        lines.append(
            _line(name, f"{figures['parameters'] / 1e9:.2f}B parameters, weights {figures['weights_mb']:,.0f} MB")
        )
        lines.append(_line("  images/s, peak by batch", rows))
    return lines


def format_report(result: dict[str, Any]) -> str:
    """The result as a table with a header naming the machine, the commit and the model."""
    machine = result["machine"]
    header = [
        f"catalog bench {result['date']} commit {result.get('git_commit') or 'unknown'}",
        f"machine: {machine['cpu']}, {machine['cpu_cores_usable']} cores, {machine['device']}, "
        f"torch {machine['versions']['torch']} ({machine['torch_threads']} threads)",
    ]
    if "model" in result:
        model = result["model"]
        header.append(f"bench model: {model['arch']}, {model['parameters'] / 1e6:.1f}M parameters, random weights")
        if "dtype" in model:
            header[-1] += f", {model['dtype']} with {model['attention']} attention"
    lines = [_line("figure", "value"), "-" * 100]
    for part in (_engine_lines, _constrained_lines, _quantization_lines, _service_lines, _gpu_lines):
        lines += part(result)
    errors = [f"{section} not measured: {message}" for section, message in result.get("errors", {}).items()]
    return "\n".join([*header, "", *lines, *(["", *errors] if errors else [])])
