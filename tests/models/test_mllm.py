"""MedMLLM assembly: every aligner splices or cross-attends, generates, saves and loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from medmllm.errors import CheckpointMismatchError, InvalidRequestError, UnsupportedInputError
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


# -- positive controls: the image reaches the logits, the scores and the server's logprobs -------
BRIGHT = Image.new("RGB", (32, 32), (230, 230, 230))
DARK = Image.new("RGB", (32, 32), (20, 20, 20))


def _last_logits(model: MedMLLM, image: Image.Image) -> torch.Tensor:
    text = model.prompt_text([{"role": "user", "content": "Is it bright?"}], True)
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=model.pixel_values([image])).logits[0, -1]


@pytest.mark.parametrize(("encoder", "aligner"), CASES)
def test_logits_depend_on_the_image_for_every_aligner(encoder: str, aligner: str) -> None:
    """Two images, one prompt: different next-token logits. cross_attn's tanh gates start at 0
    (the untrained model is the LLM), so it must differ after one training step of the aligner."""
    model = MedMLLM.build(MLLMConfig.tiny(encoder, aligner, size=32))
    at_init = (_last_logits(model, BRIGHT) - _last_logits(model, DARK)).abs().max()
    if aligner == "cross_attn":
        assert at_init == 0.0
    else:
        assert at_init > 1e-3
    model.train()
    batch = _batch(model)
    optimizer = torch.optim.AdamW(model.aligner.parameters(), lr=1e-2)
    model(**batch).loss.backward()
    optimizer.step()
    after = (_last_logits(model, BRIGHT) - _last_logits(model, DARK)).abs().max()
    assert after > 1e-4, after


@pytest.fixture(scope="module")
def mllm_generator() -> Any:
    from medmllm.models.backends.mllm import MLLMGenerator

    return MLLMGenerator(MedMLLM.build(MLLMConfig.tiny("vit", "mlp2x_gelu", size=32)))


def test_loglikelihood_scores_with_the_request_image(mllm_generator: Any, tmp_path: Path) -> None:
    from medmllm.models.generator import LoglikelihoodRequest as R

    path = tmp_path / "bright.png"
    BRIGHT.save(path)
    reqs = [
        R("Is it bright?", " yes", (BRIGHT,)),
        R("Is it bright?", " yes", (DARK,)),
        R("Is it bright?", " no", [str(path)]),  # a path, given as a list
        R("Is it bright?", " yes", (str(path),)),
        R("Is it bright?", " yes"),  # text only: the raw context, as before
    ]
    scores = mllm_generator.loglikelihood(reqs)
    assert scores[0] != pytest.approx(scores[1], abs=1e-4)  # the image changes the score
    assert scores[3] == pytest.approx(scores[0], abs=1e-4)  # a file and its pixels agree
    # batched, longest first, image rows apart from text rows = one request at a time
    one_by_one = [mllm_generator.loglikelihood([r])[0] for r in reqs]
    assert scores == pytest.approx(one_by_one, abs=1e-4)
    # the text-only request keeps the old (image-free, raw-text) scoring
    mllm = mllm_generator.mllm
    ids = mllm.tokenizer("Is it bright? yes", add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = mllm(input_ids=torch.tensor([ids])).logits[0]
    n_ctx = len(mllm.tokenizer("Is it bright?", add_special_tokens=False).input_ids)
    logp = torch.log_softmax(logits[n_ctx - 1 : -1], -1)
    expected = float(logp.gather(1, torch.tensor(ids[n_ctx:])[:, None]).sum())
    assert scores[4] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(InvalidRequestError, match="one image"):
        mllm_generator.loglikelihood([R("Is it bright?", " yes", (BRIGHT, DARK))])


def test_text_only_scorers_refuse_images(tiny_llama_dir: Path) -> None:
    from medmllm.models.generator import LoglikelihoodRequest, load_generator
    from tests.fakes import FakeGenerator

    for gen in (
        load_generator("hf", str(tiny_llama_dir)),
        FakeGenerator(supports_images=True),  # chats with images, cannot score with them
    ):
        with pytest.raises(UnsupportedInputError, match="cannot score"):
            gen.loglikelihood([LoglikelihoodRequest("Is it bright?", " yes", ("x.png",))])
        assert len(gen.loglikelihood([("Is it bright?", " yes")])) == 1  # the tuple form


def test_eval_cache_keys_scores_by_image(mllm_generator: Any, tmp_path: Path) -> None:
    from medmllm.eval.cache import CachedGenerator, CallCache
    from medmllm.models.generator import LoglikelihoodRequest as R

    bright, dark = tmp_path / "b.png", tmp_path / "d.png"
    BRIGHT.save(bright)
    DARK.save(dark)
    cached = CachedGenerator(mllm_generator, CallCache(None))
    first = cached.loglikelihood([R("Is it bright?", " yes", (str(bright),))])
    second = cached.loglikelihood([R("Is it bright?", " yes", (str(dark),))])
    assert cached.model_calls == 2 and first != second  # never the other image's cached score
    assert cached.loglikelihood([R("Is it bright?", " yes", (str(bright),))]) == first
    assert cached.model_calls == 2


def test_server_chat_logprobs_score_with_the_image(mllm_generator: Any, tmp_path: Path) -> None:
    """/v1/chat/completions with logprobs=true on a MedMLLM: the reply's token log-probs are
    computed with the request's image (they were None for a MedMLLM before)."""
    import base64
    import io

    from fastapi.testclient import TestClient

    from medmllm.serve.scoring import chat_prompt_text, completion_logprobs
    from tests.serve.conftest import make_app

    def url(image: Image.Image) -> str:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    def body(image: Image.Image) -> dict[str, Any]:
        content = [
            {"type": "text", "text": "Is it bright?"},
            {"type": "image_url", "image_url": {"url": url(image)}},
        ]
        return {
            "model": mllm_generator.model_id,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 4,
            "temperature": 1.0,  # greedy babbles newlines, which merge into the prompt's last
            "seed": 1,
            "logprobs": True,
        }

    with TestClient(make_app(mllm_generator, tmp_path)) as client:
        replies = [
            client.post("/v1/chat/completions", json=body(im)).json() for im in (BRIGHT, DARK)
        ]
    msgs = [{"role": "user", "content": "Is it bright?"}]
    for reply, image in zip(replies, (BRIGHT, DARK), strict=True):
        choice = reply["choices"][0]
        served = [t["logprob"] for t in choice["logprobs"]["content"]]
        assert served  # tokens of the reply, scored
        prompt = chat_prompt_text(mllm_generator, msgs, [image])
        assert "<image>" in prompt
        direct = completion_logprobs(
            mllm_generator, prompt, choice["message"]["content"], 0, [image]
        )
        assert served == pytest.approx(direct.token_logprobs, abs=1e-4)
        blind = completion_logprobs(
            mllm_generator, chat_prompt_text(mllm_generator, msgs), choice["message"]["content"]
        )
        assert served != pytest.approx(blind.token_logprobs, abs=1e-4)
