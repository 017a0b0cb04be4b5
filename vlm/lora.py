"""Which layers get LoRA: every linear layer of the vision tower, the projector and the language model."""

from __future__ import annotations

from typing import Any

import torch


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Full names of every linear layer, quantized ones included, in vision and language parts alike.

    Full names rather than suffixes: some vision towers name layers ``mlp.0`` and a suffix like ``0``
    would match unrelated modules. The output head is included because a head that never saw this
    task's tokens (a freshly built model, or a new vocabulary) cannot learn them otherwise.
    """
    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.append(name)
    return names


def lora_config(model: torch.nn.Module, *, rank: int, alpha: int, dropout: float = 0.0) -> Any:
    """The peft LoRA configuration for ``model``."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=linear_module_names(model),
    )
