"""Token-level log-probabilities and raw-text completion for the OpenAI routes.

The :class:`~medmllm.models.generator.Generator` interface scores (context, continuation) pairs
and chats; the legacy ``/v1/completions`` route also needs *per-token* prompt log-probs
(``echo=True, logprobs=N``, how lm-eval's ``local-completions`` and medmllm's own ``openai``
backend score multiple choice) and completion of raw text without a chat template. Those need
the model's tokenizer and logits, which only the transformers backend exposes, so this module
serves them for :class:`~medmllm.models.backends.hf.HFGenerator` and says so clearly otherwise.
The chat route's ``logprobs=true`` also works for a MedMLLM
(:class:`~medmllm.models.backends.mllm.MLLMGenerator`), scored with the request's image.

Alignment follows OpenAI / vLLM: ``token_logprobs[i]`` is log p(token i | tokens < i), from the
logits at position i-1; the first token has ``None`` unless the model prepends a BOS token.

Given the server's generator, these functions reach the transformers model under its wrappers:
text is de-identified first when the server scrubs model input (the model scores what it would
generate from), and raw generation stops at the request's deadline like every other call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medmllm.errors import UnsupportedInputError
from medmllm.models.generator import Generator, ImageInput, SamplingParams
from medmllm.safety.scrub import ScrubbingGenerator
from medmllm.serve.runtime import CancellableGenerator, cancel_requested, check_cancelled


@dataclass
class TokenLogprobs:
    """OpenAI's ``logprobs`` object of the legacy completions API."""

    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)
    text: str = ""  # the text scored, as the model saw it (de-identified when the server scrubs)

    def extend(self, other: TokenLogprobs, offset: int) -> None:
        self.tokens += other.tokens
        self.token_logprobs += other.token_logprobs
        self.top_logprobs += other.top_logprobs
        self.text_offset += [o + offset for o in other.text_offset]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top_logprobs,
            "text_offset": self.text_offset,
        }


def _as_is(text: str) -> str:
    return text


def _unwrap(gen: Generator) -> tuple[Generator, Callable[[str], str]]:
    """The model under the server's wrappers, and the scrubbing its input goes through."""
    scrub: Callable[[str], str] = _as_is
    if isinstance(gen, ScrubbingGenerator):
        scrub, gen = gen.scrub, gen.inner
    if isinstance(gen, CancellableGenerator):
        gen = gen.inner
    return gen, scrub


def _hf(gen: Generator) -> tuple[Any, Callable[[str], str]]:
    from medmllm.models.backends.hf import HFGenerator

    model, scrub = _unwrap(gen)
    if not isinstance(model, HFGenerator):
        raise UnsupportedInputError(
            f"per-token logprobs and raw completions need the hf backend; this server runs "
            f"{gen.backend!r}",
            hint="start `medmllm serve --backend hf`, or use /v1/chat/completions",
        )
    return model, scrub


def supports_tokens(gen: Generator) -> bool:
    """Whether :func:`prompt_logprobs` and :func:`complete_raw` work with this generator."""
    from medmllm.models.backends.hf import HFGenerator

    return isinstance(_unwrap(gen)[0], HFGenerator)


def supports_chat_logprobs(gen: Generator) -> bool:
    """Whether the chat route can return ``logprobs`` (hf, and MedMLLM with its image)."""
    from medmllm.models.backends.hf import HFGenerator
    from medmllm.models.backends.mllm import MLLMGenerator

    return isinstance(_unwrap(gen)[0], HFGenerator | MLLMGenerator)


def _scorer(gen: Generator) -> tuple[Any, Callable[[str], str]]:
    """The model that scores text (hf, or a MedMLLM with its image) and the input scrubbing."""
    from medmllm.models.backends.mllm import MLLMGenerator

    model, scrub = _unwrap(gen)
    if isinstance(model, MLLMGenerator):
        return model, scrub
    return _hf(gen)


def _encode_with_offsets(gen: Any, text: str) -> tuple[list[int], list[tuple[int, int]], int]:
    enc = gen.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc.input_ids)
    offsets = [tuple(o) for o in enc.offset_mapping]
    bos = gen.tokenizer.bos_token_id
    prefix = [bos] if bos is not None and getattr(gen.tokenizer, "add_bos_token", False) else []
    return prefix + ids, [(0, 0)] * len(prefix) + offsets, len(prefix)


def prompt_logprobs(
    gen: Generator, text: str, top: int = 0, images: list[ImageInput] | None = None
) -> tuple[TokenLogprobs, Any]:
    """Per-token log-probs of ``text`` (one forward pass) and the next-token log-probs.

    ``images``: a MedMLLM's image, spliced at the placeholders ``text`` holds (the chat
    prompt of :func:`chat_prompt_text`); other backends score text only.

    Returns:
        (logprobs of the text's tokens, log-prob vector of the token after the text); the
        first's ``text`` is what was scored (de-identified when the server scrubs).
    """
    model, scrub = _scorer(gen)
    return _scored(model, scrub(text), top, images)


