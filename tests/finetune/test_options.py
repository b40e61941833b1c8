"""Fine-tuning options on sapiens_test: layer decay, freezing, LoRA, EMA, checkpointing,
accumulation and schedules, precision presets, recipe presets, and bad option combinations."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sapiens_kit.callbacks import EMA, NonFiniteLossError
from sapiens_kit.finetune import merge_lora
from sapiens_kit.models import create_backbone
from sapiens_kit.tasks import SegmentationTask
from sapiens_kit.tasks.optim import layer_id, lr_lambda, param_groups
from sapiens_kit.train import train
from tests.helpers import compose_cfg, config_names, run_cfg, tiny_task, write_mask_folder

HEAD = {"deconv_channels": [8, 8, 8], "conv_channels": [8, 8, 8], "dropout": 0.0}


def tiny(**kwargs: Any) -> SegmentationTask:
    """A 2-block sapiens_test segmentation task at 32x32, in training mode."""
    return tiny_task("seg", img_size=(32, 32), head=HEAD, **kwargs).train()


def by_name(groups: list[dict[str, Any]]) -> dict[str, tuple[float, float, int]]:
    return {n: (g["lr"], g["weight_decay"], g["layer_id"]) for g in groups
            for n in g["param_names"]}


def trainable(task: L.LightningModule) -> set[str]:
    return {n for n, p in task.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_folder(tmp_path_factory.mktemp("ft") / "seg", n=4)


# ------------------------------------------------------------------------------ layer decay
def test_layer_decay_assignments_follow_the_official_constructor() -> None:
    task = tiny()
    lr, rate, L_ = 1e-3, 0.85, 2
    got = by_name(param_groups(task.named_parameters(), L_, lr, 0.1, rate))
    expect_id = {
        "backbone.pos_embed": 0, "backbone.patch_embed.proj.weight": 0,
        "backbone.patch_embed.proj.bias": 0, "backbone.blocks.0.attn.qkv.weight": 1,
        "backbone.blocks.0.norm1.weight": 1, "backbone.blocks.1.mlp.fc2.weight": 2,
        "backbone.blocks.1.mlp.fc2.bias": 2, "backbone.norm.weight": 3, "backbone.norm.bias": 3,
        "head.conv_seg.weight": 3, "head.conv_seg.bias": 3, "head.deconv_layers.0.weight": 3,
    }
    for name, lid in expect_id.items():
        assert got[name][2] == lid, name
        assert got[name][0] == pytest.approx(lr * rate ** (L_ + 1 - lid)), name
    params = dict(task.named_parameters())
    for name, (_, wd, _) in got.items():
        exempt = params[name].ndim <= 1 or name == "backbone.pos_embed"  # 1-D, biases, pos_embed
        assert wd == (0.0 if exempt else 0.1), name
    assert got["backbone.pos_embed"][1] == 0.0 and got["backbone.norm.bias"][1] == 0.0
    assert got["backbone.patch_embed.proj.weight"][1] == 0.1
    assert got["head.conv_seg.weight"][1] == 0.1
    # every parameter is in exactly one group, no duplicates
    assert sorted(got) == sorted(n for n, _ in task.named_parameters())


def test_layer_decay_relates_to_timm_param_groups_as_documented() -> None:
    """timm's BEiT-style helper numbers the backbone alone: embeddings 0, block i -> i+1, and
    the final norm shares the last block's id L with scale 1. The official constructor puts the
    final norm with the head at L+1, so every other backbone scale is one factor of the rate
    smaller than timm's; the weight-decay split is the same."""
    from timm.optim import param_groups_layer_decay

    rate = 0.85
    backbone = create_backbone("sapiens_test", img_size=(32, 32))
    timm_groups = param_groups_layer_decay(backbone, weight_decay=0.1, layer_decay=rate,
                                           no_weight_decay_list=backbone.no_weight_decay())
    timm_map = {id(p): (g["lr_scale"], g["weight_decay"]) for g in timm_groups
                for p in g["params"]}
    ours = param_groups([(f"backbone.{n}", p) for n, p in backbone.named_parameters()],
                        backbone.num_layers, 1.0, 0.1, rate)
    for g in ours:
        for name, p in zip(g["param_names"], g["params"], strict=True):
            timm_scale, timm_wd = timm_map[id(p)]
            final_norm = name.startswith("backbone.norm.")
            expected = 1.0 if final_norm else timm_scale * rate
            assert g["lr_scale"] == pytest.approx(expected), name
            assert g["weight_decay"] == timm_wd, name


