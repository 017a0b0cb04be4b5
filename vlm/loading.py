"""Loading a base VLM (optionally bitsandbytes-quantized) with a LoRA adapter, once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

from catalog_enrich.model_version import model_version
from vlm.precision import attention_kernel, inference_dtype
from vlm.prompting import Prompter

Quantization = Literal["nf4", "int8", "none", "auto"]

log = logging.getLogger(__name__)

#: module names of vision towers, projectors and heads across the supported families; 8-bit
#: bitsandbytes breaks some vision towers (Mllama's), and these layers are a small share of the weights
NON_LANGUAGE_MODULES = [
    "vision_model",
    "vision_tower",
    "visual",
    "multi_modal_projector",
    "qformer",
    "language_projection",
    "image_to_text_projection",
    "lm_head",
]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for generation.

    model: the transformers model (a PeftModel when an unmerged adapter is attached).
    processor: its processor. prompter: builds its inputs. version: see ``model_version``.
    quantization: what was applied. device: where the inputs must go. dtype: what the weights compute in
    (the images' pixels are cast to it).
    """

    model: Any
    processor: Any
    prompter: Prompter
    version: str
    quantization: str
    device: torch.device
    dtype: torch.dtype = torch.float32


def pick_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_quantization(requested: str, device: torch.device) -> str:
    """``auto`` means nf4 on a GPU and full precision on CPU, where bitsandbytes only slows things down."""
    if requested not in ("nf4", "int8", "none", "auto"):
        raise ValueError(f"unknown quantization {requested!r}; use nf4, int8, none or auto")
    if requested == "auto":
        return "nf4" if device.type == "cuda" else "none"
    return requested


def compute_dtype(device: torch.device) -> torch.dtype:
    """The training dtype: bf16 on GPUs that support it, fp32 elsewhere (see ``vlm.precision`` for inference)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def quantization_config(
    quantization: str, device: torch.device, dtype: torch.dtype | None = None
) -> BitsAndBytesConfig | None:
    """The bitsandbytes configuration for a quantization mode."""
    if quantization == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype or compute_dtype(device),
            llm_int8_skip_modules=["lm_head"],
        )
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=NON_LANGUAGE_MODULES)
    return None


def load_base(
    base: str, quantization: str, device: torch.device, dtype: torch.dtype | None = None, attention: str | None = None
) -> Any:
    """The base model in eval mode, quantized as asked; ``dtype`` defaults to the training dtype."""
    dtype = dtype or compute_dtype(device)
    config = quantization_config(quantization, device, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if attention is not None:
        kwargs["attn_implementation"] = attention
    if config is not None:
        kwargs["quantization_config"] = config
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    model = AutoModelForImageTextToText.from_pretrained(base, **kwargs)
    if config is None:
        model.to(device)
    return model.eval()


def attach_adapter(model: Any, adapter_dir: Path, quantization: str) -> Any:
    """The model with the LoRA adapter applied.

    On a full-precision base the adapter is merged (faster generation). On a quantized base it stays
    a separate PeftModel: merging into 4-bit weights re-rounds them and changes the outputs. A tied
    output head also stays unmerged (see ``has_tied_output_head``).
    """
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    if quantization == "none" and not has_tied_output_head(model):
        return peft_model.merge_and_unload().eval()
    return peft_model.eval()


def has_tied_output_head(model: Any) -> bool:
    """Whether the output head shares its weight with the input embeddings.

    Merging a LoRA delta into a tied head also changes the input embeddings, so every prompt token
    would be embedded differently from training: such adapters must stay unmerged.
    """
    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    return head is not None and embeddings is not None and head.weight is embeddings.weight


def load_model(
    base: str,
    adapter_dir: Path | None = None,
    *,
    quantization: Quantization = "auto",
    device: torch.device | None = None,
    version: str | None = None,
    precision: str = "auto",
) -> LoadedModel:
    """Load base + adapter for inference; call once per process and keep the result.

    ``version`` names what was loaded (see ``configured_model_version``); by default it is derived from
    the base and the adapter directory. ``precision`` picks the dtype (see ``vlm.precision``).
    """
    device = device or pick_device()
    applied = resolve_quantization(quantization, device)
    dtype = inference_dtype(precision, device)
    attention = attention_kernel(dtype, device)
    log.info("loading %s (quantization %s, %s, %s attention, device %s)", base, applied, dtype, attention, device)
    model = load_base(base, applied, device, dtype, attention)
    if adapter_dir is not None:
        model = attach_adapter(model, adapter_dir, applied)
    processor = AutoProcessor.from_pretrained(base)
    prompter = Prompter.for_model(processor, model.config)
    version = version or model_version(base, str(adapter_dir) if adapter_dir else None)
    return LoadedModel(model, processor, prompter, version, applied, device, dtype)
