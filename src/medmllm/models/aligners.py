"""Modality aligners: vision features ``[B, N, Dv]`` → what the language model consumes.

One call contract for all five (:class:`Aligner`): ``aligner(features) -> [B, T, D_llm]``.

* ``linear`` and ``mlp2x_gelu`` (LLaVA) project every patch token: ``T = N``.
* ``qformer`` (BLIP-2) and ``perceiver`` (Flamingo's resampler) compress to ``T = num_queries``
  learned queries with cross-attention to the patches (Q-Former: self- then cross-attention per
  layer; Perceiver: queries attend to ``[patches; queries]``).
* ``cross_attn`` (Flamingo-style fusion) returns its memory tokens too, but they are *not* spliced
  into the token stream: :meth:`CrossAttnAligner.attach` inserts gated cross-attention blocks
  (``tanh`` gates initialised at 0, so the untrained model equals the LLM) before every
  ``every``-th decoder layer of the LLM, and :class:`~medmllm.models.mllm.MedMLLM` hands them the
  memory for each forward pass.

Each aligner reports :meth:`Aligner.num_parameters` and :meth:`Aligner.visual_tokens` (how many
LLM positions one image costs: ``0`` for ``cross_attn``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from medmllm.registry import Registry


class AlignerConfig(BaseModel):
    """Which aligner to build and its size."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("mlp2x_gelu", description="Registered aligner (see ALIGNERS).")
    num_queries: int = Field(
        16, ge=1, description="Learned queries of qformer / perceiver (= visual tokens)."
    )
    num_layers: int = Field(2, ge=1, description="Layers of qformer / perceiver.")
    num_heads: int = Field(4, ge=1, description="Attention heads of the attention-based aligners.")
    hidden_size: int | None = Field(
        None, description="Internal width of qformer / perceiver; None uses the vision width."
    )
    every: int = Field(
        1, ge=1, description="cross_attn: insert a gated cross-attention block every N layers."
    )


