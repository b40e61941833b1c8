"""UDP heatmap codec, top-down transforms, heatmap losses and the heatmap head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.codecs import UDPHeatmap
from sapiens_kit.codecs.udp_heatmap import default_sigma
from sapiens_kit.data.keypoints import load_keypoint_set
from sapiens_kit.data.transforms.pose import (
    TopdownEvalTransform,
    TopdownTrainTransform,
    bbox_to_center_scale,
    fix_aspect_ratio,
    udp_warp_matrix,
    warp_points,
)
from sapiens_kit.losses import KeypointMSELoss, KeypointOHKMMSELoss
from sapiens_kit.models.heads import HeatmapHead


@pytest.mark.parametrize(("input_size", "heatmap_size"), [((1024, 768), (256, 192)),
                                                          ((256, 192), (64, 48))])
def test_codec_round_trip_within_a_tenth_of_a_pixel(input_size: tuple[int, int],
                                                    heatmap_size: tuple[int, int]) -> None:
    codec = UDPHeatmap(input_size, heatmap_size)
    h, w = heatmap_size
    # DARK's zero-padded blur (kernel 11) biases points within 6 px of the border.
    grid = torch.rand(4, 50, 2, generator=torch.Generator().manual_seed(0))
    on_heatmap = grid * torch.tensor([w - 13.0, h - 13.0]) + 6
    keypoints = codec.heatmap_to_input(on_heatmap)
    heatmaps, weights = codec.encode(keypoints)
    assert heatmaps.shape == (4, 50, h, w) and bool((weights == 1).all())
    decoded, scores = codec.decode(heatmaps)
    assert (decoded - on_heatmap).abs().max() < 0.1
    assert (scores > 0.9).all()
    assert (codec.heatmap_to_input(decoded) - keypoints).abs().max() < 0.1 * input_size[0] / h


def test_codec_weights_and_sigma() -> None:
    codec = UDPHeatmap((256, 192), (64, 48))
    assert codec.sigma == default_sigma(64) == 1.5
    assert UDPHeatmap((1024, 768), (256, 192)).sigma == 6
    assert UDPHeatmap((256, 192), (64, 48), sigma=2).sigma == 2
    kps = torch.tensor([[100.0, 100.0], [50.0, 60.0], [-40.0, 10.0], [193.0, 100.0]])
    heatmaps, weights = codec.encode(kps, torch.tensor([2, 0, 1, 1]))
    # visible; unlabelled; window far off the heatmap; just outside but the window overlaps.
    assert weights.tolist() == [1, 0, 0, 1]
    assert heatmaps[1].sum() == 0 and heatmaps[2].sum() == 0 and heatmaps[3].sum() > 0
    peak = divmod(int(heatmaps[0].argmax()), 48)
    assert peak == (round(100 * 63 / 255), round(100 * 47 / 191))


def test_decode_to_image_inverts_the_crop() -> None:
    size, codec = (256, 192), UDPHeatmap((256, 192), (64, 48))
    center, scale = bbox_to_center_scale([30, 40, 100, 180])
    scale = fix_aspect_ratio(scale, 192 / 256)
    assert scale[0] / scale[1] == pytest.approx(0.75)
    matrix = udp_warp_matrix(center, scale, 0.0, size)
    corners = warp_points(np.array([center - scale / 2, center + scale / 2]), matrix)
    np.testing.assert_allclose(corners, [[0, 0], [191, 255]], atol=1e-3)
    photo = np.array([[60.0, 90.0], [100.5, 150.25], [45.0, 200.0]], np.float32)
    heatmaps, _ = codec.encode(warp_points(photo, matrix))
    decoded, _ = codec.decode(heatmaps[None])
    back = codec.heatmap_to_image(decoded, torch.tensor(center)[None], torch.tensor(scale)[None])
    np.testing.assert_allclose(back[0].numpy(), photo, atol=0.1 * scale[1] / 63)


def test_eval_crop_puts_image_content_at_the_warped_keypoint() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    image[148:153, 218:223] = 255  # a bright dot centred at (220, 150)
    crop = TopdownEvalTransform((128, 96))(image, [180, 60, 90, 200],
                                           np.array([[220.0, 150.0]]), np.ones(1))
    y, x = np.unravel_index(crop.image[..., 0].argmax(), crop.image.shape[:2])
    assert abs(x - crop.keypoints[0, 0]) <= 1.5 and abs(y - crop.keypoints[0, 1]) <= 1.5


def test_train_flip_swaps_left_and_right() -> None:
    kset = load_keypoint_set("coco17")
    tf = TopdownTrainTransform((128, 96), kset.flip_indices, kset.upper_body, kset.lower_body,
                               flip_prob=1.0, half_body_prob=0.0, shift_prob=0.0,
                               scale_range=(1.0, 1.0), rotate_prob=0.0, photometric_aug=False,
                               blur_prob=0.0, dropout=False)
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    kps = np.random.default_rng(1).random((17, 2)).astype(np.float32) * [80, 200] + [100, 20]
    vis = np.ones(17)
    vis[kset.index("left_eye")] = 0
    plain = TopdownEvalTransform((128, 96))(image, [100, 20, 80, 200], kps, vis)
    flipped = tf(image, [100, 20, 80, 200], kps, vis)
    assert flipped.flipped
    np.testing.assert_array_equal(flipped.image, plain.image[:, ::-1])
    left, right = kset.index("left_wrist"), kset.index("right_wrist")
    assert flipped.keypoints[right, 0] == pytest.approx(95 - plain.keypoints[left, 0], abs=1e-3)
    assert flipped.visible[kset.index("right_eye")] == 0


def test_train_transform_output_and_workers_differ() -> None:
    kset = load_keypoint_set("coco_wholebody133")
    tf = TopdownTrainTransform((128, 96), kset.flip_indices, kset.upper_body, kset.lower_body,
                               half_body_prob=1.0)
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    kps = np.random.default_rng(1).random((133, 2)).astype(np.float32) * [80, 200] + [100, 20]
    crops = [tf(image, [100, 20, 80, 200], kps, np.ones(133)) for _ in range(4)]
    for crop in crops:
        assert crop.image.shape == (128, 96, 3) and crop.image.dtype == np.uint8
        assert crop.keypoints.shape == (133, 2) and crop.visible.shape == (133,)
    assert len({round(float(c.scale[1]), 3) for c in crops}) > 1


def test_losses_match_hand_computation() -> None:
    pred, target = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    pred[0, 0] = 1.0
    pred[1, 2] = 2.0
    weights = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    mse = KeypointMSELoss()
    assert mse(pred, target, weights) == pytest.approx(16 / 96)
    assert mse(pred, target) == pytest.approx((16 + 64) / 96)
    ohkm = KeypointOHKMMSELoss(topk=1)
    assert ohkm(pred, target) == pytest.approx((1 + 4) / 2)
    assert ohkm(pred, target, weights) == pytest.approx((1 + 0) / 2)
    assert KeypointOHKMMSELoss(topk=128)(pred, target) == pytest.approx((1 + 4) / 6)
    with pytest.raises(ValueError, match="differ"):
        mse(pred, target[:, :2])


def test_head_layout_matches_the_official_keys() -> None:
    head = HeatmapHead(32, 17, deconv_channels=(24, 24), conv_channels=(20, 20))
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "deconv_layers.0.weight": (32, 24, 4, 4), "deconv_layers.3.weight": (24, 24, 4, 4),
        "conv_layers.0.weight": (20, 24, 1, 1), "conv_layers.0.bias": (20,),
        "conv_layers.3.weight": (20, 20, 1, 1), "conv_layers.3.bias": (20,),
        "final_layer.weight": (17, 20, 1, 1), "final_layer.bias": (17,),
    }
    assert head(torch.randn(1, 32, 8, 6)).shape == (1, 17, 32, 24)
    official = {k: torch.randn(s) for k, s in shapes.items()}
    head.load_state_dict(official, strict=True)
    assert torch.equal(head.final_layer.weight, official["final_layer.weight"])
