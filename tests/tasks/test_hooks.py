"""Task hooks that the end-to-end test does not reach: official-weight arguments, card facts,
and the old ``draw_prediction`` spelling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.models import get_pretrained_cfg
from sapiens_kit.tasks import DepthTask, NormalTask, PoseTask, SegmentationTask
from sapiens_kit.tasks.registry import task_classes
from sapiens_kit.visualize import draw_prediction


@pytest.mark.parametrize(("weights", "keypoints"), [
    ("sapiens_1b.pose_coco", "coco17"),
    ("sapiens_1b.pose_coco_wholebody", "coco_wholebody133"),
    ("sapiens_1b.pose_goliath", "goliath308"),
])
def test_registered_pose_weights_name_their_keypoint_set(weights: str, keypoints: str) -> None:
    pre = get_pretrained_cfg(weights)
    assert pre.keypoint_set == keypoints
    assert PoseTask.arguments_for_weights(pre, {}) == {"keypoints": keypoints}
    # data.keypoints= on the command line wins; unregistered files keep the model's default.
    assert PoseTask.arguments_for_weights(pre, {"keypoints": "coco17"}) == {"keypoints": "coco17"}
    assert PoseTask.arguments_for_weights(None, {}) == {}


def test_seg_weights_get_the_official_vocabulary() -> None:
    args = SegmentationTask.arguments_for_weights(get_pretrained_cfg("sapiens_1b.seg_goliath"), {})
    assert args["num_classes"] == 28 and len(args["class_names"]) == 28
    assert SegmentationTask.arguments_for_weights(None, {}) == args
    assert DepthTask.arguments_for_weights(None, {}) == {} == NormalTask.arguments_for_weights(
        None, {"classes": "x"})


def test_every_task_has_card_facts() -> None:
    for cls in task_classes().values():
        info = cls.card_info
        assert info.title and info.pipeline_tag and info.tag


def test_draw_prediction_takes_one_item_or_a_list() -> None:
    task = SegmentationTask(backbone="sapiens_test", img_size=(32, 32), num_classes=3,
                            head={"deconv_channels": [8], "conv_channels": [8]})
    image = np.full((20, 10, 3), 100, np.uint8)
    label = torch.zeros(20, 10, dtype=torch.uint8)
    label[5:10] = 2
    item = {"label": label, "meta": {}}
    one = draw_prediction(image, item, task)
    assert one.shape == image.shape and np.array_equal(one, draw_prediction(image, [item], task))
    assert np.array_equal(one, task.draw(image, [item]))
    assert not np.array_equal(one[5:10], image[5:10]) and np.array_equal(one[:5], image[:5])
