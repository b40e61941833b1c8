"""Fine-tuning helpers: LoRA through ``peft``, FSDP wrap classes, resumable RNG state."""

from sapiens_kit.finetune.distributed import transformer_blocks
from sapiens_kit.finetune.lora import LoraOptions, apply_lora, has_lora, merge_lora

__all__ = ["LoraOptions", "apply_lora", "has_lora", "merge_lora", "transformer_blocks"]
