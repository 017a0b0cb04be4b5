"""The inference engine the worker calls: batched generation, validation, and retries of the bad outputs.

Every image gets exactly one result: validated attributes, or the final reason with the raw output.
Only the images whose output failed validation are retried, together, each attempt one step further up
the retry ladder (resample with a new seed, then constrained decoding with more tokens).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from catalog_enrich.schema import SCHEMA_VERSION, max_output_chars
from catalog_enrich.validation import validate_output
from vlm.generation import DecodingMode, DecodingPlan, generate_outputs
from vlm.loading import LoadedModel

log = logging.getLogger(__name__)

#: the first attempt's token budget: enough for the longest valid object, so constrained output always closes
DEFAULT_MAX_NEW_TOKENS = max_output_chars() + 16

#: sampling temperature of retries; high enough to leave the greedy path that just failed
RETRY_TEMPERATURE = 0.7


@dataclass(frozen=True)
class EnrichmentResult:
    """The outcome for one image.

    attributes: the validated attributes, or None when every attempt failed.
    reason: why the last attempt failed (None on success). raw_output: the last attempt's text.
    attempts: how many generations this image took. seconds: its share of generation time.
    """

    attributes: dict[str, str] | None
    reason: str | None
    raw_output: str
    attempts: int
    seconds: float
    model_version: str
    schema_version: str = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        """Whether the image got valid attributes."""
        return self.attributes is not None


class ModelFailure(str):
    """The text stored as raw output when generation itself failed for an image (not the model's words)."""


def retry_ladder(mode: DecodingMode, max_new_tokens: int, attempts: int) -> list[DecodingPlan]:
    """The decoding plan of each attempt, from the configured mode up to constrained with more tokens."""
    plans = [DecodingPlan(mode, max_new_tokens)]
    if attempts >= 2:
        plans.append(DecodingPlan(mode, max_new_tokens, temperature=RETRY_TEMPERATURE, seed=1))
    for attempt in range(3, attempts + 1):
        # constrained decoding with head-room guarantees the object closes; sampling after the first
        # constrained try keeps later attempts from repeating the same output
        temperature = 0.0 if attempt == 3 else RETRY_TEMPERATURE
        plans.append(DecodingPlan("constrained", max_new_tokens * 3 // 2, temperature, seed=attempt))
    return plans


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


class Engine:
    """Enriches batches of images with one loaded model.

    loaded: the model (load it once per process). decoding: the first attempt's mode.
    max_attempts: generations per image before giving up. max_new_tokens: the first attempt's cap.
    generate: the function that turns images into texts; replaceable so a deliberately misbehaving
    model can be studied with the same retry and validation path.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        decoding: DecodingMode = "constrained",
        max_attempts: int = 3,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        generate: Callable[[LoadedModel, list[Image.Image], DecodingPlan], list[str]] = generate_outputs,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.loaded = loaded
        self.plans = retry_ladder(decoding, max_new_tokens, max_attempts)
        self._generate = generate
        #: the largest batch known to fit in memory, learned from out-of-memory errors
        self.batch_cap: int | None = None

    @property
    def model_version(self) -> str:
        """The version stamped on every result."""
        return self.loaded.version

    def _generate_splitting(self, images: list[Image.Image], plan: DecodingPlan) -> list[str]:
        """Generate for a batch; on out-of-memory or an image the model can't take, split and go on."""
        try:
            return self._generate(self.loaded, images, plan)
        except Exception as error:
            if len(images) == 1:
                if _is_out_of_memory(error):
                    raise
                log.warning("generation failed for one image: %s", error)
                return [ModelFailure(f"generation failed: {type(error).__name__}: {str(error)[:200]}")]
            half = len(images) // 2
            if _is_out_of_memory(error):
                self.batch_cap = half if self.batch_cap is None else min(self.batch_cap, half)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            log.warning("splitting a batch of %d after %s", len(images), type(error).__name__)
            return self._generate_splitting(images[:half], plan) + self._generate_splitting(images[half:], plan)

    def _generate_capped(self, images: list[Image.Image], plan: DecodingPlan) -> list[str]:
        """Generate in chunks no larger than what is known to fit."""
        cap = self.batch_cap or len(images)
        texts: list[str] = []
        for start in range(0, len(images), cap):
            texts += self._generate_splitting(images[start : start + cap], plan)
        return texts

    def enrich(self, images: Sequence[Image.Image]) -> list[EnrichmentResult]:
        """One result per image, in order."""
        pending = list(range(len(images)))
        outputs: dict[int, str] = {}
        verdicts: dict[int, tuple[dict[str, str] | None, str | None]] = {}
        attempts = dict.fromkeys(pending, 0)
        seconds = dict.fromkeys(pending, 0.0)
        for plan in self.plans:
            if not pending:
                break
            started = time.perf_counter()
            texts = self._generate_capped([images[i] for i in pending], plan)
            share = (time.perf_counter() - started) / len(pending)
            still_bad = []
            for index, text in zip(pending, texts, strict=True):
                attempts[index] += 1
                seconds[index] += share
                outputs[index] = str(text)
                if isinstance(text, ModelFailure):
                    verdicts[index] = (None, str(text))
                    continue
                verdict = validate_output(text)
                verdicts[index] = (verdict.attributes, verdict.reason) if verdict.ok else (None, verdict.reason)
                if not verdict.ok:
                    still_bad.append(index)
            pending = still_bad
        return [
            EnrichmentResult(
                attributes=verdicts[i][0],
                reason=verdicts[i][1],
                raw_output=outputs[i],
                attempts=attempts[i],
                seconds=seconds[i],
                model_version=self.model_version,
            )
            for i in range(len(images))
        ]
