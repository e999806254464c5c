"""End-to-end tests of the three backends on the embedded model (real engines)."""

from __future__ import annotations

import json
import sys

import pytest

from medmllm.errors import (
    BackendConnectionError,
    InvalidModelFileError,
    MissingDependencyError,
    UnsupportedInputError,
)
from medmllm.models.generator import LoglikelihoodRequest, load_generator
from tests.engines import free_port, require_llama_cpp

QUESTION = [
    {"role": "user", "content": "What is the first-line drug treatment for type 2 diabetes?"}
]


@pytest.fixture(scope="module")
def hf():
    gen = load_generator("hf")
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def llamacpp():
    require_llama_cpp()
    gen = load_generator("llamacpp")
    yield gen
    gen.close()


def _mcqa_requests(shared_data, n_questions: int = 6) -> list[list[LoglikelihoodRequest]]:
    rows = [
        json.loads(line)
        for line in (shared_data / "mcqa" / "medmcqa_dev.jsonl")
        .read_text()
        .splitlines()[:n_questions]
    ]
    groups = []
    for row in rows:
        options = "\n".join(f"{k}. {v}" for k, v in row["options"].items())
        context = f"Question: {row['question']}\n{options}\nAnswer:"
        groups.append([LoglikelihoodRequest(context, f" {k}") for k in row["options"]])
        # a multi-token continuation too: the option text itself
        groups.append([LoglikelihoodRequest(context, f" {v}") for v in row["options"].values()])
    return groups


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hf", "llamacpp"])
def test_chat_and_stream_agree(backend, request):
    gen = request.getfixturevalue(backend)
    completion = gen.chat(QUESTION, max_tokens=24)
    assert completion.text.strip()
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0
    assert completion.backend == backend
    streamed = "".join(chunk.text for chunk in gen.stream(QUESTION, max_tokens=24))
    assert streamed == completion.text  # greedy decoding is deterministic
    assert completion.finish_reason in ("stop", "length")


@pytest.mark.slow
def test_stop_strings_cut_the_answer(llamacpp, hf):
    for gen in (llamacpp, hf):
        full = gen.chat(QUESTION, max_tokens=24).text
        word = full.split()[2]
        cut = gen.chat(QUESTION, max_tokens=24, stop=[word]).text
        assert word not in cut and full.startswith(cut)


@pytest.mark.slow
def test_loglikelihood_agrees_between_hf_and_llamacpp(hf, llamacpp, shared_data):
    diffs = []
    for group in _mcqa_requests(shared_data):
        a = hf.loglikelihood(group)
        b = llamacpp.loglikelihood(group)
        ranking_a = sorted(range(len(a)), key=a.__getitem__)
        ranking_b = sorted(range(len(b)), key=b.__getitem__)
        assert ranking_a[-1] == ranking_b[-1], (a, b)  # same best option
        diffs += [abs(x - y) for x, y in zip(a, b, strict=True)]
    # Both run the same Q4_1 weights (hf dequantised to float32): values close, not equal.
    assert sum(diffs) / len(diffs) < 0.35, diffs


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hf", "llamacpp"])
def test_prefix_reuse_does_not_change_scores(backend, request, shared_data):
    gen = request.getfixturevalue(backend)
    shots = "".join(f"Question: Example {i}?\nAnswer: {'ABCD'[i % 4]}\n\n" for i in range(6))
    groups = _mcqa_requests(shared_data, 3)
    requests = [LoglikelihoodRequest(shots + r.context, r.continuation) for g in groups for r in g]
    together = gen.loglikelihood(requests)  # reuses the shared few-shot prefix
    alone = []
    for req in requests:  # force a cold cache each time
        gen.clear_cache()
        alone.append(gen.loglikelihood([req])[0])
    assert together == pytest.approx(alone, abs=2e-3)


@pytest.mark.slow
def test_openai_backend_against_llama_cpp_server(llama_server):
    gen = load_generator("openai", base_url=llama_server)
    completion = gen.chat(QUESTION, max_tokens=16)
    assert completion.text.strip() and completion.backend == "openai"
    streamed = "".join(c.text for c in gen.stream(QUESTION, max_tokens=16))
    assert streamed == completion.text
    # llama-cpp-python's server shifts echoed logprobs by one token: refused, not silently wrong.
    with pytest.raises(UnsupportedInputError, match="shifted by one token"):
        gen.loglikelihood([("Question: 2+2=? Answer:", " 4")])
    gen.close()


def test_openai_unreachable_url_fails_fast_naming_it():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendConnectionError, match=f"cannot reach .* at {url}"):
        load_generator("openai", base_url=url)


def test_llamacpp_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(MissingDependencyError, match=r"medmllm\[edge\]"):
        load_generator("llamacpp")


@pytest.mark.parametrize("backend", ["llamacpp", "hf"])
def test_not_a_gguf_file(backend, tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"\x00" * 64)
    if backend == "llamacpp":
        require_llama_cpp()
    with pytest.raises(InvalidModelFileError, match=r"not a GGUF file|neither a GGUF"):
        load_generator(backend, str(fake))
