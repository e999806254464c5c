"""LLaVA export: the folder loads in LlavaForConditionalGeneration with our logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from medmllm.errors import UnsupportedInputError
from medmllm.models.llava_export import export_llava
from medmllm.models.mllm import MedMLLM, MLLMConfig


@pytest.mark.parametrize("encoder", ["clip-vit", "siglip"])
def test_llava_export_matches_logits(encoder: str, tmp_path: Path) -> None:
    from transformers import LlavaForConditionalGeneration

    model = MedMLLM.build(MLLMConfig.tiny(encoder, "mlp2x_gelu", size=32)).eval()
    folder = export_llava(model, tmp_path / "llava")
    llava = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    text = model.prompt_text([{"role": "user", "content": "Is there a fracture?"}], True)
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    pixels = model.pixel_values([Image.new("RGB", (40, 30), (120, 30, 200))])
    with torch.no_grad():
        ours = model(input_ids=ids, pixel_values=pixels).logits
        theirs = llava(input_ids=ids, pixel_values=pixels).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_llava_export_refuses_other_aligners(tmp_path: Path) -> None:
    model = MedMLLM.build(MLLMConfig.tiny("vit", "qformer", size=32))
    with pytest.raises(UnsupportedInputError, match="mlp2x_gelu"):
        export_llava(model, tmp_path / "x")
