"""Evaluation of the engine on labelled examples: validity, per-field accuracy, confusion, speed."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from catalog_enrich.progress import progress_bar
from catalog_enrich.schema import FIELDS, KEYS
from vlm.data.dataset import Example
from vlm.engine import Engine, EnrichmentResult


def _confusion(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for truth, predicted in pairs:
        table[truth][predicted] += 1
    return {truth: dict(counts) for truth, counts in sorted(table.items())}


def score(examples: Sequence[Example], results: Sequence[EnrichmentResult], seconds: float) -> dict[str, Any]:
    """The metrics of a set of results against the examples' labels (a failed image counts as wrong)."""
    n = len(examples)
    correct: Counter[str] = Counter()
    pairs: dict[str, list[tuple[str, str]]] = {field.name: [] for field in FIELDS if field.kind == "enum"}
    for example, result in zip(examples, results, strict=True):
        predicted = result.attributes or {}
        for key in KEYS:
            if predicted.get(key) == example.labels[key]:
                correct[key] += 1
        for key, bucket in pairs.items():
            bucket.append((example.labels[key], predicted.get(key, "<invalid>")))
    valid = sum(result.ok for result in results)
    return {
        "n": n,
        "json_valid_first_pass": sum(r.ok and r.attempts == 1 for r in results) / n if n else 0.0,
        "valid_final": valid / n if n else 0.0,
        "dead_letter_rate": (n - valid) / n if n else 0.0,
        "mean_attempts": sum(r.attempts for r in results) / n if n else 0.0,
        "field_accuracy": {key: correct[key] / n if n else 0.0 for key in KEYS},
        "confusion": {key: _confusion(bucket) for key, bucket in pairs.items()},
        "images_per_s": n / seconds if seconds > 0 else 0.0,
        "seconds": round(seconds, 2),
    }


def evaluate_examples(engine: Engine, examples: Sequence[Example], *, batch_size: int = 32) -> dict[str, Any]:
    """Run the engine over ``examples`` in batches and score the results."""
    results: list[EnrichmentResult] = []
    started = time.perf_counter()
    with progress_bar(total=len(examples), desc="evaluating", unit="img") as progress:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            results.extend(engine.enrich([example.image for example in chunk]))
            progress.update(len(chunk))
    return score(examples, results, time.perf_counter() - started)


def format_report(metrics: dict[str, Any]) -> str:
    """A readable table of the headline metrics."""
    lines = [
        f"images                 {metrics['n']}",
        f"json valid first pass  {metrics['json_valid_first_pass']:.3f}",
        f"valid after retries    {metrics['valid_final']:.3f}",
        f"dead-letter rate       {metrics['dead_letter_rate']:.3f}",
        f"mean attempts          {metrics['mean_attempts']:.2f}",
        f"images/s               {metrics['images_per_s']:.1f}",
        "field accuracy:",
    ]
    lines += [f"  {key:<20} {value:.3f}" for key, value in metrics["field_accuracy"].items()]
    return "\n".join(lines)
