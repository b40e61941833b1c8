"""Registered weights offline: a fast failure naming the file, the HF cache found without network,
and the demos' random-init fallback to a small backbone."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch

from sapiens_kit.models import get_pretrained_cfg, resolve_source
from sapiens_kit.models._pretrained import WeightsUnavailableError
from sapiens_kit.tasks import SegmentationTask
from tests.helpers import meta_pretrain_state_dict

WEIGHTS = "sapiens_0_3b.pretrain_humans300m"
FILE = "sapiens_host/pretrain/checkpoints/sapiens_0.3b/sapiens_0.3b_epoch_1600_clean.pth"


def put_in_hf_cache(repo_id: str, filename: str, state_dict: dict[str, torch.Tensor]) -> Path:
    """Lay a file out as ``hf_hub_download`` leaves it in the (per-test) HF cache."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    path = repo / "snapshots" / ("0" * 40) / filename
    path.parent.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    torch.save(state_dict, path)
    return path


@pytest.mark.parametrize("offline", [True, False])
def test_unreachable_hub_fails_in_seconds_naming_the_file(
    offline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_HUB_OFFLINE=1, or an endpoint nobody answers on: no retries, and the message names
    the registered entry, its repository and file, the cache and the key to pass a file with."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    if not offline:
        monkeypatch.delenv("HF_HUB_OFFLINE")
    assert get_pretrained_cfg(WEIGHTS).hf_hub_filename == FILE
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_source(WEIGHTS)
    assert time.perf_counter() - start < 5
    text = str(err.value)
    assert WEIGHTS in text and "'facebook/sapiens'" in text and f"'{FILE}'" in text
    assert "model.weights=/path/to/sapiens_0.3b_epoch_1600_clean.pth" in text
    assert "HF_HUB_OFFLINE" in text if offline else "127.0.0.1:9 does not answer" in text
    # Another entry names its own file, not the pretrain one.
    with pytest.raises(WeightsUnavailableError, match="sapiens_1b_goliath_best_goliath_mIoU"):
        resolve_source("sapiens_1b.seg_goliath")


def test_registered_weights_in_the_hf_cache_are_found_offline() -> None:
    path = put_in_hf_cache("facebook/sapiens", FILE, {"x": torch.zeros(1)})
    assert resolve_source(WEIGHTS) == path


def _seg(**kwargs: object) -> SegmentationTask:
    return SegmentationTask(img_size=(64, 48), num_classes=2,
                            head={"deconv_channels": [8], "conv_channels": [8]}, **kwargs)


def test_unavailable_weights_fall_back_to_the_small_backbone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        task = _seg(backbone="sapiens_0_3b", weights=WEIGHTS, allow_random_init=True,
                    offline_fallback_backbone="sapiens_tiny")
    assert "STARTING FROM RANDOM WEIGHTS" in caplog.text and "'sapiens_tiny'" in caplog.text
    assert task.backbone.embed_dim == 192 and task.backbone.num_layers == 6
    # What was trained is what the checkpoint records, so it reloads as that.
    assert task.hparams.backbone == "sapiens_tiny" and task.hparams.weights is None
    again = type(task)(**task.hparams)
    again.load_state_dict(task.state_dict())
    # Without allow_random_init the fallback is not taken.
    with pytest.raises(WeightsUnavailableError):
        _seg(backbone="sapiens_test", weights=WEIGHTS, offline_fallback_backbone="sapiens_tiny")


def test_cached_weights_keep_the_requested_backbone(caplog: pytest.LogCaptureFixture) -> None:
    """With the weights in the cache the fallback is not used: the run fine-tunes from them."""
    put_in_hf_cache("facebook/sapiens", FILE, meta_pretrain_state_dict(32, 2))
    with caplog.at_level(logging.WARNING):
        task = _seg(backbone="sapiens_test", weights=WEIGHTS, allow_random_init=True,
                    offline_fallback_backbone="sapiens_tiny")
    assert "RANDOM" not in caplog.text
    assert task.hparams.backbone == "sapiens_test" and task.hparams.weights == WEIGHTS
    assert task.backbone.embed_dim == 32
