"""Batched log-likelihood scoring on ``hf`` gives the scores of one plain forward per request.

A tiny random-initialised Llama (built from a config in conftest) keeps this a fast unit test;
the same check on the embedded model is in ``test_batching_slow.py``.
"""

from __future__ import annotations

import pytest

from medmllm.errors import InvalidRequestError
from medmllm.models.generator import LoglikelihoodRequest, load_generator, split_context

SHOTS = "".join(
    f"Question: Example {i} hypertension?\nAnswer: {'ABCD'[i % 4]}\n\n" for i in range(4)
)
STEMS = [
    "Which drug is first line for type 2 diabetes?",
    "What does HbA1c measure?",
    "Chest pain, sweating and a raised troponin suggest what?",
    "Sepsis",
]


def _requests(shots: str) -> list[LoglikelihoodRequest]:
    out = []
    for stem in STEMS:
        ctx = f"{shots}Question: {stem}\nA. Metformin\nB. Insulin\nC. Aspirin\nAnswer:"
        out += [LoglikelihoodRequest(ctx, f" {k}") for k in "ABC"]
        out.append(LoglikelihoodRequest(ctx, " Metformin and sepsis"))  # multi-token
    out.append(LoglikelihoodRequest("", "hello there"))  # empty context
    out.append(LoglikelihoodRequest("Answer: ", "yes maybe"))  # trailing space moves
    return out


def _reference(gen, req: LoglikelihoodRequest) -> float:
    """One unpadded forward of context + continuation, no cache: the textbook definition."""
    import torch

    ctx, cont = split_context(gen._encode, req.context, req.continuation)
    ctx = gen._bos() + ctx or [gen.tokenizer.eos_token_id]
    ids = torch.tensor([ctx + cont])
    with torch.inference_mode():
        logp = torch.log_softmax(gen.model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(logp[len(ctx) - 1 + j, tok]) for j, tok in enumerate(cont))


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_generator("hf", str(tiny_llama_dir))


@pytest.mark.parametrize("shots", ["", SHOTS], ids=["zero-shot", "few-shot"])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_scores_equal_one_plain_forward_each(tiny, shots, batch_size):
    tiny.batch_size = batch_size
    tiny.clear_cache()
    requests = _requests(shots)
    got = tiny.loglikelihood(requests)
    want = [_reference(tiny, r) for r in requests]
    assert got == pytest.approx(want, abs=1e-4)
    # options really differ, so the check is not vacuous
    assert len({round(x, 3) for x in got[:3]}) == 3


def test_prefix_cache_reused_across_calls_gives_same_scores(tiny):
    tiny.batch_size = 4
    tiny.clear_cache()
    requests = _requests(SHOTS)
    whole = tiny.loglikelihood(requests)
    one_by_one = [tiny.loglikelihood([r])[0] for r in requests]  # warm prefix, cropped each time
    assert one_by_one == pytest.approx(whole, abs=1e-4)
    assert tiny._prefix is not None and len(tiny._prefix[0]) >= 16  # the exemplars were cached


def test_one_row_per_context_for_single_token_options(tiny):
    rows, plan = tiny._rows(_requests(""))
    # 4 questions: one shared row for " A"/" B"/" C", one row for the multi-token option; + 2
    assert len(rows) == 4 * 2 + 2
    assert len(plan) == len(_requests(""))


def test_chat_batch_gives_the_greedy_chat_replies(tiny_llama_dir):
    """Left-padded batches, grouped by max_tokens, give each row what chat gives it alone,
    including rows that end (EOS) while others in their batch go on."""
    gen = load_generator("hf", str(tiny_llama_dir))
    conversations = [[{"role": "user", "content": stem}] for stem in STEMS]
    limits = [8, 3, 8, 1]

    def check() -> list[str]:
        got = gen.chat_batch(conversations, limits, batch_size=3)
        for conv, limit, completion in zip(conversations, limits, got, strict=True):
            alone = gen.chat(conv, max_tokens=limit, temperature=0)
            assert (completion.text, completion.usage) == (alone.text, alone.usage)
            assert completion.finish_reason == alone.finish_reason
        return [c.finish_reason for c in got]

    assert check() == ["length"] * 4
    # make the 4th token of the third reply the end of turn: that row stops mid-batch
    third = gen.chat(conversations[2], max_tokens=8, temperature=0).text
    eos = gen.tokenizer(third, add_special_tokens=False).input_ids[3]
    gen.tokenizer.eos_token = gen.tokenizer.convert_ids_to_tokens(eos)
    gen.model.generation_config.eos_token_id = eos
    assert check().count("stop") >= 1
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        gen.chat_batch(conversations, [5, 5])
