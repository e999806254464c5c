"""Export a CLIP/SigLIP + ``mlp2x_gelu`` MedMLLM to the transformers LLaVA format.

The folder loads with ``LlavaForConditionalGeneration.from_pretrained`` (and in engines that
read that format, such as vLLM): the vision tower, the projector (``linear_1`` / ``linear_2``,
GELU) and the language model keep their weights; our encoder's feature layer becomes
``vision_feature_layer`` and all its tokens are kept (``vision_feature_select_strategy="full"``),
so the exported model computes the same logits as ours.

Example:
    >>> from medmllm.models.llava_export import export_llava
    >>> export_llava("runs/mllm/llava_gpu/model", "exports/llava")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from medmllm.errors import UnsupportedInputError
from medmllm.models.mllm import MedMLLM

LLAVA_ENCODERS = ("clip-vit", "siglip")


def llava_state_dict(model: MedMLLM) -> dict[str, torch.Tensor]:
    """Our weights under ``LlavaForConditionalGeneration``'s names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.encoder.model.state_dict().items():
        out[f"model.vision_tower.{key}"] = value
    for key, value in model.aligner.state_dict().items():
        out[f"model.multi_modal_projector.{key}"] = value
    for key, value in model.llm.state_dict().items():
        if key.startswith("model."):
            out[f"model.language_model.{key[len('model.') :]}"] = value
        else:  # lm_head
            out[key] = value
    return out


def export_llava(model: MedMLLM | str | Path, out_dir: str | Path) -> Path:
    """Write a LLaVA folder (config, safetensors, tokenizer, preprocessor config), atomically."""
    import transformers

    if not isinstance(model, MedMLLM):
        model = MedMLLM.from_pretrained(model)
    enc, al = model.cfg.encoder, model.cfg.aligner
    if enc.name not in LLAVA_ENCODERS or al.name != "mlp2x_gelu" or enc.output != "patch":
        raise UnsupportedInputError(
            f"LLaVA export needs a clip-vit or siglip encoder with patch tokens and the "
            f"mlp2x_gelu aligner, got {enc.name} ({enc.output}) + {al.name}",
            hint="build the model with encoder clip-vit/siglip and aligner mlp2x_gelu",
        )
    config = transformers.LlavaConfig(
        vision_config=model.encoder.model.config.to_dict(),
        text_config=model.llm.config.to_dict(),
        image_token_index=model.image_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=enc.feature_layer,
        vision_feature_select_strategy="full",
        image_seq_length=model.num_visual_tokens,
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(getattr(model.llm.config, "tie_word_embeddings", False)),
    )
    llava = transformers.LlavaForConditionalGeneration(config)
    missing, unexpected = llava.load_state_dict(llava_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise UnsupportedInputError(
            f"LLaVA export: weights do not map (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
    try:
        llava.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        proc = model.encoder.processor
        size = model.cfg.encoder.image_size
        preprocessor = {
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": True,
            "size": {"shortest_edge": size},
            "do_center_crop": True,
            "crop_size": {"height": size, "width": size},
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(proc.image_mean),
            "image_std": list(proc.image_std),
            "do_convert_rgb": True,
        }
        (tmp / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
