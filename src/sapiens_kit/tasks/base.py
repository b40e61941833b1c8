"""BaseTask: a Sapiens backbone + a task head + a loss, as a LightningModule.

Tasks take plain, serialisable arguments and build their modules in ``configure_models()``, so
``Task.load_from_checkpoint(path)`` works in a notebook without Hydra. Images arrive as uint8
``(B, 3, H, W)`` tensors and are normalised here with the mean/std registered for the weights
(the official models normalise in a data preprocessor the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from sapiens_kit.finetune.freezing import check_freezing, freeze, unfreeze
from sapiens_kit.finetune.lora import apply_lora, has_lora, merge_lora
from sapiens_kit.finetune.state import rng_state, set_rng_state
from sapiens_kit.models import (
    SapiensModel,
    WeightsError,
    WeightsUnavailableError,
    create_backbone,
    get_pretrained_cfg,
    is_registered_weights,
    load_pretrained,
    resolve_source,
)
from sapiens_kit.tasks.hooks import TaskHooks
from sapiens_kit.tasks.optim import (
    build_optimizer,
    build_scheduler,
    check_schedule,
    layer_id,
    param_groups,
)

log = logging.getLogger(__name__)

_BANNER = "!" * 88


class BaseTask(TaskHooks, L.LightningModule):
    """Shared backbone construction, weight loading, normalisation and optimisation.

    The task-specific hooks the apps call (``key``, ``draw``, ``media_pictures``, the Hub card
    facts, ``predict_dataset``, ``save_predictions``, ``test_step``) are documented in
    :class:`~sapiens_kit.tasks.hooks.TaskHooks`.

    Args:
        backbone: Registered backbone name (``sapiens_0_3b``, ``sapiens_test``, ...).
        weights: ``None``, ``arch.tag``, a checkpoint path or ``hf-hub:...`` (docs/weights.md).
        img_size: Model input ``(H, W)``; position embeddings are resampled to it.
        patch_padding: Patch-conv padding (official: 2 for pose/normal, 0 for seg/depth).
        backbone_overrides: Extra architecture arguments (e.g. ``drop_path_rate``).
        allow_random_init: When registered weights cannot be found or downloaded, warn loudly and
            continue from random init instead of failing (used by the offline demo).
        offline_fallback_backbone: With ``allow_random_init``, the registered backbone to train
            instead when the weights are unavailable (the demos' small one, which learns from
            random init in minutes on a CPU). ``None``: keep ``backbone``. The run then records
            this backbone and ``weights=None``, so its checkpoint reloads as what was trained.
        freeze_backbone: Freeze the whole backbone (LoRA adapters included): train the head.
        freeze_blocks: Freeze the embeddings and the first N blocks.
        unfreeze_at_epoch: Unfreeze what ``freeze_backbone`` / ``freeze_blocks`` froze at the
            start of this epoch (0-based); ``None`` keeps it frozen for the whole run.
        grad_checkpointing: Recompute each backbone block in backward to save activation memory.
        head_checkpointing: Recompute each upsampling/conv stage of the head in backward too
            (the official heads' activations at 1024x768 outweigh a checkpointed backbone's).
        lora: LoRA adapters on the backbone's attention/MLP linears (``{r, alpha, dropout,
            targets}``, see :class:`sapiens_kit.finetune.LoraOptions`); the backbone's own
            weights are then frozen. ``None``: full fine-tuning.
        lr: Base learning rate (the head's; deeper-to-shallower blocks get less with layer decay).
        weight_decay: AdamW weight decay (not applied to 1-D params, biases, pos_embed).
        layer_decay: Layer-wise LR decay rate (official 0.85); ``None`` disables it.
        optimizer: ``adamw`` or ``sgd``.
        betas: AdamW betas.
        schedule: ``poly``, ``cosine``, ``multistep`` or ``constant`` after warm-up, in steps.
        warmup_steps: Linear warm-up length in optimizer steps.
        milestones: For ``multistep``: fractions of training (<1) or step numbers.
    """

    def __init__(
        self,
        backbone: str = "sapiens_0_3b",
        weights: str | None = None,
        img_size: Sequence[int] = (1024, 768),
        patch_padding: int = 0,
        backbone_overrides: dict[str, Any] | None = None,
        allow_random_init: bool = False,
        offline_fallback_backbone: str | None = None,
        freeze_backbone: bool = False,
        freeze_blocks: int = 0,
        unfreeze_at_epoch: int | None = None,
        grad_checkpointing: bool = False,
        head_checkpointing: bool = False,
        lora: dict[str, Any] | None = None,
        lr: float = 5e-4,
        weight_decay: float = 0.1,
        layer_decay: float | None = 0.85,
        optimizer: str = "adamw",
        betas: Sequence[float] = (0.9, 0.999),
        schedule: str = "poly",
        warmup_steps: int = 0,
        warmup_start_factor: float = 1e-3,
        milestones: Sequence[float] = (),
        gamma: float = 0.1,
    ) -> None:
        super().__init__()
        # Collects the arguments of every __init__ in the subclass chain (torchgeo's pattern).
        self.save_hyperparameters()
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.configure_models()

    # ----------------------------------------------------------------- model construction
    def configure_models(self) -> None:
        """Build backbone and head, then load weights (backbone and, when present, head)."""
        hp = self.hparams
        if hp.weights and not self._weights_available(hp.weights):
            self._fall_back_to_random_init()
        self.backbone = create_backbone(
            hp.backbone, img_size=self.img_size, patch_padding=hp.patch_padding,
            **(hp.backbone_overrides or {}),
        )
        self.head = self.build_head(self.backbone.embed_dim)
        cfg = get_pretrained_cfg(hp.weights if hp.weights and is_registered_weights(hp.weights)
                                 else hp.backbone)
        # Plain floats, not buffers: FSDP mixed precision and bf16-true cast buffers, which
        # would round 123.675 to 123.5 and shift every input (see models/sapiens_model.py).
        self._norm = (tuple(float(m) * 255 for m in cfg.mean),
                      tuple(float(v) * 255 for v in cfg.std))
        if hp.weights:
            self._load_weights(hp.weights)
        if hp.get("lora"):
            apply_lora(self.backbone, hp.lora)
        self._configure_freezing()
        if hp.get("grad_checkpointing"):
            self.backbone.set_grad_checkpointing(True)
        if hp.get("head_checkpointing"):
            self.head.set_grad_checkpointing(True)
        # Shapes as built: FSDP later turns every parameter into a flat 1-D shard view.
        self._param_ndims = {name: p.ndim for name, p in self.named_parameters()}

    # ----------------------------------------------------------------- freezing
    def _configure_freezing(self) -> None:
        """Freeze what ``freeze_backbone`` / ``freeze_blocks`` ask (see ``finetune/freezing``)."""
        hp = self.hparams
        blocks = int(hp.get("freeze_blocks") or 0)
        num_layers = self.backbone.num_layers
        check_freezing(hp.freeze_backbone, blocks, hp.get("unfreeze_at_epoch"), num_layers,
                       hp.backbone)
        layout = self.backbone.block_layout
        # What can ever train (everything, or with LoRA the adapters and the head), and what
        # is frozen until ``unfreeze_at_epoch``.
        self._trainable, self._frozen = freeze(
            self.named_parameters(), hp.freeze_backbone, blocks,
            lambda name: layer_id(name, num_layers, layout))

    def optimized_parameter_names(self) -> set[str]:
        """Parameters the optimizer holds: trainable now or after ``unfreeze_at_epoch``."""
        if self.hparams.get("unfreeze_at_epoch") is not None:
            return set(self._trainable)
        return self._trainable - self._frozen

    def unfreeze_backbone(self) -> None:
        """Make the parameters frozen by ``freeze_backbone`` / ``freeze_blocks`` trainable (and
        re-wrap a DDP model, see ``finetune.freezing.unfreeze``)."""
        unfreeze(self, self._frozen, self._trainer)
        self._frozen = set()

    #: Optimizer steps of the whole run, which the LR schedule spans (set when training starts).
    _schedule_steps: int = 1

    def on_train_start(self) -> None:
        """Size the LR schedule, and check it, now that the run's data are loaded.

        Not in ``configure_optimizers``: asking ``trainer.estimated_stepping_batches`` there makes
        Lightning build the training loader before it has restored the loader's position from
        the checkpoint, so a mid-epoch resume would restart the epoch.
        """
        hp = self.hparams
        self._schedule_steps = int(self.trainer.estimated_stepping_batches)
        check_schedule(self.trainer, self._schedule_steps, hp.warmup_steps, hp.milestones,
                       hp.schedule)

    def on_train_epoch_start(self) -> None:
        """Unfreeze at ``unfreeze_at_epoch`` (also when resuming past it)."""
        at = self.hparams.get("unfreeze_at_epoch")
        if at is not None and self.current_epoch >= int(at):
            self.unfreeze_backbone()

    # ----------------------------------------------------------------- LoRA export
    def merge_lora(self) -> nn.Module:
        """A plain copy of the backbone with LoRA folded into its weights (export uses it).

        Its state dict loads into the backbone of a task built without ``lora``; without LoRA it
        is a copy of the backbone. The task itself is unchanged.
        """
        import copy

        return merge_lora(self.backbone) if has_lora(self.backbone) else copy.deepcopy(
            self.backbone)

    def plain_state_dict(self) -> dict[str, torch.Tensor]:
        """The task's state dict with LoRA merged: loads into the same task without ``lora``."""
        backbone = {f"backbone.{k}": v for k, v in self.merge_lora().state_dict().items()}
        rest = {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}
        return {**backbone, **rest}

    def _weights_available(self, weights: str) -> bool:
        """Whether ``weights`` can be had (cache, file or download); ``False`` only when they
        are unavailable and ``allow_random_init`` lets the run go on without them."""
        try:
            resolve_source(weights)
        except WeightsUnavailableError as err:
            if not self.hparams.allow_random_init:
                raise
            self._unavailable_reason = str(err)
            return False
        return True

    def _fall_back_to_random_init(self) -> None:
        """Say loudly that this run starts from random weights (and on which backbone), and
        record what is actually trained in the hyperparameters the checkpoints store."""
        hp = self.hparams
        asked, fallback = hp.backbone, hp.get("offline_fallback_backbone")
        if fallback and fallback != asked:
            hp.backbone = fallback
            what = (f"Training the small '{fallback}' backbone (Sapiens architecture, fewer and "
                    f"narrower blocks) instead of '{asked}', so the demo learns visibly in minutes")
        else:
            what = f"Training '{asked}'"
        log.warning(
            "\n%s\n  STARTING FROM RANDOM WEIGHTS: %s could not be loaded.\n  %s from RANDOM "
            "initialisation; results will be far from a fine-tuned Sapiens.\n  Why: %s\n%s",
            _BANNER, hp.weights, what, self.__dict__.pop("_unavailable_reason", "unavailable"),
            _BANNER,
        )
        hp.weights = None

    def _load_weights(self, weights: str) -> None:
        head_sd = load_pretrained(self.backbone, weights)
        if head_sd:
            self.load_head_weights(head_sd)

    def build_head(self, in_channels: int) -> nn.Module:
        """Create the task head for a backbone of width ``in_channels``."""
        raise NotImplementedError

    def load_head_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint's head strictly; a differently sized output layer is re-initialised.

        Fine-tuning an official head onto a new label set keeps every layer but the last.
        """
        own = self.head.state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if missing or unexpected:
            raise WeightsError(
                f"head weights do not match {type(self.head).__name__}: "
                f"missing {missing[:6]}, unexpected {unexpected[:6]}"
            )
        out_layer = self.output_layer_name
        resized = [k for k in own if own[k].shape != state_dict[k].shape]
        if any(not k.startswith(out_layer + ".") for k in resized):
            raise WeightsError(f"head weights have other shapes than the model: {resized[:6]}")
        if resized:
            log.warning(
                "checkpoint head has %s outputs, this task %s: re-initialising %s",
                int(state_dict[f"{out_layer}.weight"].shape[0]),
                int(own[f"{out_layer}.weight"].shape[0]), out_layer,
            )
            state_dict = {k: v for k, v in state_dict.items() if k not in resized}
            state_dict.update({k: own[k] for k in resized})
        self.head.load_state_dict(state_dict, strict=True)

    #: Name of the head's final layer, the one allowed to change size when fine-tuning.
    output_layer_name = "conv_seg"

    # ----------------------------------------------------------------- forward helpers
    @property
    def torch_model(self) -> SapiensModel:
        """normalise -> backbone -> head as a plain torch module sharing this task's ``backbone``
        and ``head`` (not registered: the state-dict keys stay ``backbone.*`` and ``head.*``)."""
        model = self.__dict__.get("_torch_model")
        if model is None or model.backbone is not self.backbone or model.head is not self.head:
            model = SapiensModel(self.backbone, self.head, *self._norm)
            self.__dict__["_torch_model"] = model
        return model

    @property
    def pixel_mean(self) -> torch.Tensor:
        """Per-channel mean on the 0-255 scale, float32 ``(1, 3, 1, 1)``."""
        return self.torch_model.pixel_mean

    @property
    def pixel_std(self) -> torch.Tensor:
        """Per-channel standard deviation on the 0-255 scale, float32 ``(1, 3, 1, 1)``."""
        return self.torch_model.pixel_std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float 0-255 RGB -> normalised float32 input."""
        return self.torch_model.normalize(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Raw head output for uint8 images ``(B, 3, H, W)``."""
        return self.torch_model(images)

    def log_computed(self, metrics: dict[str, Any], prog_bar: Sequence[str] = ()) -> None:
        """Log epoch results of a torchmetrics ``compute()``.

        torchmetrics has already reduced its states over all ranks, so every rank holds the same
        values. The sync Lightning asks for is then a ``max`` of equal numbers, which is exact
        (a float mean of N equal values need not be) and silences its "not synced" warning.
        """
        for name, value in metrics.items():
            self.log(name, value, prog_bar=name in prog_bar, sync_dist=True, reduce_fx="max")

    #: The run's data config, set by the training app (``callbacks.RecordData``) and written
    #: into every checkpoint so that ``evaluate`` without ``data=`` can score on the same data.
    data_record: dict[str, Any] | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the task class (tools refuse a wrong one), the RNG states (exact resume) and
        the run's data config (see :attr:`data_record`)."""
        from sapiens_kit.callbacks.checkpoints import DATA_KEY

        cls = type(self)
        checkpoint["sapiens_kit"] = {"task_class": f"{cls.__module__}.{cls.__qualname__}",
                                     "rng": rng_state()}
        if self.data_record is not None:
            checkpoint[DATA_KEY] = self.data_record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """When ``trainer.fit(ckpt_path=...)`` resumes, continue the random streams (shuffling,
        dropout) where the run stopped.

        Lightning restores the checkpoint before it builds the optimizer and, through
        ``estimated_stepping_batches``, the first training iterator, whose seeds come from the
        global generator; the sanity check that follows runs with isolated RNG state. A
        checkpoint written on an epoch's last batch gets its loop state fixed first
        (:mod:`sapiens_kit.callbacks.resume_fix`).
        """
        from lightning.pytorch.trainer.states import TrainerFn

        if self._trainer is None or self.trainer.state.fn != TrainerFn.FITTING:
            return
        # Lightning mis-restores a checkpoint written on an epoch's last batch (see the module).
        from sapiens_kit.callbacks.resume_fix import fix_last_batch_checkpoint

        fix_last_batch_checkpoint(checkpoint)
        state = checkpoint.get("sapiens_kit", {}).get("rng")
        if state is not None:
            set_rng_state(state)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        """Lightning's loader, without fetching the pretrained ``weights`` again (the checkpoint
        holds every weight); pass ``weights=...`` to override."""
        kwargs.setdefault("weights", None)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def setup(self, stage: str) -> None:
        """Refuse option combinations the chosen strategy cannot run, before any work."""
        from lightning.pytorch.strategies import FSDPStrategy

        if stage != "fit" or not isinstance(self.trainer.strategy, FSDPStrategy):
            return
        if self.hparams.get("unfreeze_at_epoch") is not None:
            raise ValueError(
                "model.unfreeze_at_epoch is not supported with trainer=fsdp: FSDP fixes which "
                "parameters train when it shards them. Use trainer=ddp, or train the frozen "
                "phase and the full phase as two runs (weights=ckpt:<first run>.ckpt)."
            )
        if self.hparams.get("lora"):
            raise ValueError(
                "model.lora is not supported with trainer=fsdp: FSDP would shard the frozen "
                "base weights together with the adapters (no memory saved on them, and the "
                "adapter checkpoint layout changes). LoRA already leaves only a few MB of "
                "trainable state: use trainer=gpu or trainer=ddp with model.lora, plus "
                "model.grad_checkpointing=true."
            )

    # ----------------------------------------------------------------- optimisation
    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Lightning's clipping, except by norm under FSDP, where the norm has to be taken over
        all shards (FSDP's own ``clip_grad_norm_``; Lightning refuses norm clipping there)."""
        from torch.distributed.fsdp import FullyShardedDataParallel

        model = self.trainer.strategy.model
        if gradient_clip_val and isinstance(model, FullyShardedDataParallel) and (
            gradient_clip_algorithm in (None, "norm")
        ):
            model.clip_grad_norm_(float(gradient_clip_val))
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with layer-wise decay groups and a per-step warm-up + decay schedule."""
        hp = self.hparams
        groups = param_groups(
            self.named_parameters(), self.backbone.num_layers, hp.lr, hp.weight_decay,
            hp.layer_decay, include=self.optimized_parameter_names(), ndims=self._param_ndims,
            layout=self.backbone.block_layout,
        )
        if not groups:
            raise ValueError("nothing to optimise: every parameter is frozen")
        optimizer = build_optimizer(groups, hp.optimizer, hp.lr, hp.betas)
        scheduler = build_scheduler(
            optimizer, schedule=hp.schedule, total_steps=lambda: self._schedule_steps,
            warmup_steps=hp.warmup_steps,
            warmup_start_factor=hp.warmup_start_factor, milestones=hp.milestones,
            gamma=hp.gamma,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }
