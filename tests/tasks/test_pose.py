"""PoseTask: official checkpoints, flip test, and train/val/predict through Hydra on CPU."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from sapiens_kit.tasks import PoseTask
from sapiens_kit.train import train
from sapiens_kit.utils.config import CONFIG_DIR, asset_path
from tests.helpers import SHARED_DATA, compose_cfg, tiny_task, to_meta_keys

MINI = SHARED_DATA / "coco_wholebody_mini"
DEMO = Path(asset_path("demo_pose"))
SMALL_HEAD = {"deconv_channels": [16, 16], "conv_channels": [16, 16]}


def small_task(**kwargs: object) -> PoseTask:
    """A tiny PoseTask at 64x48 (coco17 unless ``keypoints`` is given), in training mode."""
    return tiny_task("pose", patch_padding=2, head=SMALL_HEAD, **kwargs).train()


def test_official_checkpoint_loads_strictly(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    source = small_task(keypoints="coco_wholebody133")
    for p in source.parameters():
        torch.nn.init.normal_(p)
    state = {f"backbone.{k}": v for k, v in to_meta_keys(source.backbone.state_dict()).items()}
    assert "backbone.layers.0.ffn.layers.0.0.weight" in state
    state.update({f"head.{k}": v.clone() for k, v in source.head.state_dict().items()})
    assert "head.deconv_layers.3.weight" in state and "head.final_layer.bias" in state
    ckpt = tmp_path / "sapiens_test_coco_wholebody.pth"
    torch.save({"state_dict": state, "meta": {}}, ckpt)
    loaded = small_task(keypoints="coco_wholebody133", weights=str(ckpt))
    for name, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    # Onto another keypoint set only the final layer is re-initialised.
    with caplog.at_level(logging.WARNING):
        coco = small_task(keypoints="coco17", weights=str(ckpt))
    assert "re-initialising final_layer" in caplog.text
    assert coco.head.final_layer.weight.shape[0] == 17
    assert torch.equal(coco.head.conv_layers[3].weight, source.head.conv_layers[3].weight)


def test_flip_test_is_mirror_symmetric() -> None:
    task = small_task(keypoints="coco_wholebody133").eval()
    images = torch.randint(0, 255, (2, 3, 64, 48), dtype=torch.uint8)
    with torch.no_grad():
        plain = task.predict_heatmaps(images)
        mirrored = task.predict_heatmaps(images.flip(-1))
    expected = plain.flip(-1)[:, task.flip_index]
    torch.testing.assert_close(mirrored, expected, rtol=1e-4, atol=1e-6)
    assert plain.shape == (2, 133, 16, 12)


def test_fast_dev_run_through_hydra(tmp_path: Path) -> None:
    cfg = compose_cfg("task=pose", "backbone=sapiens_test", "debug=fdr",
                      f"paths.output_dir={tmp_path}")
    assert cfg.monitor == "val/AP" and cfg.model.patch_padding == 2
    metrics, objects = train(cfg)
    assert "train/loss" in metrics and "val/AP" in metrics and "val/AP/left_hand" in metrics
    assert isinstance(objects["model"], PoseTask)


@pytest.mark.parametrize(("ann", "kset", "parts"), [("annotations.json", "coco_wholebody133", 5),
                                                    ("annotations_coco17.json", "coco17", 0)])
def test_train_validate_predict_on_the_mini_set(tmp_path: Path, ann: str, kset: str,
                                                parts: int) -> None:
    root = MINI
    # sapiens_test's 3-deconv head outputs 1/2-resolution heatmaps: targets are re-encoded.
    cfg = compose_cfg(
        "task=pose", "backbone=sapiens_test", "data=coco_wholebody", f"data.root={root}",
        f"data.train_ann={ann}", f"data.val_ann={ann}", "data.img_dir=images",
        "data.val_img_dir=images", f"data.keypoints={kset}", "data.num_workers=0",
        "data.batch_size=6", "img_size=[64,48]", "trainer=cpu", "trainer.max_epochs=1",
        "logger=csv", "num_overlays=2", f"paths.output_dir={tmp_path}",
    )
    metrics, objects = train(cfg)
    assert 0.0 <= metrics["val/AP"] <= 1.0
    assert sum(k.startswith("val/AP/") for k in metrics) == parts
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["val/AP"] == metrics["val/AP"]
    results = json.loads((tmp_path / "val_results.json").read_text())
    assert results and {"image_id", "score", "keypoints"} <= set(results[0])
    preds = tmp_path / "predictions"
    assert len(list(preds.glob("*_overlay.jpg"))) == 2
    record = json.loads(next(preds.glob("*_keypoints.json")).read_text())
    assert record["keypoint_set"] == kset and record["boxes"] == "ground_truth"
    assert len(record["instances"][0]["keypoints"]) == objects["model"].kset.num_keypoints
    assert (preds / "results.json").is_file()
    ckpt = tmp_path / "checkpoints" / "best.ckpt"
    if parts:  # the predict app on image files, with the annotation boxes as detections
        from sapiens_kit.predict import predict

        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            pcfg = compose(config_name="predict", return_hydra_config=False, overrides=[
                "task=pose", f"ckpt={ckpt}", f"input={root / 'images'}",
                f"bboxes={root / ann}", "accelerator=cpu", f"paths.output_dir={tmp_path}"])
        names = {w.name for w in predict(pcfg, tmp_path / "app")}
        stems = [i.stem for i in (root / "images").glob("*.jpg")]
        assert {f"{s}_{kind}" for s in stems for kind in ("keypoints.json", "overlay.jpg")} | {
            "results.json"} <= names
        record = json.loads((tmp_path / "app" / "000000196141_keypoints.json").read_text())
        # "detections": read by the task itself; "bboxes": by predict's box-file detector.
        assert record["boxes"] in ("detections", "bboxes") and len(record["instances"]) == 5


def test_predict_without_boxes_uses_the_whole_image(tmp_path: Path) -> None:
    task = small_task().eval()
    ds = task.predict_dataset(sorted((DEMO / "images").glob("*.jpg"))[:2])
    batch = {"image": torch.stack([ds[0]["image"], ds[1]["image"]]),
             "meta": [ds[0]["meta"], ds[1]["meta"]]}
    with torch.no_grad():
        preds = task.predict_step(batch, 0)
    assert preds[0]["keypoints"].shape == (17, 2)
    written = task.save_predictions([preds], tmp_path)
    record = json.loads((tmp_path / "000000000785_keypoints.json").read_text())
    assert record["boxes"] == "whole_image" and "whole image" in record["note"]
    assert len(written) == 5  # 2 x (json, overlay) + COCO results.json


@pytest.mark.slow
def test_tiny_model_overfits_the_mini_set(tmp_path: Path) -> None:
    cfg = compose_cfg(
        "task=pose", "backbone=sapiens_test", "data.keypoints=coco17",
        "data.ann_keypoints=coco_wholebody133", "data.augment=false", "data.batch_size=12",
        "img_size=[128,96]", "trainer=cpu", "trainer.max_epochs=200",
        "trainer.check_val_every_n_epoch=100", "model.lr=2e-3", "model.layer_decay=null",
        "model.schedule=constant", "model.warmup_steps=20", "model.weight_decay=0",
        "+model.backbone_overrides={embed_dim:128,depth:4,num_heads:4}",
        "model.head.deconv_channels=[64,64]", "model.head.conv_channels=[64,64]",
        # Un-augmented training never sees mirrored people, so score without the flip test.
        "model.flip_test=false",
        "test_after_fit=false", "num_overlays=0", "logger=csv", f"paths.output_dir={tmp_path}",
    )
    metrics, _ = train(cfg)
    print(f"overfit: val/AP {metrics['val/AP']:.3f}, train/loss {metrics['train/loss']:.2e}")
    assert metrics["val/AP"] > 0.9, metrics["val/AP"]