class Aligner(nn.Module):
    """Base class: ``forward(features [B, N, Dv]) -> [B, T, D_llm]``."""

    splices: bool = True  # False: the output is attention memory, not spliced tokens

    def __init__(self, cfg: AlignerConfig, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision_dim = vision_dim
        self.llm_dim = llm_dim

    def visual_tokens(self, num_patches: int) -> int:
        """LLM positions one image occupies in the token stream."""
        return num_patches

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def describe(self, num_patches: int) -> dict[str, Any]:
        return {
            "aligner": self.cfg.name,
            "parameters": self.num_parameters(),
            "visual_tokens": self.visual_tokens(num_patches),
        }


AlignerBuilder = Callable[[AlignerConfig, int, int], Aligner]
ALIGNERS: Registry[type[Aligner]] = Registry("aligner")


def build_aligner(cfg: AlignerConfig | dict[str, Any], vision_dim: int, llm_dim: int) -> Aligner:
    """Build the aligner named by ``cfg.name`` (unknown names: did-you-mean error)."""
    cfg = cfg if isinstance(cfg, AlignerConfig) else AlignerConfig.model_validate(cfg)
    return ALIGNERS.get(cfg.name)(cfg, vision_dim, llm_dim)


@ALIGNERS.register("linear")
class LinearAligner(Aligner):
    """One linear projection per patch token (LLaVA-1.0)."""

    def __init__(self, cfg: AlignerConfig, vision_dim: int, llm_dim: int) -> None:
        super().__init__(cfg, vision_dim, llm_dim)
        self.proj = nn.Linear(vision_dim, llm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)


@ALIGNERS.register("mlp2x_gelu")
class MLPAligner(Aligner):
    """Linear → GELU → Linear per patch token (LLaVA-1.5); layout matches transformers'
    ``LlavaMultiModalProjector`` (``linear_1``, ``linear_2``) so it exports unchanged."""

    def __init__(self, cfg: AlignerConfig, vision_dim: int, llm_dim: int) -> None:
        super().__init__(cfg, vision_dim, llm_dim)
        self.linear_1 = nn.Linear(vision_dim, llm_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(llm_dim, llm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class _QueryAligner(Aligner):
    """Shared parts of the query-based aligners: queries, input/output projections."""

    def __init__(self, cfg: AlignerConfig, vision_dim: int, llm_dim: int) -> None:
        super().__init__(cfg, vision_dim, llm_dim)
        width = cfg.hidden_size or vision_dim
        self.width = width
        self.heads = _heads(width, cfg.num_heads)
        self.queries = nn.Parameter(torch.randn(cfg.num_queries, width) * 0.02)
        self.in_proj = nn.Linear(vision_dim, width) if width != vision_dim else nn.Identity()
        self.out_proj = nn.Linear(width, llm_dim)

    def visual_tokens(self, num_patches: int) -> int:
        return self.cfg.num_queries


def _heads(width: int, wanted: int) -> int:
    heads = min(wanted, width)
    while width % heads:
        heads -= 1
    return heads


class _QFormerLayer(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(width) for _ in range(3))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        h = self.norm1(q)
        q = q + self.self_attn(h, h, h, need_weights=False)[0]
        h = self.norm2(q)
        q = q + self.cross_attn(h, kv, kv, need_weights=False)[0]
        return q + self.ff(self.norm3(q))


@ALIGNERS.register("qformer")
class QFormerAligner(_QueryAligner):
    """BLIP-2 style: learned queries, per layer self-attention then cross-attention to patches."""

    def __init__(self, cfg: AlignerConfig, vision_dim: int, llm_dim: int) -> None:
        super().__init__(cfg, vision_dim, llm_dim)
        self.layers = nn.ModuleList(
            _QFormerLayer(self.width, self.heads) for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(self.width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        kv = self.in_proj(features)
        q = self.queries.unsqueeze(0).expand(features.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, kv)
        return self.out_proj(self.norm(q))


class _PerceiverLayer(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_media = nn.LayerNorm(width)
        self.norm_latents = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ff = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, 4 * width, bias=False),
            nn.GELU(),
            nn.Linear(4 * width, width, bias=False),
        )

    def forward(self, latents: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        x = self.norm_media(media)
        lat = self.norm_latents(latents)
        kv = torch.cat([x, lat], dim=1)  # Flamingo: latents attend to media and themselves
        latents = latents + self.attn(lat, kv, kv, need_weights=False)[0]
        return latents + self.ff(latents)


@ALIGNERS.register("perceiver")
class PerceiverAligner(_QueryAligner):
    """Flamingo's Perceiver resampler: latents cross-attend to ``[patches; latents]``."""

    def __init__(self, cfg: AlignerConfig, vision_dim: int, llm_dim: int) -> None:
        super().__init__(cfg, vision_dim, llm_dim)
        self.layers = nn.ModuleList(
            _PerceiverLayer(self.width, self.heads) for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(self.width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        media = self.in_proj(features)
        latents = self.queries.unsqueeze(0).expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, media)
        return self.out_proj(self.norm(latents))


class _Memory:
    """The current image memory shared by the inserted cross-attention blocks."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None


class GatedCrossAttention(nn.Module):
    """Flamingo's gated x-attn block: ``x + tanh(a)·xattn(x, mem)``, then ``+ tanh(b)·ff``."""

    def __init__(self, width: int, heads: int, memory: _Memory) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )
        self.ff_gate = nn.Parameter(torch.zeros(1))
        self._memory = memory

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem = self._memory.value
        if mem is None:  # text-only call: the block is the identity
            return x
        if mem.shape[0] != x.shape[0]:  # e.g. beams: repeat the image per sequence
            mem = mem.repeat_interleave(x.shape[0] // mem.shape[0], dim=0)
        mem = mem.to(x.dtype)
        x = (
            x
            + torch.tanh(self.attn_gate) * self.attn(self.norm(x), mem, mem, need_weights=False)[0]
        )
        return x + torch.tanh(self.ff_gate) * self.ff(x)


class _XAttnDecoderLayer(nn.Module):
    """Wraps one LLM decoder layer: gated cross-attention first, then the original layer."""

    def __init__(self, xattn: GatedCrossAttention, layer: nn.Module) -> None:
        super().__init__()
        self.xattn = xattn
        self.layer = layer
        for attr in ("attention_type", "layer_idx", "is_sliding"):
            if hasattr(layer, attr):
                setattr(self, attr, getattr(layer, attr))

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self.layer(self.xattn(hidden_states), *args, **kwargs)


def decoder_layers(llm: nn.Module) -> nn.ModuleList:
    """The decoder layer list of a transformers causal LM (Llama, Qwen, Mistral, Gemma, GPT-2…)."""
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers"):
        obj: Any = llm
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    from medmllm.errors import UnsupportedInputError

    raise UnsupportedInputError(
        f"cannot find the decoder layers of {type(llm).__name__} to insert cross-attention",
        hint="use a splicing aligner (linear, mlp2x_gelu, qformer, perceiver) with this LLM",
    )


@ALIGNERS.register("cross_attn")
class CrossAttnAligner(Aligner):
    """Flamingo-style fusion: memory tokens read by gated cross-attention inside the LLM."""

    splices = False

    def __init__(self, cfg: AlignerConfig, vision_dim: int, llm_dim: int) -> None:
        super().__init__(cfg, vision_dim, llm_dim)
        self.proj = nn.Linear(vision_dim, llm_dim)
        self.memory = _Memory()
        self.blocks = nn.ModuleList()
        self.heads = _heads(llm_dim, cfg.num_heads)

    def visual_tokens(self, num_patches: int) -> int:
        return 0

    def attach(self, llm: nn.Module) -> None:
        """Insert a gated cross-attention block before every ``every``-th decoder layer."""
        layers = decoder_layers(llm)
        if self.blocks:
            return
        for i in range(0, len(layers), self.cfg.every):
            block = GatedCrossAttention(self.llm_dim, self.heads, self.memory)
            self.blocks.append(block)
            layers[i] = _XAttnDecoderLayer(block, layers[i])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)

    def set_memory(self, memory: torch.Tensor | None) -> None:
        self.memory.value = memory
