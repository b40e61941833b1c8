"""Loading a training checkpoint for inference (``ckpt=`` of predict, evaluate and export) reads
only the weights and hyper-parameters: the same model as Lightning's full load, without ever
reading the optimizer state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning
import pytest
import torch

from sapiens_kit.errors import UserError
from sapiens_kit.utils.checkpoint_io import inference_entries, load_for_inference
from sapiens_kit.utils.cli import load_task
from tests.helpers import assert_same, tiny_task


def training_checkpoint(task: Any, path: Path, optimizer_state: dict[str, Any]) -> Path:
    """``task`` saved with the entries a training run's checkpoint holds besides the weights."""
    cls = type(task)
    torch.save({
        "epoch": 3, "global_step": 12, "pytorch-lightning_version": lightning.__version__,
        "state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
        "optimizer_states": [optimizer_state], "lr_schedulers": [{"last_epoch": 12}],
        "loops": {"fit_loop": {"state_dict": {}}}, "callbacks": {"EMA": {"n": torch.ones(1)}},
        "current_model_state": {k: torch.zeros_like(v) for k, v in task.state_dict().items()},
        "sapiens_kit": {"task_class": f"{cls.__module__}.{cls.__qualname__}"},
        "sapiens_kit_data": {"name": "fake_pose"},
    }, path)
    return path


def adam_state(task: Any) -> dict[str, Any]:
    """A real AdamW state after one step (two tensors per weight, as in a training run)."""
    params = [p for p in task.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()
    state = optimizer.state_dict()
    optimizer.zero_grad(set_to_none=True)
    return state


@pytest.mark.parametrize(("key", "options"), [("pose", {}), ("seg", {"lora": {"r": 4}})])
def test_inference_load_equals_lightnings_full_load(tmp_path: Path, key: str,
                                                    options: dict[str, Any]) -> None:
    task = tiny_task(key, **options)
    for name, param in task.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)  # adapters that are not zero
    path = training_checkpoint(task, tmp_path / "last.ckpt", adam_state(task))

    fast = load_task(path, key)
    full = type(task).load_from_checkpoint(path, map_location="cpu")
    assert type(fast) is type(task)
    assert_same(fast.state_dict(), full.state_dict())
    assert_same(fast.state_dict(), task.state_dict())  # the weights, not the EMA's raw ones
    assert_same(dict(fast.named_buffers()), dict(full.named_buffers()))  # non-persistent too
    assert not any(t.is_meta for t in (*fast.parameters(), *fast.buffers()))
    assert [p.requires_grad for p in fast.parameters()] == [
        p.requires_grad for p in full.parameters()]
    assert dict(fast.hparams) == dict(full.hparams)
    assert fast.training == full.training


class Tied(lightning.LightningModule):
    """Two layers sharing one weight; optionally a buffer or a number computed from it."""

    def __init__(self, n: int = 3, buffer: bool = False, value: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.a, self.b = torch.nn.Linear(n, n), torch.nn.Linear(n, n)
        self.b.weight = self.a.weight
        if buffer:
            self.register_buffer("total", self.a.weight.detach().sum(), persistent=False)
        self.scale = float(self.a.weight.detach().abs().max()) if value else 1.0


@pytest.mark.parametrize(("buffer", "value"), [(False, False), (True, False), (False, True)])
def test_tied_weights_and_models_needing_weight_values(tmp_path: Path, buffer: bool,
                                                       value: bool) -> None:
    """Tied weights stay tied; a model whose constructor needs its weights' values (a buffer
    made from one, a number read from one) is built as usual."""
    model = Tied(buffer=buffer, value=value)
    path = tmp_path / "tied.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    fast = load_for_inference(Tied, path)
    assert fast.b.weight is fast.a.weight
    assert not any(t.is_meta for t in (*fast.parameters(), *fast.buffers()))
    assert_same(fast.state_dict(), model.state_dict())


def test_overrides_change_the_hyper_parameters(tmp_path: Path) -> None:
    task = tiny_task("pose")
    path = training_checkpoint(task, tmp_path / "last.ckpt", {"state": {}, "param_groups": []})
    model = load_for_inference(type(task), path, lr=0.5)
    assert model.hparams.lr == 0.5
    assert_same(model.state_dict(), task.state_dict())


def test_only_inference_entries_are_kept() -> None:
    kept = inference_entries({"state_dict": {}, "hyper_parameters": {}, "epoch": 1,
                              "optimizer_states": [{}], "lr_schedulers": [], "loops": {},
                              "callbacks": {}, "current_model_state": {},
                              "sapiens_kit": {}, "sapiens_kit_data": {},
                              "pytorch-lightning_version": "2.6"})
    assert sorted(kept) == ["epoch", "hyper_parameters", "pytorch-lightning_version",
                            "sapiens_kit", "sapiens_kit_data", "state_dict"]


def test_a_checkpoint_without_weights_is_one_error(tmp_path: Path) -> None:
    task = tiny_task("pose")
    path = tmp_path / "no_weights.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams)}, path)
    with pytest.raises(UserError, match=r"no_weights\.ckpt: no model weights"):
        load_for_inference(type(task), path)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _peak_growth_mb(load: Any) -> float:
    """How far this process's peak resident memory rises while ``load()`` runs (Linux resets
    the peak when "5" is written to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _peak_rss_mb()
    model = load()
    growth = _peak_rss_mb() - before
    del model
    return growth


def test_the_optimizer_state_is_never_read(tmp_path: Path) -> None:
    """A checkpoint whose optimizer state is 244 MB: loading it for inference raises the peak
    memory by far less, while Lightning's own loader (the control, showing that the measurement
    sees what is read) raises it by at least the optimizer state's size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak memory")
    task = tiny_task("pose")
    big = torch.zeros(64_000_000)  # 244 MB, as exp_avg/exp_avg_sq are for a large model
    path = training_checkpoint(task, tmp_path / "last.ckpt",
                               {"state": {0: {"step": torch.tensor(1.0), "exp_avg": big}},
                                "param_groups": [{"params": [0], "lr": 1e-3}]})
    size_mb = big.numel() * 4 / 2**20
    del big

    full = _peak_growth_mb(lambda: type(task).load_from_checkpoint(path, map_location="cpu"))
    fast = _peak_growth_mb(lambda: load_task(path))
    assert full > 0.9 * size_mb, f"control: the full load raised the peak by only {full:.0f} MB"
    assert fast < 0.1 * size_mb, f"inference load raised the peak by {fast:.0f} MB"
