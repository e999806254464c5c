"""Unit tests of the Generator interface's shared plumbing (no model needed)."""

from collections.abc import Iterator

import pytest

from medmllm.errors import (
    InvalidModelFileError,
    InvalidRequestError,
    ModelNotFoundError,
    UnknownNameError,
    UnsupportedInputError,
)
from medmllm.models.defaults import require_gguf, resolve_model_path
from medmllm.models.generator import (
    BaseGenerator,
    LoglikelihoodRequest,
    SamplingParams,
    StreamChunk,
    Usage,
    load_generator,
    split_context,
    stop_at,
)


class EchoGenerator(BaseGenerator):
    backend = "echo"

    def _stream(self, messages, images, params) -> Iterator[StreamChunk]:
        words = messages[-1].content.split()[: params.max_tokens]
        for word in words:
            yield StreamChunk(word + " ")
        yield StreamChunk("", finish_reason="stop", usage=Usage(3, len(words)))

    def _loglikelihood(self, requests):
        return [-float(len(r.continuation)) for r in requests]


def test_chat_is_built_on_stream():
    gen = EchoGenerator("echo-model")
    completion = gen.chat([{"role": "user", "content": "one two three"}], max_tokens=2)
    assert completion.text == "one two "
    assert completion.usage.total_tokens == 5
    assert completion.backend == "echo" and completion.model == "echo-model"
    assert completion.ttft_s is not None and completion.latency_s >= completion.ttft_s


@pytest.mark.parametrize("bad", [0, -3])
def test_max_tokens_must_be_positive(bad):
    with pytest.raises(InvalidRequestError, match="max_tokens must be a positive integer"):
        SamplingParams(max_tokens=bad)


def test_bad_sampling_values_and_unknown_options():
    gen = EchoGenerator("m")
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(InvalidRequestError, match="temperature"):
        gen.chat(msgs, temperature=-1)
    with pytest.raises(InvalidRequestError, match="top_p"):
        gen.chat(msgs, top_p=0)
    with pytest.raises(InvalidRequestError, match="unknown sampling option"):
        gen.chat(msgs, beam_width=4)


def test_empty_conversation_and_images_on_text_backend():
    gen = EchoGenerator("m")
    with pytest.raises(InvalidRequestError):
        gen.chat([])
    with pytest.raises(InvalidRequestError, match="no non-empty user message"):
        gen.chat([{"role": "user", "content": "   "}])
    with pytest.raises(InvalidRequestError, match="role"):
        gen.chat([{"text": "hi"}])
    with pytest.raises(UnsupportedInputError, match="text-only"):
        gen.chat([{"role": "user", "content": "what is this?"}], images=["x.png"])


def test_loglikelihood_accepts_tuples_and_rejects_empty_continuations():
    gen = EchoGenerator("m")
    assert gen.loglikelihood([("ctx", " A"), LoglikelihoodRequest("ctx", " BB")]) == [-2.0, -3.0]
    assert gen.loglikelihood([]) == []
    with pytest.raises(InvalidRequestError, match="empty continuation"):
        gen.loglikelihood([("ctx", "")])


def test_split_context_moves_trailing_space_to_continuation():
    encode = lambda text: list(text.encode())  # noqa: E731 - byte "tokenizer"
    ctx, cont = split_context(encode, "Answer: ", "B")
    assert bytes(ctx) == b"Answer:" and bytes(cont) == b" B"


def test_stop_at_cuts_at_first_stop_string():
    assert stop_at("abc\nQuestion: x", ["\nQuestion:", "zzz"]) == ("abc", True)
    assert stop_at("abc", ["zzz"]) == ("abc", False)


def test_unknown_backend_suggests_close_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'llamacpp'"):
        load_generator("llama", None)


def test_missing_model_path_and_non_gguf(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nope.gguf"))
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    with pytest.raises(InvalidModelFileError, match="not a GGUF file"):
        require_gguf(fake)
    with pytest.raises(InvalidModelFileError, match="is a folder"):
        require_gguf(tmp_path)
