"""predict's image pipeline: people found once per image, batched top-down pose, nested
folders, one COCO results.json, stable image ids, and resumable output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sapiens_kit.inference import images as pipeline
from sapiens_kit.inference.inputs import (
    HASHED_ID_BASE,
    relative,
    stable_image_id,
    walk_inputs,
)
from sapiens_kit.predict import predict
from sapiens_kit.utils.cli import UserError
from tests.helpers import SHARED_DATA, FakeDetector, predict_cfg, save_task_checkpoint, tiny_task

MINI = SHARED_DATA / "coco_wholebody_mini"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ckpts")
    return {k: save_task_checkpoint(tiny_task(k), tmp / f"{k}.ckpt") for k in ("seg", "pose")}


def gt_boxes() -> dict[str, list[list[float]]]:
    """The labelled people of the mini set as detector output: x1 y1 x2 y2 score, by name."""
    data = json.loads((MINI / "annotations.json").read_text())
    names = {i["id"]: i["file_name"] for i in data["images"]}
    out: dict[str, list[list[float]]] = {}
    for n, ann in enumerate(data["annotations"]):
        x, y, w, h = ann["bbox"]
        out.setdefault(names[ann["image_id"]], []).append([x, y, x + w, y + h, 0.9 - 0.01 * n])
    return out


def photo_tree(root: Path) -> dict[str, list[list[float]]]:
    """Three COCO photos, one in a sub-folder under a non-numeric name; their boxes by name."""
    boxes = gt_boxes()
    (root / "sub").mkdir(parents=True)
    for name in ("000000196141.jpg", "000000040083.jpg"):
        shutil.copy(MINI / "images" / name, root / name)
    shutil.copy(MINI / "images" / "000000197388.jpg", root / "sub" / "street.jpg")
    return {"000000196141.jpg": boxes["000000196141.jpg"],
            "000000040083.jpg": boxes["000000040083.jpg"], "street.jpg": boxes["000000197388.jpg"]}


def visible(folder: Path) -> dict[str, bytes]:
    """The result files under ``folder`` (relative path -> bytes), the hidden state left out."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".sapiens_kit" not in p.parts}


def use_detector(monkeypatch: pytest.MonkeyPatch, detector: FakeDetector) -> None:
    monkeypatch.setattr(pipeline, "make_detector", lambda task, cfg: (
        detector if task.needs_person_boxes else None))


def test_stable_image_ids_depend_on_the_relative_path_only() -> None:
    assert stable_image_id(Path("000000000785.jpg")) == 785
    assert stable_image_id(Path("a/b/12.png")) == 12
    a = stable_image_id(Path("sub/street.jpg"))
    assert a == stable_image_id(Path("sub/street.jpg")) and a >= HASHED_ID_BASE
    assert a != stable_image_id(Path("other/street.jpg")) < 2**53


def test_inputs_are_walked_recursively_in_a_fixed_order(tmp_path: Path) -> None:
    for rel in ("b.jpg", "a/z.png", "a/b/c.jpg", ".hidden/x.jpg", "notes.txt", "clip.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    walked = walk_inputs(tmp_path)
    assert not isinstance(walked, list)  # streamed
    assert [relative(p, tmp_path).as_posix() for p in walked] == [
        "a/b/c.jpg", "a/z.png", "b.jpg", "clip.mp4"]


def test_people_are_detected_once_and_posed_in_batches(ckpts: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sapiens_kit.tasks import PoseTask

    boxes = photo_tree(tmp_path / "in")
    detector = FakeDetector(boxes, batch_size=2)
    use_detector(monkeypatch, detector)
    sizes: list[int] = []
    step = PoseTask.predict_step

    def counting(self: Any, batch: dict[str, Any], batch_idx: int) -> Any:
        sizes.append(len(batch["image"]))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(PoseTask, "predict_step", counting)
    out = tmp_path / "out"
    written = predict(predict_cfg("task=pose", f"ckpt={ckpts['pose']}",
                                  f"input={tmp_path / 'in'}", "batch_size=4"), out)
    # Detection: every image once, in batches of the detector's size, after a check of them all.
    assert sorted(detector.inputs) == sorted(boxes)
    assert sorted(n for call in detector.calls for n in call) == sorted(boxes)
    assert max(len(call) for call in detector.calls) <= 2
    # Pose: 5 + 3 + 5 people in batches of 4 that cross image boundaries.
    assert sizes == [4, 4, 4, 1]
    street = stable_image_id(Path("sub/street.jpg"))
    assert {p.relative_to(out).as_posix() for p in written} == {
        "000000040083_keypoints.json", "000000040083_overlay.jpg", "000000196141_keypoints.json",
        "000000196141_overlay.jpg", "sub/street_keypoints.json", "sub/street_overlay.jpg",
        "results.json", "summary.json"}
    for rel, name, image_id in (("000000196141_keypoints.json", "000000196141.jpg", 196141),
                                ("sub/street_keypoints.json", "street.jpg", street)):
        record = json.loads((out / rel).read_text())
        assert record["image_id"] == image_id and record["boxes"] == "detector"
        assert len(record["keypoint_names"]) == 17 and record["keypoint_names"][0] == "nose"
        want = np.asarray(boxes[name], np.float32)[:, :4]
        want[:, 2:] -= want[:, :2]  # x1 y1 x2 y2 -> x y w h
        np.testing.assert_allclose([i["bbox"] for i in record["instances"]], want, atol=0.02)
        assert [i["bbox_score"] for i in record["instances"]] == pytest.approx(
            [b[4] for b in boxes[name]], abs=1e-6)
        assert all(len(i["keypoints"]) == 17 and len(i["keypoints"][0]) == 3
                   for i in record["instances"])
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} == {40083, 196141, street}
    assert all({"image_id", "category_id", "bbox", "score", "keypoints"} <= set(r)
               and len(r["keypoints"]) == 51 and len(r["bbox"]) == 4 for r in results)
    ids = [r["image_id"] for r in results]  # input order: 000000040083, 000000196141, sub/
    assert ids == sorted(ids, key=[40083, 196141, street].index)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 0}


