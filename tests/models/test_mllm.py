"""MedMLLM assembly: every aligner splices or cross-attends, generates, saves and loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from medmllm.errors import CheckpointMismatchError, UnsupportedInputError
from medmllm.models.mllm import MedMLLM, MLLMConfig, is_mllm_folder

CASES = [
    ("vit", "linear"),
    ("resnet", "mlp2x_gelu"),
    ("siglip", "qformer"),
    ("clip-vit", "perceiver"),
    ("dinov2", "cross_attn"),
]


def _batch(model: MedMLLM) -> dict[str, torch.Tensor]:
    text = model.prompt_text([{"role": "user", "content": "Is there a fracture?"}], True) + "no"
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    return {
        "input_ids": ids,
        "labels": ids.clone().masked_fill(ids == model.image_token_id, -100),
        "pixel_values": model.pixel_values([Image.new("RGB", (40, 30), (90, 10, 10))]),
    }


@pytest.mark.parametrize(("encoder", "aligner"), CASES)
def test_forward_generate_save_load(encoder: str, aligner: str, tmp_path: Path) -> None:
    model = MedMLLM.build(MLLMConfig.tiny(encoder, aligner, size=32))
    batch = _batch(model)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.aligner.parameters() if p.requires_grad]
    assert grads and any(g is not None for g in grads)
    info = model.describe()
    assert info["visual_tokens"] == model.aligner.visual_tokens(model.encoder.num_tokens)
    answer = model.generate_text(Image.new("RGB", (8, 8)), "Is there a fracture?", 4)
    assert isinstance(answer, str)
    folder = model.save_pretrained(tmp_path / "m")
    assert is_mllm_folder(folder)
    again = MedMLLM.from_pretrained(folder)
    model.eval()
    with torch.no_grad():
        a = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        b = again(**{k: v for k, v in batch.items() if k != "labels"}).logits
    torch.testing.assert_close(a, b)


def test_config_that_does_not_match_weights(tmp_path: Path) -> None:
    folder = MedMLLM.build(MLLMConfig.tiny("vit", "qformer", size=32)).save_pretrained(
        tmp_path / "m"
    )
    cfg = json.loads((folder / "config.json").read_text())
    cfg["mllm"]["aligner"]["num_layers"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError, match="do not match"):
        MedMLLM.from_pretrained(folder)


def test_hf_backend_serves_a_folder_and_text_only_refuses_images(tmp_path: Path) -> None:
    from medmllm.models.generator import load_generator

    model = MedMLLM.build(MLLMConfig.tiny("vit", "mlp2x_gelu", size=32))
    folder = model.save_pretrained(tmp_path / "m")
    gen = load_generator("hf", str(folder))
    assert gen.supports_images and gen.backend == "mllm"  # an MLLM folder under -b hf
    out = gen.chat(
        [{"role": "user", "content": "Fracture?"}], [Image.new("RGB", (9, 9))], max_tokens=3
    )
    assert out.usage.completion_tokens >= 1
    assert len(gen.loglikelihood([("Is it", " yes")])) == 1
    # the LLM alone, saved as a plain HF folder, is text-only
    llm_dir = tmp_path / "llm"
    model.llm.save_pretrained(llm_dir)
    model.tokenizer.save_pretrained(llm_dir)
    text_only = load_generator("hf", str(llm_dir))
    assert not text_only.supports_images
    with pytest.raises(UnsupportedInputError, match="text-only"):
        text_only.chat([{"role": "user", "content": "Fracture?"}], [Image.new("RGB", (9, 9))])


def test_mllm_stream_stops_at_a_stop_string_and_cancels_generation() -> None:
    """The MedMLLM backend shares the hf streaming path: a stop string cuts the text and ends
    generation early (fewer tokens than max_tokens, finish "stop")."""
    from medmllm.models.backends.mllm import MLLMGenerator

    gen = MLLMGenerator(MedMLLM.build(MLLMConfig.tiny("vit", "mlp2x_gelu", size=32)))
    image = [Image.new("RGB", (9, 9))]
    question = [{"role": "user", "content": "Fracture?"}]
    sampling = {"max_tokens": 40, "temperature": 1.0, "seed": 1}  # greedy babbles newlines
    full = gen.chat(question, image, **sampling)
    words = full.text.split()
    assert len(words) >= 3, full.text  # a random tiny model babbles: something to stop at
    stop = words[1]
    cut = gen.chat(question, image, stop=[stop], **sampling)
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.finish_reason == "stop" and cut.usage.completion_tokens < 40