def _scored(
    model: Any, text: str, top: int, images: list[ImageInput] | None = None
) -> tuple[TokenLogprobs, Any]:
    import torch

    from medmllm.models.backends.mllm import MLLMGenerator

    hf = model
    ids, offsets, n_prefix = _encode_with_offsets(hf, text)
    if not ids:
        ids, offsets, n_prefix = [hf.tokenizer.eos_token_id], [(0, 0)], 1
    if isinstance(hf, MLLMGenerator):
        logits = hf.sequence_logits(ids, images[0] if images else None)
    else:
        with torch.inference_mode():
            logits = hf.model(input_ids=torch.tensor([ids], device=hf.device)).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    out = TokenLogprobs(text=text)
    for i in range(n_prefix, len(ids)):
        start, end = offsets[i]
        out.tokens.append(text[start:end] or hf.tokenizer.decode([ids[i]]))
        out.text_offset.append(start)
        if i == 0:
            out.token_logprobs.append(None)
            out.top_logprobs.append(None)
            continue
        row = logp[i - 1]
        out.token_logprobs.append(float(row[ids[i]]))
        out.top_logprobs.append(_top(hf, row, top) if top else None)
    return out, logp[-1]


def _top(hf: Any, row: Any, k: int) -> dict[str, float]:
    values, indices = row.topk(k)
    return {
        hf.tokenizer.decode([int(i)]): float(v)
        for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    }


def complete_raw(
    gen: Generator, prompt: str, params: SamplingParams, top: int = 0
) -> tuple[str, TokenLogprobs, str, int, int]:
    """Continue ``prompt`` as raw text (no chat template); stops at the request's deadline.

    Returns:
        (text, logprobs of the generated tokens, finish reason, prompt tokens, completion tokens).
    """
    hf, scrub = _hf(gen)
    import torch
    import transformers

    class _Deadline(transformers.StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return cancel_requested()

    ids, _, _ = _encode_with_offsets(hf, scrub(prompt))
    input_ids = torch.tensor([ids], device=hf.device)
    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "max_new_tokens": params.max_tokens,
        "pad_token_id": hf.tokenizer.pad_token_id,
        "output_scores": True,
        "return_dict_in_generate": True,
        "stopping_criteria": transformers.StoppingCriteriaList([_Deadline()]),
    }
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        if params.seed is not None:
            torch.manual_seed(params.seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = hf.model.generate(**kwargs)
    check_cancelled()  # stopped for the deadline: not a finished completion
    new = out.sequences[0, len(ids) :].tolist()
    eos = hf.tokenizer.eos_token_id
    finish = "stop" if new and new[-1] == eos else "length"
    if new and new[-1] == eos:
        new = new[:-1]
    lps = TokenLogprobs()
    text = ""
    for step, tok in enumerate(new):
        piece = hf.tokenizer.decode([tok], skip_special_tokens=True)
        row = torch.log_softmax(out.scores[step][0].float(), dim=-1)
        lps.tokens.append(piece)
        lps.text_offset.append(len(text))
        lps.token_logprobs.append(float(row[tok]))
        lps.top_logprobs.append(_top(hf, row, top) if top else None)
        text += piece
    if params.stop:
        from medmllm.models.generator import stop_at

        cut, stopped = stop_at(text, params.stop)
        if stopped:
            keep = sum(1 for o in lps.text_offset if o < len(cut))
            for name in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                setattr(lps, name, getattr(lps, name)[:keep])
            text, finish = cut, "stop"
    return text, lps, finish, len(ids), len(new)


def completion_logprobs(
    gen: Generator,
    prompt_text: str,
    completion: str,
    top: int = 0,
    images: list[ImageInput] | None = None,
) -> TokenLogprobs:
    """Log-probs of ``completion``'s tokens after ``prompt_text`` (chat ``logprobs=true``).

    ``prompt_text`` is :func:`chat_prompt_text`'s (already what the model saw) and
    ``completion`` the model's own reply, so neither is scrubbed again here; ``images`` are a
    MedMLLM's, spliced at the placeholders ``prompt_text`` holds.
    """
    model, _ = _scorer(gen)
    scored, _ = _scored(model, prompt_text + completion, top, images)
    out = TokenLogprobs()
    for i, off in enumerate(scored.text_offset):
        if off >= len(prompt_text):
            out.tokens.append(scored.tokens[i])
            out.token_logprobs.append(scored.token_logprobs[i])
            out.top_logprobs.append(scored.top_logprobs[i])
            out.text_offset.append(off - len(prompt_text))
    return out


def chat_prompt_text(
    gen: Generator, messages: list[dict[str, str]], images: list[ImageInput] | None = None
) -> str:
    """The text the backend feeds the model for ``messages`` (its chat template; a MedMLLM's
    with the image placeholders when there are ``images``), de-identified when the server
    scrubs."""
    from medmllm.models.backends.mllm import MLLMGenerator

    hf, scrub = _scorer(gen)
    messages = [{**m, "content": scrub(m["content"])} for m in messages]
    if isinstance(hf, MLLMGenerator):
        return hf.mllm.prompt_text(messages, with_image=bool(images))
    if hf.tokenizer.chat_template:
        return str(
            hf.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