def test_an_image_without_people_is_still_written(ckpts: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(MINI / "images" / name, tmp_path / "in" / name)
    use_detector(monkeypatch, FakeDetector({"000000040083.jpg": gt_boxes()["000000040083.jpg"]}))
    out = tmp_path / "out"
    predict(predict_cfg("task=pose", f"ckpt={ckpts['pose']}", f"input={tmp_path / 'in'}"), out)
    empty = json.loads((out / "000000000785_keypoints.json").read_text())
    assert empty["instances"] == [] and (out / "000000000785_overlay.jpg").is_file()
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} == {40083}


def test_annotation_file_gives_the_image_ids(ckpts: dict[str, Path], tmp_path: Path) -> None:
    data = json.loads((MINI / "annotations.json").read_text())
    data["images"] = [dict(i, id=7, file_name="people/crowd.jpg") for i in data["images"]
                      if i["id"] == 40083]
    data["annotations"] = [dict(a, image_id=7) for a in data["annotations"]
                           if a["image_id"] == 40083]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    (tmp_path / "in" / "people").mkdir(parents=True)
    shutil.copy(MINI / "images" / "000000040083.jpg", tmp_path / "in" / "people" / "crowd.jpg")
    out = tmp_path / "out"
    predict(predict_cfg("task=pose", f"ckpt={ckpts['pose']}", f"input={tmp_path / 'in'}",
                        f"bboxes={ann}"), out)
    results = json.loads((out / "results.json").read_text())
    assert results and {r["image_id"] for r in results} == {7}
    record = json.loads((out / "people" / "crowd_keypoints.json").read_text())
    assert len(record["instances"]) == 3 and record["image_id"] == 7


