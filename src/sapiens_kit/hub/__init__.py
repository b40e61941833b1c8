"""Share fine-tuned tasks on the Hugging Face Hub and load them back.

A shared model is a folder of three files:

- ``model.safetensors``: the task file (:mod:`sapiens_kit.hub.format`, the same layout ``export
  format=safetensors`` writes), so the task is rebuilt without Hydra or a Lightning checkpoint;
- ``config.json``: the same facts, readable without loading the weights;
- ``README.md``: a generated model card (:mod:`sapiens_kit.hub.card`: task, classes or
  keypoints, metrics, base-weight licence).

``push_to_hub(ckpt, "org/name")`` uploads it (``local_dir=`` writes the folder instead);
``from_pretrained("hf-hub:org/name")``, or ``weights=hf-hub:org/name/model.safetensors`` on the
command line, loads it back, from the local Hugging Face cache when the file is there.
"""

from sapiens_kit.hub.card import (
    CARD_FILE,
    CONFIG_FILE,
    LICENSE_TEXT,
    LICENSES,
    MODEL_FILE,
    base_license,
    base_model,
    model_card,
    model_config,
    run_metrics,
)
from sapiens_kit.hub.format import (
    load_task_file,
    plain_weights,
    read_task_metadata,
    save_task_file,
)
from sapiens_kit.hub.upload import from_pretrained, model_file, push_to_hub, save_pretrained
from sapiens_kit.tasks.registry import task_key

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "LICENSES",
    "LICENSE_TEXT",
    "MODEL_FILE",
    "base_license",
    "base_model",
    "from_pretrained",
    "load_task_file",
    "model_card",
    "model_config",
    "model_file",
    "plain_weights",
    "push_to_hub",
    "read_task_metadata",
    "run_metrics",
    "save_pretrained",
    "save_task_file",
    "task_key",
]
