"""Fine-tuning helpers: LoRA through ``peft``, freezing, FSDP wrap classes, resumable RNG
state."""

from sapiens_kit.finetune.distributed import transformer_blocks
from sapiens_kit.finetune.freezing import check_freezing, freeze, rewrap_ddp, unfreeze
from sapiens_kit.finetune.lora import LoraOptions, apply_lora, has_lora, merge_lora

__all__ = [
    "LoraOptions",
    "apply_lora",
    "check_freezing",
    "freeze",
    "has_lora",
    "merge_lora",
    "rewrap_ddp",
    "transformer_blocks",
    "unfreeze",
]
