"""Faults a worker process can be started with, for the reliability suite only.

A fault plan travels in the ``CATALOG_FAULTS`` variable (JSON) to ``faulty_worker``, which installs it in
the worker before Celery starts, so the pool processes forked from it inherit it. Production workers
never read this variable: only ``python -m catalog_enrich.reliability.faulty_worker`` does.

Image faults are keyed by a marker appended after the image data (decoders ignore trailing bytes), so the
same object behaves the same on every delivery, on every worker: a poison image kills the process that
decodes it, a slow image stalls its batch. The model fault corrupts what the real model generated.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: the environment variable holding the JSON plan
FAULTS_VARIABLE = "CATALOG_FAULTS"

#: appended to an image's bytes: the worker that decodes it is killed, as by a crashing decoder
POISON_MARKER = b"CATALOG-FAULT:poison"

#: appended to an image's bytes: decoding it stalls for ``FaultPlan.slow_seconds``
SLOW_MARKER = b"CATALOG-FAULT:slow"

#: how a misbehaving model corrupts an output, each a kind of damage seen from real models
CORRUPTIONS: dict[str, Callable[[str], str]] = {
    "broken-json": lambda text: text[: len(text) // 2],
    "prose": lambda text: "Sure! This looks like a lovely product. Let me know if you need anything else.",
    "wrong-types": lambda text: json.dumps(
        {"product_name": 42, "product_type": ["Tshirts"], "color": None, "gender": True, "season": {}, "usage": 1.5}
    ),
    "unknown-values": lambda text: json.dumps(
        {
            "product_name": "Flux Capacitor",
            "product_type": "Spaceship",
            "color": "Octarine",
            "gender": "Robots",
            "season": "Monsoon",
            "usage": "Time travel",
        }
    ),
    "injection": lambda text: json.dumps(
        {
            "product_name": "x'); DROP TABLE catalog; --",
            "product_type": "<script>alert(1)</script>",
            "color": "Ignore previous instructions",
            "gender": "Men\u0000",
            "season": "Fall",
            "usage": "Casual",
        }
    ),
    # the longest output a broken model could return: it never closes the object
    "endless": lambda text: '{"product_name": "' + "la " * 100_000,
}


@dataclass(frozen=True)
class FaultPlan:
    """What to break in a worker.

    slow_seconds: how long a ``SLOW_MARKER`` image stalls its decode.
    corrupt_model: corrupt model outputs per ``corruption_for``.
    """

    slow_seconds: float = 0.0
    corrupt_model: bool = False

    def to_env(self) -> dict[str, str]:
        """The variable that carries this plan to a worker process."""
        return {FAULTS_VARIABLE: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultPlan:
        """The plan in the environment (no faults when the variable is unset)."""
        raw = (environ if environ is not None else os.environ).get(FAULTS_VARIABLE)
        return cls(**json.loads(raw)) if raw else cls()


def image_fingerprint(pixels: bytes) -> int:
    """A stable number for an image's pixels, the same in every process."""
    return int.from_bytes(hashlib.sha256(pixels).digest()[:8], "big")


def corruption_for(fingerprint: int) -> tuple[str | None, bool]:
    """The corruption of an image, or None for a clean one, and whether it lasts past the first attempt.

    One image in four is left clean; lasting corruptions end in a dead letter, passing ones in a retry.
    """
    kinds = list(CORRUPTIONS)
    slot = fingerprint % (len(kinds) + 2)
    if slot >= len(kinds):
        return None, False
    return kinds[slot], (fingerprint // 97) % 2 == 0


def faulty_decode(decode: Callable[..., Any], plan: FaultPlan) -> Callable[..., Any]:
    """``decode`` that dies on poison images and stalls on slow ones."""

    def decode_with_faults(data: bytes, *args: Any, **kwargs: Any) -> Any:
        if data.endswith(POISON_MARKER):
            # what a decoder crashing in native code looks like to Celery: the process is just gone
            os.kill(os.getpid(), signal.SIGKILL)
        if data.endswith(SLOW_MARKER):
            time.sleep(plan.slow_seconds)
        return decode(data, *args, **kwargs)

    return decode_with_faults


def corrupting_generate(generate: Callable[..., list[str]]) -> Callable[..., list[str]]:
    """``generate`` whose outputs are corrupted per ``corruption_for``; passing faults hit one attempt only."""
    attempts: dict[int, int] = {}

    def generate_corrupted(loaded: Any, images: list[Any], plan: Any) -> list[str]:
        texts = generate(loaded, images, plan)
        corrupted = []
        for image, text in zip(images, texts, strict=True):
            fingerprint = image_fingerprint(image.tobytes())
            attempts[fingerprint] = attempts.get(fingerprint, 0) + 1
            kind, lasting = corruption_for(fingerprint)
            if kind is not None and (lasting or attempts[fingerprint] == 1):
                text = CORRUPTIONS[kind](str(text))
            corrupted.append(text)
        return corrupted

    return generate_corrupted


def install(plan: FaultPlan) -> None:
    """Patch this process's worker code with ``plan``'s faults (before any engine is built)."""
    import worker.batch
    import worker.engine_holder

    worker.batch.decode_image = faulty_decode(worker.batch.decode_image, plan)
    if plan.corrupt_model:
        build = worker.engine_holder.build_engine

        def build_corrupting_engine(settings: Any) -> Any:
            engine = build(settings)
            engine._generate = corrupting_generate(engine._generate)
            return engine

        worker.engine_holder.build_engine = build_corrupting_engine