def test_layer_ids_see_through_wrappers_and_sapiens2_names() -> None:
    assert layer_id("backbone.blocks.3._fsdp_wrapped_module.attn.qkv.weight", 24) == 4
    assert layer_id("backbone._fsdp_wrapped_module.pos_embed", 24) == 0
    assert layer_id("backbone.blocks.0.attn.qkv.lora_A.default.weight", 24) == 1
    assert layer_id("backbone.model.blocks.11.mlp.fc1.weight", 12) == 12
    assert layer_id("backbone.model.reg_token", 12) == 0
    assert layer_id("backbone.model.norm.weight", 12) == 13
    assert layer_id("head.conv_seg.weight", 12) == 13


def test_layer_decay_off_gives_base_lr_everywhere() -> None:
    groups = param_groups(tiny().named_parameters(), 2, 1e-3, 0.1, None)
    assert {g["lr"] for g in groups} == {1e-3}


# ------------------------------------------------------------------------------ schedules
def test_schedules_in_steps() -> None:
    f = lr_lambda("poly", total_steps=100, warmup_steps=10, warmup_start_factor=1e-3)
    assert f(0) == pytest.approx(1e-3) and f(5) == pytest.approx(1e-3 + (1 - 1e-3) * 0.5)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == 0.0
    c = lr_lambda("cosine", total_steps=100, warmup_steps=0)
    assert c(50) == pytest.approx(0.5) and c(100) == pytest.approx(0.0)
    # The pose recipe: x0.1 at epochs 170 and 200 of 210, given as fractions of the run.
    m = lr_lambda("multistep", total_steps=210 * 37, milestones=[0.8095238, 0.9523810])
    assert m(170 * 37 - 1) == 1.0 and m(170 * 37) == pytest.approx(0.1)
    assert m(200 * 37 - 1) == pytest.approx(0.1) and m(200 * 37) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_lambda("linear", total_steps=10)


class LrRecorder(L.Callback):
    """Records (global_step, lr of the head group) after every training batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.seen.append((trainer.global_step, trainer.optimizers[0].param_groups[-1]["lr"]))


def test_accumulation_schedule_counts_optimizer_steps(data_root: Path, tmp_path: Path) -> None:
    """4 batches/epoch x 3 epochs with accumulation 2 = 6 optimizer steps; the LR follows the
    warm-up + poly schedule over those 6 steps and changes only when the optimizer steps."""
    cfg = run_cfg(data_root, tmp_path / "o", "data.batch_size=1", "trainer.max_epochs=3",
                  "trainer.accumulate_grad_batches=2", "model.warmup_steps=2", "model.lr=1e-2",
                  "callbacks=none", "+trainer.enable_checkpointing=false",
                  "+trainer.limit_val_batches=0")
    datamodule, model, trainer = None, None, None
    from sapiens_kit.train import build

    datamodule, model, trainer = build(cfg)
    rec = LrRecorder()
    trainer.callbacks.append(rec)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 6
    f = lr_lambda("poly", total_steps=6, warmup_steps=2)
    steps = [s for s, _ in rec.seen]
    assert steps == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    for step, lr in rec.seen:
        assert lr == pytest.approx(1e-2 * f(step)), (step, lr)


# ------------------------------------------------------------------------------ freezing
def test_freeze_backbone_and_first_blocks() -> None:
    head_only = tiny(freeze_backbone=True)
    assert trainable(head_only) == {n for n, _ in head_only.named_parameters()
                                    if n.startswith("head.")}
    assert head_only.optimized_parameter_names() == trainable(head_only)
    first = tiny(freeze_blocks=1)
    frozen = {n for n, p in first.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in first.named_parameters() if n.startswith(
        ("backbone.pos_embed", "backbone.patch_embed", "backbone.blocks.0."))}
    groups = first.configure_optimizers()["optimizer"].param_groups
    assert {g["layer_id"] for g in groups} == {2, 3}


def test_unfreeze_keeps_frozen_params_in_the_optimizer() -> None:
    task = tiny(freeze_backbone=True, unfreeze_at_epoch=1)
    opt = task.configure_optimizers()["optimizer"]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) in in_opt for _, p in task.named_parameters())
    assert not task.backbone.pos_embed.requires_grad
    task.unfreeze_backbone()
    assert all(p.requires_grad for p in task.parameters())


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"freeze_blocks": 3}, "freeze_blocks=3 is outside 0..2"),
    ({"unfreeze_at_epoch": 2}, "unfreeze_at_epoch needs model.freeze_backbone"),
    ({"lora": {"r": 4, "rank": 8}}, r"model.lora: unknown keys \['rank'\]"),
    ({"lora": {"targets": ["conv"]}}, "matches no linear layer"),
])
def test_bad_freeze_and_lora_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


# ------------------------------------------------------------------------------ LoRA
def test_lora_trains_adapters_and_head_only() -> None:
    plain, lora = tiny(), tiny(lora={"r": 4, "alpha": 8})
    lora.load_state_dict(plain.state_dict(), strict=False)
    names = trainable(lora)
    assert names and all(n.startswith("head.") or ".lora_" in n for n in names)
    assert sum(".lora_A." in n for n in names) == 2 * 4  # 2 blocks x qkv, proj, fc1, fc2
    # B starts at zero: the adapted model computes the base model's function.
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    base_sd = {k.replace(".base_layer", ""): v for k, v in lora.state_dict().items()
               if ".lora_" not in k}
    plain.load_state_dict(base_sd)
    torch.testing.assert_close(lora.eval()(x), plain.eval()(x))


def test_merge_lora_gives_plain_weights_for_a_task_without_lora() -> None:
    lora = tiny(lora={"r": 4, "targets": ["attn", "fc1"]})
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if ".lora_B." in n:
                p.normal_(std=0.5)
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    expected = lora.eval()(x)
    plain = tiny()
    plain.backbone.load_state_dict(lora.merge_lora().state_dict())  # strict
    plain.head.load_state_dict(lora.head.state_dict())
    torch.testing.assert_close(plain.eval()(x), expected, atol=1e-5, rtol=1e-4)
    other = tiny()
    other.load_state_dict(lora.plain_state_dict())  # strict, whole task
    torch.testing.assert_close(other.eval()(x), expected, atol=1e-5, rtol=1e-4)
    # the LoRA task itself is untouched
    assert any(".lora_" in n for n, _ in lora.named_parameters())


def test_lora_on_sapiens2_blocks() -> None:
    from sapiens_kit.finetune import apply_lora

    b = create_backbone("sapiens2_0_1b", img_size=(32, 32), depth=2, embed_dim=32, num_heads=2)
    apply_lora(b, {"r": 2, "targets": ["q_proj", "v_proj"]})
    names = {n for n, p in b.named_parameters() if p.requires_grad}
    assert len(names) == 2 * 2 * 2 and all(".q_proj." in n or ".v_proj." in n for n in names)
    assert isinstance(merge_lora(b).model.blocks[0].attn.q_proj, torch.nn.Linear)


@pytest.mark.parametrize("lora", [None, {"r": 4}])
def test_grad_checkpointing_gives_the_same_gradients(lora: dict[str, Any] | None) -> None:
    """Per-block recomputation changes memory, not results, also with frozen LoRA bases."""
    torch.manual_seed(0)
    ref = tiny(lora=lora)
    ckpt = tiny(lora=lora, grad_checkpointing=True, head_checkpointing=True)
    ckpt.load_state_dict(ref.state_dict())
    if lora:
        with torch.no_grad():
            for m in (ref, ckpt):
                for n, p in m.named_parameters():
                    if ".lora_B." in n:
                        p.fill_(0.01)
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    for m in (ref, ckpt):
        m.train()
        m(x).square().mean().backward()
    assert ckpt.backbone.grad_checkpointing and ckpt.head.grad_checkpointing
    grads = {n: p.grad for n, p in ref.named_parameters() if p.grad is not None}
    assert any(n.startswith("backbone.") for n in grads)
    for n, p in ckpt.named_parameters():
        if n in grads:
            torch.testing.assert_close(p.grad, grads[n], atol=1e-6, rtol=1e-5)


def test_lora_checkpoint_reloads(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    _, objs = train(run_cfg(data_root, out, "trainer.max_epochs=1", "+model.lora={r: 4}"))
    ckpt = out / "checkpoints" / "last.ckpt"
    task = SegmentationTask.load_from_checkpoint(ckpt)
    assert task.hparams.lora == {"r": 4}
    for (n, a), b in zip(task.state_dict().items(), objs["model"].state_dict().values(),
                         strict=True):
        torch.testing.assert_close(a, b, msg=n)


# ------------------------------------------------------------------------------ EMA
class WeightRecorder(L.Callback):
    """Keeps a copy of the head weights after every optimizer step."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           *args: Any) -> None:
        self.steps.append(pl_module.head.conv_seg.weight.detach().clone())


def test_ema_is_validated_and_saved(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    cfg = run_cfg(data_root, out, "callbacks=ema", "callbacks.ema.decay=0.5",
                  "model.freeze_backbone=true", "model.lr=0.05")
    datamodule, model, trainer = __import__("sapiens_kit.train", fromlist=["build"]).build(cfg)
    rec = WeightRecorder()
    trainer.callbacks.insert(0, rec)
    trainer.fit(model, datamodule=datamodule)
    ema = rec.steps[0]
    for w in rec.steps[1:]:
        ema = 0.5 * ema + 0.5 * w
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    torch.testing.assert_close(ckpt["state_dict"]["head.conv_seg.weight"], ema)
    torch.testing.assert_close(ckpt["current_model_state"]["head.conv_seg.weight"],
                               rec.steps[-1])
    # Only the optimised (head) parameters are averaged; the frozen backbone is not copied.
    [cb] = [c for c in trainer.callbacks if isinstance(c, EMA)]
    assert all(n.startswith("head.") for n in cb.average_state_dict())
    reloaded = SegmentationTask.load_from_checkpoint(out / "checkpoints" / "last.ckpt")
    torch.testing.assert_close(reloaded.head.conv_seg.weight, ema)
    # after fit the module holds the average, as Lightning's WeightAveraging does
    torch.testing.assert_close(model.head.conv_seg.weight, ema)


def _fake_trainer(strategy: Any) -> Any:
    return SimpleNamespace(strategy=strategy)


def test_ema_refuses_sharded_and_fully_frozen_models() -> None:
    from lightning.pytorch.strategies import FSDPStrategy

    with pytest.raises(ValueError, match="callbacks=ema does not work with a sharded strategy"):
        EMA().setup(_fake_trainer(FSDPStrategy()), tiny(), "fit")
    frozen = tiny()
    frozen.requires_grad_(False)
    frozen._trainable = set()
    with pytest.raises(ValueError, match="no trainable parameter"):
        EMA().setup(_fake_trainer(None), frozen, "fit")
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"freeze_backbone": True, "unfreeze_at_epoch": 1},
     "unfreeze_at_epoch is not supported with trainer=fsdp"),
    ({"lora": {"r": 2}}, "model.lora is not supported with trainer=fsdp"),
])
def test_fsdp_refuses_unfreeze_and_lora(kwargs: dict[str, Any], match: str) -> None:
    from lightning.pytorch.strategies import FSDPStrategy

    task = tiny(**kwargs)
    task.trainer = _fake_trainer(FSDPStrategy())  # type: ignore[assignment]
    with pytest.raises(ValueError, match=match):
        task.setup("fit")
    task.setup("validate")  # only training is refused


