"""Small random detectors for tests and offline demos: seconds on a CPU, no weights to fetch.

``tiny_detector_cfg("rtdetr")`` is the ``detector`` node of ``conf/detector/rtdetr.yaml`` with
``weights: null``, a few-channel architecture in ``config`` and a small input in ``processor``.
Its boxes mean nothing (random weights); the threshold is 0 so they still come out, which is what
a test of the pipeline around the detector needs. On the command line the same is
``detector.weights=null 'detector.config={...}'`` with the values below.
"""

from __future__ import annotations

import copy
from typing import Any

#: name -> ``detector`` keys replaced for a tiny random model.
TINY: dict[str, dict[str, Any]] = {
    "rtdetr": {
        "config": {
            "backbone_config": {
                "model_type": "rt_detr_resnet", "embedding_size": 16, "layer_type": "basic",
                "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1],
                "out_features": ["stage2", "stage3", "stage4"],
            },
            "encoder_in_channels": [32, 64, 128], "encoder_hidden_dim": 32, "d_model": 32,
            "decoder_in_channels": [32, 32, 32], "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
            "decoder_layers": 1, "num_queries": 30, "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
        },
        "processor": {"size": {"height": 160, "width": 160}},
    },
    "detr": {
        "config": {
            "backbone": "resnet18", "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
            "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "encoder_attention_heads": 2,
            "decoder_attention_heads": 2, "num_queries": 20,
        },
        "processor": {"size": {"shortest_edge": 128, "longest_edge": 160}},
    },
    "torchvision": {
        "config": {
            "backbone": "resnet18", "min_size": 128, "max_size": 160, "box_score_thresh": 0.0,
            "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 20,
            # random class scores are all about 1/91: keep enough for some to be person
            "box_detections_per_img": 2000,
        },
    },
    "none": {},
}


def tiny_detector_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    """The ``detector`` node of ``conf/detector/<name>.yaml`` as a tiny random model, with
    ``score_thr`` 0 and ``overrides`` (any ``detector`` key) on top."""
    from importlib import resources

    import yaml

    text = (resources.files("sapiens_kit.conf") / "detector" / f"{name}.yaml").read_text()
    node: dict[str, Any] = yaml.safe_load(text)
    node.update(copy.deepcopy(TINY[name]))
    node.update({"weights": None, "score_thr": 0.0}, **overrides)
    return node


__all__ = ["TINY", "tiny_detector_cfg"]
