"""The task registry finds tasks by subclass discovery, wherever they are defined."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from omegaconf import OmegaConf
from torch import nn

from sapiens_kit.errors import UserError
from sapiens_kit.models.heads.seg import SegmentationHead
from sapiens_kit.tasks import BaseTask, SegmentationTask
from sapiens_kit.tasks.dense import DenseTask
from sapiens_kit.tasks.registry import (
    class_path,
    get_task_class,
    load_class,
    task_classes,
    task_key,
)
from sapiens_kit.utils.cli import requested_task


@pytest.fixture
def toy() -> Iterator[type]:
    """A task defined in a test (not at module level, so other modules' registry-parametrised
    tests never see it): registered as soon as the class exists."""

    class ToyTask(BaseTask):
        key = "toy"

        def build_head(self, in_channels: int) -> nn.Module:
            return SegmentationHead(in_channels, 2, deconv_channels=[8], conv_channels=[8])

    class TweakedSegmentation(SegmentationTask):
        """A user's variant of a task: a seg task that does not replace the registered one."""

    ToyTask.tweaked = TweakedSegmentation  # type: ignore[attr-defined]
    yield ToyTask
    del ToyTask, TweakedSegmentation
    gc.collect()


def test_builtin_and_test_defined_tasks_are_registered(toy: type) -> None:
    tasks = task_classes()
    assert {"seg", "pose", "depth", "normal", "toy"} <= set(tasks)
    assert tasks["seg"] is SegmentationTask and tasks["toy"] is toy
    assert BaseTask not in tasks.values() and DenseTask not in tasks.values()
    assert toy.tweaked not in tasks.values()  # type: ignore[attr-defined]


def test_keys_of_objects_and_classes(toy: type) -> None:
    assert task_key(SegmentationTask) == "seg"
    assert task_key(toy.tweaked) == "seg"  # type: ignore[attr-defined]
    assert task_key(toy(backbone="sapiens_test", img_size=(32, 32))) == "toy"
    with pytest.raises(UserError, match="not a registered task"):
        task_key(DenseTask)


def test_unknown_key_lists_the_keys(toy: type) -> None:
    with pytest.raises(UserError, match=r"unknown task 'nope' \(choose from .*seg.*toy"):
        get_task_class("nope")


def test_stored_class_paths_load(toy: type) -> None:
    assert load_class("sapiens_kit.tasks.seg.SegmentationTask") is SegmentationTask
    assert load_class(class_path(toy)) is toy  # found in the registry, not by import
    with pytest.raises(UserError, match="cannot be imported"):
        load_class("sapiens_kit.tasks.seg.NoSuchTask")
    with pytest.raises(UserError, match="not a sapiens_kit task class"):
        load_class("sapiens_kit.visualize.hstack")


def test_requested_task_reads_the_model_class(toy: type) -> None:
    cfg: Any = OmegaConf.create({"model": {"_target_": class_path(toy)}})
    assert requested_task(cfg) == "toy"
    cfg = OmegaConf.create({"model": {"_target_": "sapiens_kit.tasks.NormalTask"}})
    assert requested_task(cfg) == "normal"