def test_gradient_clipping_by_norm_and_through_fsdp() -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel

    task = tiny()
    task.trainer = _fake_trainer(SimpleNamespace(model=task))  # type: ignore[assignment]
    task(torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)).sum().mul(1e3).backward()
    task.clip_gradients = lambda opt, val, algo: torch.nn.utils.clip_grad_norm_(  # type: ignore
        task.parameters(), val)
    task.configure_gradient_clipping(None, 1.0, "norm")  # type: ignore[arg-type]
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in task.parameters()]))
    assert norm == pytest.approx(1.0, rel=1e-4)
    calls = []
    fsdp = FullyShardedDataParallel.__new__(FullyShardedDataParallel)
    object.__setattr__(fsdp, "clip_grad_norm_", lambda v: calls.append(v))
    task.trainer = _fake_trainer(SimpleNamespace(model=fsdp))  # type: ignore[assignment]
    task.configure_gradient_clipping(None, 0.5, "norm")  # type: ignore[arg-type]
    assert calls == [0.5]


# ------------------------------------------------------------------------------ bad input
def test_accumulation_larger_than_an_epoch_fails_at_start(data_root: Path,
                                                          tmp_path: Path) -> None:
    cfg = run_cfg(data_root, tmp_path / "o", "data.batch_size=2",
                  "trainer.accumulate_grad_batches=4")
    with pytest.raises(ValueError, match=r"trainer.accumulate_grad_batches=4 is larger than the 2"):
        train(cfg)


def test_accumulation_scheduler_fails_at_start(data_root: Path, tmp_path: Path) -> None:
    cfg = run_cfg(data_root, tmp_path / "o",
                  "+callbacks.acc._target_=lightning.pytorch.callbacks."
                  "GradientAccumulationScheduler", "+callbacks.acc.scheduling={0: 1, 1: 2}")
    with pytest.raises(ValueError, match="GradientAccumulationScheduler"):
        train(cfg)


class NanAt(L.Callback):
    """Turns the loss into NaN from global step ``at`` on (by poisoning a head bias)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             *args: Any) -> None:
        if trainer.global_step == self.at:
            with torch.no_grad():
                pl_module.head.conv_seg.bias.fill_(float("nan"))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    cfg = run_cfg(data_root, out, "trainer.max_epochs=3", "data.batch_size=2")
    from sapiens_kit.train import build

    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(NanAt(3))
    with pytest.raises(NonFiniteLossError, match=r"at optimizer step 3 \(epoch 1, batch 1\)"
                       r".*Last good checkpoint: .*last.ckpt"):
        trainer.fit(model, datamodule=datamodule)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


# ------------------------------------------------------------------------------ presets
def test_bf16_mixed_trains_on_cpu(data_root: Path, tmp_path: Path) -> None:
    cfg = run_cfg(data_root, tmp_path / "o", "trainer.precision=bf16-mixed", "debug=fdr",
                  "model.grad_checkpointing=true", "+model.lora={r: 2}")
    metrics, _ = train(cfg)
    assert math.isfinite(metrics["train/loss"])


@pytest.mark.parametrize("preset", ["ddp", "fsdp", "ddp_sim", "gpu", "gpu_fp16"])
def test_trainer_presets(preset: str) -> None:
    from lightning.pytorch.strategies import FSDPStrategy

    cfg = compose_cfg(f"trainer={preset}")
    OmegaConf.resolve(cfg)
    t = cfg.trainer
    assert t.gradient_clip_val == 1.0
    if preset == "fsdp":
        strategy = instantiate(t.strategy)
        assert isinstance(strategy, FSDPStrategy)
        from timm.models.eva import EvaBlock
        from timm.models.vision_transformer import Block

        assert {Block, EvaBlock} <= set(strategy.kwargs["auto_wrap_policy"]._module_classes)
    if preset == "ddp_sim":
        assert t.accelerator == "cpu" and t.devices == 2
    if preset in ("ddp", "ddp_sim"):
        from lightning.pytorch.strategies import DDPStrategy

        strategy = instantiate(t.strategy)
        assert type(strategy) is DDPStrategy and strategy._ddp_kwargs == {
            "broadcast_buffers": False}
    if preset in ("ddp", "fsdp", "gpu"):
        assert t.precision == "bf16-mixed"


RECIPES = [e for e in config_names("experiment") if e.startswith(("seg_", "depth_", "normal_"))]


@pytest.mark.parametrize("experiment", RECIPES)
def test_official_dense_recipes(experiment: str) -> None:
    cfg = compose_cfg(f"experiment={experiment}")
    OmegaConf.resolve(cfg)
    task, *_, size = experiment.split("_")
    m = cfg.model
    assert m._target_.endswith({"seg": "SegmentationTask", "depth": "DepthTask",
                                "normal": "NormalTask"}[task])
    assert m.backbone == f"sapiens_{experiment.split('_', 3)[-1]}" or m.backbone.endswith(size)
    assert m.weights.endswith(".pretrain_humans300m")
    assert (m.lr, m.weight_decay, m.layer_decay, m.schedule, m.warmup_steps) == (
        5e-4, 0.1, 0.85, "poly", 400)
    assert m.patch_padding == (2 if task == "normal" else 0)
    assert cfg.trainer.max_epochs == 200 and cfg.trainer.gradient_clip_val == 1.0
    assert list(cfg.img_size) == [1024, 768] and cfg.data.batch_size == 2


@pytest.mark.parametrize("task", ["pose", "depth", "normal"])
def test_every_task_trains_with_lora_ema_freezing_and_checkpointing(task: str,
                                                                      tmp_path: Path) -> None:
    """The fine-tuning options go through BaseTask, so every task subclass gets them: a short
    run on the task's demo data, then the LoRA checkpoint reloads and merges into a plain task."""
    out = tmp_path / "o"
    cfg = compose_cfg(
        f"task={task}", "backbone=sapiens_test", "img_size=[64,48]", "trainer=cpu",
        "trainer.max_epochs=2", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "model.warmup_steps=1", "callbacks=ema", "+model.lora={r: 2}", "model.freeze_blocks=1",
        "model.grad_checkpointing=true", "trainer.precision=bf16-mixed", "test_after_fit=false",
        "num_overlays=0", "~logger", "+trainer.enable_progress_bar=false", out=out,
    )
    metrics, objs = train(cfg)
    assert math.isfinite(metrics["train/loss"])
    cls = type(objs["model"])
    lora_task = cls.load_from_checkpoint(out / "checkpoints" / "last.ckpt")
    assert any(".lora_" in n for n, _ in lora_task.named_parameters())
    plain = cls(**{**lora_task.hparams, "lora": None, "weights": None})
    plain.load_state_dict(lora_task.plain_state_dict())


