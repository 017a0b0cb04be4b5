"""LoRA fine-tuning of a VLM on (image, attributes) examples, as the seed recipe does, with held-out metrics."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from catalog_enrich.model_version import source_identity
from catalog_enrich.progress import progress_bar
from catalog_enrich.schema import INSTRUCTION, SCHEMA_VERSION, schema_fingerprint, target_json
from vlm.augment import augment
from vlm.data.dataset import Example, read_examples, split_examples
from vlm.loading import LoadedModel, compute_dtype, load_base, pick_device
from vlm.lora import lora_config

log = logging.getLogger(__name__)

#: written next to the adapter weights: what it was trained on and how well it did
ADAPTER_METADATA = "catalog_adapter.json"


@dataclass(frozen=True)
class TrainingSettings:
    """Knobs of one training run.

    steps: optimizer steps (``epochs`` wins when given). lr: AdamW learning rate. rank / alpha: LoRA size.
    batch_size: images per step. holdout_fraction: share of examples kept out for the final metrics.
    qlora: train on a 4-bit base. augment: random crops of the training images (see ``vlm.augment``).
    seed: shuffling, split, augmentation and initialisation.
    """

    steps: int = 1000
    epochs: float | None = None
    lr: float = 3e-3
    rank: int = 16
    alpha: int = 32
    batch_size: int = 16
    holdout_fraction: float = 0.1
    qlora: bool = False
    augment: bool = True
    seed: int = 0


def _batches(examples: list[Example], batch_size: int, seed: int) -> Iterator[list[Example]]:
    """Endless shuffled batches, reshuffled every epoch."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield [examples[i] for i in order[start : start + batch_size]]


def _disable_cpu_bf16_kernels(model: torch.nn.Module) -> None:
    """bitsandbytes' CPU bf16 path modifies a view in place during backward after an eval pass."""
    for module in model.modules():
        if type(module).__name__ == "Linear4bit" and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def prepare_trainable(base: str, settings: TrainingSettings, device: torch.device) -> Any:
    """The base model wrapped with fresh LoRA layers, ready to train."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    quantization = "nf4" if settings.qlora else "none"
    model = load_base(base, quantization, device)
    on_gpu = device.type == "cuda"
    if settings.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=on_gpu)
        _disable_cpu_bf16_kernels(model)
    elif on_gpu:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    torch.manual_seed(settings.seed)
    return get_peft_model(model, lora_config(model, rank=settings.rank, alpha=settings.alpha))


def _total_steps(settings: TrainingSettings, train_size: int) -> int:
    if settings.epochs is not None:
        return max(1, round(settings.epochs * train_size / settings.batch_size))
    return settings.steps


def run_steps(model: Any, prompter: Any, train: list[Example], settings: TrainingSettings) -> list[float]:
    """The optimisation loop; returns the loss of every step."""
    device = next(p for p in model.parameters() if p.requires_grad).device
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=0.0)
    total = _total_steps(settings, len(train))
    # linear warm-up then linear decay: the high learning rate a tiny model needs is unstable at step 0
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.05, (total - step) / max(1, total - warmup)))
    )
    model.train()
    losses: list[float] = []
    batches = _batches(train, min(settings.batch_size, len(train)), settings.seed)
    views = random.Random(settings.seed + 1)
    progress = progress_bar(total=total, desc="training", unit="step")
    for _ in range(total):
        batch = next(batches)
        images = [augment(e.image, views) if settings.augment else e.image for e in batch]
        inputs = prompter.training_inputs(images, [target_json(e.labels) for e in batch]).to(device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(compute_dtype(device))
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        progress.update()
    progress.close()
    model.eval()
    return losses


def file_digest(path: Path) -> str:
    """sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_adapter(base: str, data: Path, out: Path, settings: TrainingSettings) -> dict[str, Any]:
    """Train a LoRA adapter on ``data``, evaluate it on a held-out split, save it to ``out``."""
    from transformers import AutoProcessor

    from vlm.engine import Engine
    from vlm.evaluation import evaluate_examples
    from vlm.prompting import Prompter

    started = time.perf_counter()
    device = pick_device()
    examples = read_examples(data)
    train, holdout = split_examples(examples, settings.holdout_fraction, settings.seed)
    if not train:
        raise ValueError(f"{data} has too few examples to train on ({len(examples)})")
    processor = AutoProcessor.from_pretrained(base)
    model = prepare_trainable(base, settings, device)
    prompter = Prompter.for_model(processor, model.config)
    losses = run_steps(model, prompter, train, settings)
    train_seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    metrics: dict[str, Any] = {}
    if holdout:
        quantized = "nf4" if settings.qlora else "none"
        loaded = LoadedModel(model, processor, prompter, "training", quantized, device, compute_dtype(device))
        metrics = evaluate_examples(Engine(loaded, decoding="free"), holdout, batch_size=32)
    metadata = {
        "base_model": base,
        "base_identity": source_identity(base),
        "schema_version": SCHEMA_VERSION,
        "schema_fingerprint": schema_fingerprint(),
        "prompt_sha256": hashlib.sha256(INSTRUCTION.encode()).hexdigest(),
        "data": str(data),
        "data_sha256": file_digest(data),
        "train_examples": len(train),
        "holdout_examples": len(holdout),
        "settings": asdict(settings),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "train_seconds": round(train_seconds, 1),
        "holdout_metrics": metrics,
    }
    (out / ADAPTER_METADATA).write_text(json.dumps(metadata, indent=2))
    return metadata
