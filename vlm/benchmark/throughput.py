"""Engine throughput: images per second by batch size, and what constrained decoding costs per image.

Both measurements hold the number of decoding steps fixed, so they compare batching (or masking) and
nothing else: free decoding is forced to write exactly the same number of tokens for every image, and
constrained decoding (which cannot be forced past the end of its JSON object) is compared with free
decoding forced to the step count the constrained batch actually took.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from PIL import Image

from vlm.engine import DEFAULT_MAX_NEW_TOKENS, Engine
from vlm.generation import DecodingPlan, generate_outputs
from vlm.loading import LoadedModel

#: batch sizes of the batching comparison; 1 is one image per generate call, the seed recipe's way
BATCH_SIZES = (1, 8, 16, 32, 64)

#: new tokens every image gets in the batching comparison (no row may stop early)
FORCED_TOKENS = 48


@contextmanager
def forced_length(loaded: LoadedModel, tokens: int) -> Iterator[None]:
    """While open, ``generate`` writes at least ``tokens`` new tokens (stop tokens are masked until then)."""
    config = loaded.model.generation_config
    before = config.min_new_tokens
    # generate reads min_new_tokens from the model's generation config unless a call overrides it; with
    # max_new_tokens set to the same number, every row of every call gets exactly ``tokens``
    config.min_new_tokens = tokens
    try:
        yield
    finally:
        config.min_new_tokens = before


class StepCounter:
    """The model with ``generate`` wrapped to record how many new tokens each call produced.

    model: the model to wrap; every other attribute is the model's own.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self.steps: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, **kwargs: Any) -> Any:
        """The model's generate, counting the new tokens of the call."""
        sequences = self._model.generate(**kwargs)
        self.steps.append(int(sequences.shape[1] - kwargs["input_ids"].shape[1]))
        return sequences


def _chunks(images: Sequence[Image.Image], size: int) -> list[list[Image.Image]]:
    return [list(images[start : start + size]) for start in range(0, len(images), size)]


def warm_up(loaded: LoadedModel, images: Sequence[Image.Image]) -> None:
    """One short call in each mode, so the first timed call pays no one-off setup (grammar compile, caches)."""
    for mode in ("free", "constrained"):
        generate_outputs(loaded, list(images[:2]), DecodingPlan(mode, max_new_tokens=4))  # type: ignore[arg-type]


def engine_images_per_s(loaded: LoadedModel, images: Sequence[Image.Image], batch_size: int, tokens: int) -> float:
    """Images per second of the engine (free decoding, ``tokens`` forced) fed ``batch_size`` images per call.

    One untimed call at this batch size comes first: the first call at a new, larger shape pays for
    growing the allocator's pools, which no later call does.
    """
    engine = Engine(loaded, decoding="free", max_attempts=1, max_new_tokens=tokens)
    chunks = _chunks(images, batch_size)
    with forced_length(loaded, tokens):
        engine.enrich(chunks[0])
        started = time.perf_counter()
        for chunk in chunks:
            engine.enrich(chunk)
        seconds = time.perf_counter() - started
    return len(images) / seconds


def batching_speedup(
    loaded: LoadedModel,
    images: Sequence[Image.Image],
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    tokens: int = FORCED_TOKENS,
    single_images: int | None = None,
) -> dict[str, Any]:
    """Images per second by batch size and the best one's speed-up over one image per call.

    ``single_images`` limits how many images the one-per-call pass takes (it is the slow one; its rate
    does not depend on how many images it sees).
    """
    rates: dict[str, float] = {}
    for size in batch_sizes:
        subset = images[:single_images] if size == 1 and single_images else images
        rates[str(size)] = engine_images_per_s(loaded, subset, size, tokens)
    best = max(rates, key=lambda size: rates[size])
    baseline = rates.get("1")
    return {
        "images_per_s_by_batch": rates,
        "best_batch_size": int(best),
        "batched_speedup": rates[best] / baseline if baseline else None,
        "forced_new_tokens": tokens,
        "images": len(images),
    }


def constrained_overhead(
    loaded: LoadedModel,
    images: Sequence[Image.Image],
    *,
    batch_size: int = 16,
    repeats: int = 1,
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """Extra decoding time per image of constrained over free decoding, at the same batch and step count.

    Each batch first runs constrained, untimed, to its natural end (the JSON object closes), which gives
    its step count and grows the allocator's pools to this shape; then it runs free, forced to exactly
    that many steps, and constrained again, alternately ``repeats`` times. Each mode keeps its fastest
    time per batch: on a machine shared with other work, a pause hits one run, not the arithmetic.
    """
    counter = StepCounter(loaded.model)
    counted = dataclasses.replace(loaded, model=counter)
    constrained = DecodingPlan("constrained", max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
    constrained_s = free_s = 0.0
    total_steps = 0
    for chunk in _chunks(images, batch_size):
        generate_outputs(counted, chunk, constrained)
        steps = counter.steps[-1]
        free_times, constrained_times = [], []
        for _ in range(repeats):
            with forced_length(loaded, steps):
                free_times.append(_timed(counted, chunk, DecodingPlan("free", steps)))
            constrained_times.append(_timed(counted, chunk, constrained))
        if set(counter.steps[-2 * repeats :]) != {steps}:
            raise RuntimeError(f"step counts differ between runs of one batch: {counter.steps[-2 * repeats - 1 :]}")
        free_s += min(free_times)
        constrained_s += min(constrained_times)
        total_steps += steps
    return {
        "constrained_overhead": (constrained_s - free_s) / free_s,
        "constrained_s_per_image": constrained_s / len(images),
        "free_s_per_image": free_s / len(images),
        "extra_ms_per_step": 1000 * (constrained_s - free_s) / total_steps,
        "steps": total_steps,
        "batch_size": batch_size,
        "images": len(images),
        "repeats": repeats,
    }


def _timed(loaded: LoadedModel, images: list[Image.Image], plan: DecodingPlan) -> float:
    started = time.perf_counter()
    generate_outputs(loaded, images, plan)
    return time.perf_counter() - started