def test_weight_decay_follows_built_shapes_once_parameters_are_flattened() -> None:
    """FSDP (use_orig_params) hands the optimizer flat 1-D shard views: the decay split must
    come from the shapes the task was built with, not from those views."""
    task = tiny()
    flat = [(n, torch.nn.Parameter(p.detach().flatten())) for n, p in task.named_parameters()]
    expected = by_name(param_groups(task.named_parameters(), 2, 1e-3, 0.1, 0.85))
    assert by_name(param_groups(flat, 2, 1e-3, 0.1, 0.85, ndims=task._param_ndims)) == expected
    assert any(wd == 0.1 for _, wd, _ in expected.values())
    # without the built shapes every flattened matrix would lose its weight decay
    assert all(wd == 0.0 for _, wd, _ in by_name(param_groups(flat, 2, 1e-3, 0.1, 0.85)).values())


def test_head_checkpointing_keeps_only_stage_inputs() -> None:
    """The head's stages run under checkpoint in training (fewer saved activations, same
    output) and not when no gradient is needed."""
    torch.manual_seed(0)
    task = tiny(head_checkpointing=True)
    features = torch.randn(1, 32, 4, 4, requires_grad=True)

    def saved(fn: Any) -> int:
        count = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal count
            count += t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(features)
        return count

    task.head.set_grad_checkpointing(False)
    plain_out, plain_saved = task.head(features), saved(task.head)
    task.head.set_grad_checkpointing(True)
    ckpt_out, ckpt_saved = task.head(features), saved(task.head)
    torch.testing.assert_close(ckpt_out, plain_out)
    assert ckpt_saved < plain_saved / 2
    with torch.no_grad():
        torch.testing.assert_close(task.head(features), plain_out)
