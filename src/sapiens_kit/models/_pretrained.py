"""Pretrained-weight metadata, the errors of weight loading, and fetching files.

Registered ``arch.tag`` entries are resolved to the local Hugging Face cache first and downloaded
only when missing, following timm's order. The ``weights=`` grammar itself is parsed in one place,
``models/_builder.py::parse_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sapiens_kit.utils.network import hub_endpoint, hub_offline, hub_reachable

#: ImageNet statistics on a 0-1 scale. The Sapiens configs use the same values on a 0-255 scale
#: (mean 123.675/116.28/103.53, std 58.395/57.12/57.375), which divide by 255 exactly to these.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SAPIENS_V1_LICENSE = "CC-BY-NC-4.0"
SAPIENS2_LICENSE = "sapiens2-license"


class WeightsError(RuntimeError):
    """A checkpoint could not be found, read or mapped onto the model."""


class WeightsUnavailableError(WeightsError):
    """Registered weights are neither in the local cache nor downloadable (e.g. offline)."""


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a set of weights lives and how its inputs must look.

    Data pipelines and tasks read ``mean``/``std``/``input_size`` from here instead of literals.
    """

    arch: str
    tag: str = ""
    hf_hub_id: str | None = None
    hf_hub_filename: str | None = None
    url: str | None = None
    file: str | None = None
    sha256: str | None = None
    input_size: tuple[int, int, int] = (3, 1024, 768)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    patch_size: int = 16
    patch_padding: int = 0
    task: str = "pretrain"
    num_classes: int | None = None
    num_keypoints: int | None = None
    #: Pose weights: the keypoint set their head predicts (``coco17``, ``goliath308``, ...).
    keypoint_set: str | None = None
    license: str = SAPIENS_V1_LICENSE
    paper: str = "arXiv:2408.12569"
    origin_url: str = "https://github.com/facebookresearch/sapiens"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The ``arch.tag`` key of this entry."""
        return f"{self.arch}.{self.tag}" if self.tag else self.arch


def _offline_message(repo_id: str, filename: str, reason: str) -> str:
    """One line naming the requested file, where the cache looked and how to pass it instead."""
    from huggingface_hub import constants

    return (
        f"weights file '{filename}' of the Hugging Face repository '{repo_id}' is not in the "
        f"local Hugging Face cache ({constants.HF_HUB_CACHE}) and cannot be downloaded "
        f"({reason}). Download it where the hub is reachable (`hf download {repo_id} {filename}`"
        f", then copy the cache folder or set HF_HUB_CACHE) or pass the file as a local path: "
        f"`model.weights=/path/to/{Path(filename).name}` (`weights=...` for predict)"
    )


def cached_hub_file(repo_id: str, filename: str) -> Path | None:
    """``repo_id/filename`` in the local Hugging Face cache (``HF_HUB_CACHE``), else ``None``.
    Touches no network."""
    from huggingface_hub import constants, try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=constants.HF_HUB_CACHE)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_download(repo_id: str, filename: str) -> Path:
    """Return a local path for ``repo_id/filename``: the cache if present, else a download.

    Offline (``HF_HUB_OFFLINE=1``, or the endpoint does not answer one short connection
    attempt) this fails at once with :class:`WeightsUnavailableError` naming the file.
    """
    cached = cached_hub_file(repo_id, filename)
    if cached is not None:
        return cached
    if hub_offline():
        raise WeightsUnavailableError(_offline_message(repo_id, filename, "HF_HUB_OFFLINE is set"))
    if not hub_reachable():
        endpoint = hub_endpoint()
        raise WeightsUnavailableError(
            _offline_message(repo_id, filename, f"{endpoint} does not answer"))
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as err:  # network errors come in many classes; all mean "not available"
        raise WeightsUnavailableError(
            _offline_message(repo_id, filename, f"the hub answered {type(err).__name__}")
        ) from err


def parse_hf_hub(spec: str) -> tuple[str, str]:
    """Split ``hf-hub:org/repo/path/file`` into ``(org/repo, path/file)``."""
    body = spec.removeprefix("hf-hub:")
    parts = body.split("/")
    if len(parts) < 3:
        raise WeightsError(
            f"'{spec}' must name a file inside a repository: hf-hub:<org>/<repo>/<file>"
        )
    return "/".join(parts[:2]), "/".join(parts[2:])


def fetch_registered(cfg: PretrainedCfg) -> Path:
    """Local path of a registered entry's file, in timm's order: local file, Hub cache or
    download, URL."""
    if cfg.file:
        return existing_file(Path(cfg.file))
    if cfg.hf_hub_id and cfg.hf_hub_filename:
        try:
            return hub_download(cfg.hf_hub_id, cfg.hf_hub_filename)
        except WeightsUnavailableError as err:
            raise WeightsUnavailableError(f"registered weights '{cfg.name}': {err}") from None
    if cfg.url:
        import torch.hub

        dst = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        try:
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(cfg.url, str(dst), progress=True)
            return dst
        except Exception as err:
            raise WeightsUnavailableError(
                f"weights file {cfg.url} is not in {dst.parent} and cannot be downloaded "
                f"({type(err).__name__}): download it where the network is reachable and pass "
                f"`model.weights=/path/to/{Path(cfg.url).name}`"
            ) from err
    raise WeightsUnavailableError(f"registered weights '{cfg.name}' have no source")


def existing_file(path: Path) -> Path:
    """``path`` if it is a file, else a :class:`WeightsError` saying it does not exist."""
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file does not exist")
    return path