def seg_tree(root: Path) -> Path:
    """Five small photos in nested folders plus one broken file."""
    rng = np.random.default_rng(0)
    import cv2

    for i, rel in enumerate(("a/one.png", "a/b/two.png", "three.jpg", "z/four.png", "five.png")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), rng.integers(0, 255, (30 + i, 20, 3), dtype=np.uint8))
    (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def same_results(a: Path, b: Path) -> None:
    """Equal files (names and bytes), ``summary.json`` without its per-session ``run``."""
    files_a, files_b = visible(a), visible(b)
    assert files_a.keys() == files_b.keys()
    for name in files_a:
        if name == "summary.json":
            sa, sb = (json.loads(f[name]) for f in (files_a, files_b))
            sa.pop("run"), sb.pop("run")
            assert sa == sb
        else:
            assert files_a[name] == files_b[name], name


def test_resume_redoes_only_incomplete_inputs(ckpts: dict[str, Path], tmp_path: Path) -> None:
    inputs = seg_tree(tmp_path / "in")
    full = tmp_path / "full"
    args = ("task=seg", f"ckpt={ckpts['seg']}", f"input={inputs}", "batch_size=1")
    predict(predict_cfg(*args), full)
    assert sorted(visible(full)) == [
        "a/b/two_mask.png", "a/b/two_overlay.jpg", "a/one_mask.png", "a/one_overlay.jpg",
        "five_mask.png", "five_overlay.jpg", "summary.json", "three_mask.png",
        "three_overlay.jpg", "z/four_mask.png", "z/four_overlay.jpg"]
    summary = json.loads((full / "summary.json").read_text())
    assert summary["counts"] == {"done": 5, "skipped": 1, "failed": 0}
    assert [Path(s["path"]).name for s in summary["skipped"]] == ["broken.jpg"]
    # A resume of a finished run does nothing.
    again = predict(predict_cfg(*args, "resume=true"), full)
    assert json.loads((full / "summary.json").read_text())["run"]["resumed"] == 5
    assert sorted(p.relative_to(full).as_posix() for p in again) == sorted(visible(full))
    # As a crash leaves it: one input with its marker gone, one with a file gone, scratch.
    part = tmp_path / "part"
    shutil.copytree(full, part)
    (part / ".sapiens_kit" / "done" / "a" / "one.png.json").unlink()
    (part / "z" / "four_overlay.jpg").unlink()
    (part / "summary.json").unlink()
    (part / ".sapiens_kit" / "scratch" / "x").mkdir(parents=True)
    (part / ".sapiens_kit" / "scratch" / "x" / "three_mask.png").write_bytes(b"half")
    with pytest.raises(UserError, match="resume=true"):
        predict(predict_cfg(*args), part)
    predict(predict_cfg(*args, "resume=true"), part)
    assert json.loads((part / "summary.json").read_text())["run"]["processed"] == 2
    same_results(part, full)
    # On an empty or missing folder resume is a plain run.
    predict(predict_cfg(*args, "resume=true"), tmp_path / "new")
    same_results(tmp_path / "new", full)


def test_resume_refuses_what_it_cannot_continue(ckpts: dict[str, Path], tmp_path: Path) -> None:
    inputs = seg_tree(tmp_path / "in")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    args = ("task=seg", f"ckpt={ckpts['seg']}", f"input={inputs}")
    with pytest.raises(UserError, match=r"no summary\.json"):
        predict(predict_cfg(*args, "resume=true"), mine)
    with pytest.raises(UserError, match="not both"):
        predict(predict_cfg(*args, "resume=true", "overwrite=true"), mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    # Another task's or another input's output is not continued.
    out = tmp_path / "out"
    predict(predict_cfg(*args), out)
    other = seg_tree(tmp_path / "other")
    with pytest.raises(UserError, match=r"not .*other"):
        predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={other}",
                            "resume=true"), out)
    with pytest.raises(UserError, match="SegmentationTask run, not PoseTask"):
        predict(predict_cfg("task=pose", f"ckpt={ckpts['pose']}", f"input={inputs}",
                            "resume=true"), out)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_files_of_an_uninterrupted_run(
        ckpts: dict[str, Path], tmp_path: Path) -> None:
    """A real SIGKILL in the middle of a run: the files already there are whole, and a resume
    ends with exactly the files of a run that was never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import cv2

    rng = np.random.default_rng(1)
    inputs = tmp_path / "in"
    for i in range(60):
        path = inputs / f"part{i % 3}" / f"img{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
    args = ("task=seg", f"ckpt={ckpts['seg']}", f"input={inputs}", "batch_size=1")
    full = tmp_path / "full"
    predict(predict_cfg(*args), full)
    reference = visible(full)

    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "sapiens_kit.predict", *args,
                             "accelerator=cpu", f"output={killed}"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = killed / ".sapiens_kit" / "done"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if done.is_dir() and sum(1 for _ in done.rglob("*.json")) >= 5:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # killed mid-run, not finished
    partial = visible(killed)
    assert "summary.json" not in partial and 10 <= len(partial) < len(reference) - 1
    for name, data in partial.items():  # never a half-written file
        assert data == reference[name], name

    predict(predict_cfg(*args, "resume=true"), killed)
    same_results(killed, full)
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["run"]["resumed"] >= 5 and summary["counts"]["done"] == 60


def test_processes_and_workers_share_the_inputs_exactly_once(
        ckpts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from sapiens_kit.inference.outputs import PredictionOutput

    inputs = seg_tree(tmp_path / "in")
    task = tiny_task("seg")
    output = PredictionOutput(tmp_path / "out", "SegmentationTask")
    output.open()
    seen: list[list[str]] = []
    for rank in range(2):
        for worker in range(2):
            monkeypatch.setattr(pipeline, "shard", lambda r=rank: (r, 2))
            monkeypatch.setattr(pipeline, "get_worker_info", lambda w=worker: SimpleNamespace(
                num_workers=2, id=w))
            stream = pipeline.ImageStream(inputs, task, output, {}, None, {}, chunk=1)
            seen.append([s["meta"]["rel"] for s in stream])
    names = [n for part in seen for n in part]
    assert sorted(names) == ["a/b/two.png", "a/one.png", "five.png", "three.jpg", "z/four.png"]
    assert all(len(part) >= 1 for part in seen)


def test_batches_hold_the_same_images_in_one_or_two_processes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches are cut inside each chunk, so the batches of two processes together are exactly
    the batches of one: a batch's contents (and so its floating-point results, which can depend
    on what else is in the batch on a GPU) do not depend on ``devices=``. The broken file leaves
    one chunk with a single sample, where a loader batching the whole stream would join two
    chunks."""
    from sapiens_kit.inference.outputs import PredictionOutput

    inputs = seg_tree(tmp_path / "in")
    task = tiny_task("seg")
    output = PredictionOutput(tmp_path / "out", "SegmentationTask")
    output.open()

    def batches(rank: int, world: int) -> list[tuple[str, ...]]:
        monkeypatch.setattr(pipeline, "shard", lambda: (rank, world))
        stream = pipeline.ImageStream(inputs, task, output, {}, None, {}, chunk=2, batch_size=2)
        return [tuple(m["rel"] for m in batch["meta"]) for batch in stream]

    one = batches(0, 1)
    assert sorted(n for b in one for n in b) == ["a/b/two.png", "a/one.png", "five.png",
                                                 "three.jpg", "z/four.png"]
    assert any(len(b) == 1 for b in one[:-1])  # a short batch where a chunk ends
    assert sorted(batches(0, 2) + batches(1, 2)) == sorted(one)


def test_precision_spellings() -> None:
    assert pipeline.precision_of(None, "cpu") == "32-true"
    assert pipeline.precision_of("bf16", "cpu") == "bf16-mixed"
    assert pipeline.precision_of(16, "gpu") == "16-mixed"
    assert pipeline.precision_of("32", "cpu") == "32-true"
    with pytest.raises(UserError, match="precision=8"):
        pipeline.precision_of("8", "cpu")


def test_bf16_predicts_the_same_files(ckpts: dict[str, Path], tmp_path: Path) -> None:
    inputs = seg_tree(tmp_path / "in")
    args = ("task=seg", f"ckpt={ckpts['seg']}", f"input={inputs}")
    predict(predict_cfg(*args, "precision=bf16"), tmp_path / "bf16")
    predict(predict_cfg(*args), tmp_path / "plain")
    assert sorted(visible(tmp_path / "bf16")) == sorted(visible(tmp_path / "plain"))


@pytest.mark.slow
def test_two_processes_equal_one(ckpts: dict[str, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes write the files of one, to the bit (pose keypoints are floats), with
    batches of 2 over several chunks of 2 images (one of them short: the broken file)."""
    from sapiens_kit.inference import images

    monkeypatch.setattr(images, "CHUNK_BATCHES", 1)  # read in this process, before the spawn
    inputs = seg_tree(tmp_path / "in")
    args = ("task=pose", f"ckpt={ckpts['pose']}", f"input={inputs}", "batch_size=2")
    predict(predict_cfg(*args), tmp_path / "one")
    predict(predict_cfg(*args, "devices=2"), tmp_path / "two")
    same_results(tmp_path / "two", tmp_path / "one")


def test_an_error_keeps_the_inputs_already_done(ckpts: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from sapiens_kit.tasks.seg import SegmentationTask

    inputs = seg_tree(tmp_path / "in")
    args = ("task=seg", f"ckpt={ckpts['seg']}", f"input={inputs}", "batch_size=1")
    predict(predict_cfg(*args), tmp_path / "full")
    original = SegmentationTask.save_predictions
    calls = {"n": 0}

    def fail_third(self: Any, *a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return original(self, *a, **k)

    monkeypatch.setattr(SegmentationTask, "save_predictions", fail_third)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        predict(predict_cfg(*args), out)
    done, full = visible(out), visible(tmp_path / "full")
    # The inputs before the failing one (five.png) are kept whole; the writing threads may have
    # finished one after it too.
    assert {"a/b/two_mask.png", "a/b/two_overlay.jpg", "a/one_mask.png",
            "a/one_overlay.jpg"} <= set(done) and "five_mask.png" not in done
    assert all(full[name] == data for name, data in done.items())
    assert not (out / ".sapiens_kit" / "scratch").exists()  # no half-written file left
    monkeypatch.setattr(SegmentationTask, "save_predictions", original)
    predict(predict_cfg(*args, "resume=true"), out)
    same_results(out, tmp_path / "full")


@pytest.mark.slow
def test_compiled_model_predicts_the_same_masks(ckpts: dict[str, Path], tmp_path: Path) -> None:
    inputs = seg_tree(tmp_path / "in")
    args = ("task=seg", f"ckpt={ckpts['seg']}", f"input={inputs}", "batch_size=1")
    predict(predict_cfg(*args, "compile=true"), tmp_path / "compiled")
    predict(predict_cfg(*args), tmp_path / "plain")
    plain = {k: v for k, v in visible(tmp_path / "plain").items() if k.endswith("_mask.png")}
    compiled = {k: v for k, v in visible(tmp_path / "compiled").items() if k.endswith("_mask.png")}
    assert compiled == plain and len(plain) == 5
