"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models.

Request schemas accept the fields OpenAI clients send (unknown ones are ignored, as OpenAI
does); responses follow the OpenAI shapes, streaming as server-sent events. Every user turn goes
through the guard first: a crisis turn is answered with the safe-messaging reply (never the
model's text), and every request is audited with its prompt de-identified.
"""

from __future__ import annotations

import base64
import binascii
import io
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from medmllm.models.generator import SamplingParams, StreamChunk
from medmllm.serve.scoring import (
    TokenLogprobs,
    chat_prompt_text,
    complete_raw,
    completion_logprobs,
    prompt_logprobs,
    supports_chat_logprobs,
    supports_tokens,
)
from medmllm.serve.state import (
    ApiError,
    ServerState,
    check_max_tokens,
    require_key,
    sse_response,
)


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(max_length=20_000_000, description="A data: URL (base64 PNG/JPEG).")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url"] = Field(description="Part kind.")
    text: str | None = Field(None, description="Text of a text part.")
    image_url: ImageURL | None = Field(None, description="Image of an image_url part.")


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer"] = Field(description="Speaker.")
    content: str | list[ContentPart] = Field(description="Text or a list of parts.")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(description="A name from /v1/models.")
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=256, description="The chat.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Alias of max_tokens.")
    temperature: float | None = Field(None, ge=0, le=2, description="0 = greedy.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus mass.")
    stop: str | list[str] | None = Field(None, description="Stop strings.")
    seed: int | None = Field(None, description="Sampling seed.")
    stream: bool = Field(False, description="Server-sent events.")
    logprobs: bool = Field(
        False, description="Return token log-probs (hf and MedMLLM backends; with the image)."
    )
    top_logprobs: int | None = Field(None, ge=0, le=20, description="Alternatives per token.")
    n: int = Field(1, ge=1, le=1, description="Only 1 choice is supported.")
    user: str | None = Field(None, max_length=256, description="End-user id (hashed in audit).")


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(description="A name from /v1/models.")
    prompt: str | list[str] = Field(description="Raw text prompt(s).")
    max_tokens: int | None = Field(16, ge=0, description="Most tokens (0 with echo: score only).")
    temperature: float | None = Field(None, ge=0, le=2, description="0 = greedy.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus mass.")
    stop: str | list[str] | None = Field(None, description="Stop strings.")
    seed: int | None = Field(None, description="Sampling seed.")
    echo: bool = Field(False, description="Return the prompt (and its logprobs) too.")
    logprobs: int | None = Field(None, ge=0, le=20, description="Top alternatives per token.")
    stream: bool = Field(False, description="Server-sent events (one chunk per prompt).")
    n: int = Field(1, ge=1, le=1, description="Only 1 choice is supported.")
    user: str | None = Field(None, max_length=256, description="End-user id (hashed in audit).")


def _check_model(state: ServerState, name: str) -> None:
    if name not in (state.model_name, "default"):
        raise ApiError(
            404,
            f"model {name!r} not found; available: {[state.model_name]}",
            "not_found_error",
        )


def _sampling(state: ServerState, req: ChatRequest | CompletionRequest, default_max: int) -> dict:
    max_tokens = getattr(req, "max_completion_tokens", None) or req.max_tokens or default_max
    check_max_tokens(state, max_tokens)
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    params: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": req.temperature or 0.0,
        "top_p": req.top_p or 1.0,
        "stop": stop,
        "seed": req.seed,
    }
    SamplingParams(**{**params, "stop": tuple(stop)})
    return params


def decode_image(state: ServerState, url: str) -> Any:
    """A data URL to a PIL image, refusing oversized, corrupt and decompression-bomb images."""
    from PIL import Image, UnidentifiedImageError

    cfg = state.config
    if not url.startswith("data:image/") or ";base64," not in url:
        raise ApiError(400, "images must be data:image/...;base64 URLs (no remote fetches)")
    payload = url.split(";base64,", 1)[1]
    if len(payload) * 3 // 4 > cfg.max_image_bytes:
        raise ApiError(413, f"image over {cfg.max_image_bytes} bytes")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image is not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            width, height = probe.size
            if width * height > cfg.max_image_pixels:
                raise ApiError(413, f"image of {width}x{height} pixels over the limit")
            probe.verify()
        image = Image.open(io.BytesIO(raw))
        image.load()
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ApiError(400, "image could not be decoded (corrupt or unsupported)") from None
    return image.convert("RGB")


def _split_messages(state: ServerState, req: ChatRequest) -> tuple[list[dict[str, str]], list]:
    messages: list[dict[str, str]] = []
    images: list[Any] = []
    for m in req.messages:
        role = "system" if m.role == "developer" else m.role
        if isinstance(m.content, str):
            messages.append({"role": role, "content": m.content})
            continue
        texts = []
        for part in m.content:
            if part.type == "text":
                texts.append(part.text or "")
            elif part.image_url is not None:
                images.append(part.image_url.url)
        messages.append({"role": role, "content": "\n".join(texts)})
    if images:
        if not state.generator.supports_images:
            raise ApiError(400, f"model {state.model_name!r} is text-only; remove the images")
        if len(images) > state.config.max_images:
            raise ApiError(400, f"at most {state.config.max_images} images per request")
        images = [decode_image(state, url) for url in images]
    if not any(m["role"] == "user" and m["content"].strip() for m in messages):
        raise ApiError(400, "the conversation has no non-empty user message")
    return messages, images


def _last_user(messages: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def build_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.get("/models")
    async def models() -> dict[str, Any]:
        """The served model (OpenAI shape)."""
        return {
            "object": "list",
            "data": [
                {"id": state.model_name, "object": "model", "created": 0, "owned_by": "medmllm"}
            ],
        }

    @router.post("/chat/completions", response_model=None)
    async def chat(
        req: ChatRequest, request: Request, user_hash: str | None = Depends(require_key)
    ):
        """Chat completion; ``stream=true`` for server-sent events."""
        _check_model(state, req.model)
        messages, images = _split_messages(state, req)
        params = _sampling(state, req, 256)
        question = _last_user(messages)
        verdict = state.guard.check(question)
        slot = state.runner.admit()
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        start = time.perf_counter()
        audit_user = req.user or user_hash
        if verdict.reply is not None:
            state.crisis.inc()

        def chunks() -> Any:
            if verdict.reply is not None:
                return iter([StreamChunk(verdict.reply), StreamChunk("", "stop")])
            return state.generator.stream(messages, images or None, **params)

        def audit(status: str | int, n_tokens: int) -> None:
            state.tokens.inc(n_tokens)
            state.guard.audit(
                prompt=question,
                user=audit_user,
                model=state.model_name,
                route="chat",
                latency_s=time.perf_counter() - start,
                crisis=verdict.crisis,
                status=status,
            )

        extra = {"medmllm": {"crisis": verdict.crisis.to_dict()}} if verdict.reply else {}
        if req.stream:

            async def events() -> AsyncIterator[dict[str, Any]]:
                n, status = 0, "ok"
                base = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": state.model_name,
                }
                try:
                    yield {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
                        ],
                    }
                    async for chunk in state.runner.iterate(slot, chunks):
                        if chunk.text:
                            n += 1
                            yield {
                                **base,
                                "choices": [
                                    {
                                        "index": 0,
                                        "delta": {"content": chunk.text},
                                        "finish_reason": None,
                                    }
                                ],
                            }
                        if chunk.finish_reason is not None:
                            usage = chunk.usage.to_dict() if chunk.usage else None
                            yield {
                                **base,
                                **extra,
                                "choices": [
                                    {"index": 0, "delta": {}, "finish_reason": chunk.finish_reason}
                                ],
                                "usage": usage,
                            }
                except Exception:
                    status = "error"
                    yield {
                        **base,
                        "error": {
                            "message": "generation failed or timed out",
                            "type": "server_error",
                        },
                    }
                finally:
                    slot.release()
                    audit(status, n)

            return sse_response(events())

        with slot:
            text, finish, usage = "", "stop", None
            async for chunk in state.runner.iterate(slot, chunks):
                text += chunk.text
                if chunk.finish_reason is not None:
                    finish = chunk.finish_reason
                if chunk.usage is not None:
                    usage = chunk.usage
            logprobs = None
            if req.logprobs and verdict.reply is None and supports_chat_logprobs(state.generator):
                lp = await state.runner.call(
                    slot,
                    _reply_logprobs,
                    state,
                    messages,
                    text,
                    req.top_logprobs or 0,
                    images or None,
                )
                logprobs = {"content": _chat_logprobs(lp)}
            audit("ok", usage.completion_tokens if usage else 0)
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": state.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                    "logprobs": logprobs,
                }
            ],
            "usage": usage.to_dict() if usage else None,
            **extra,
        }

    @router.post("/completions", response_model=None)
    async def completions(
        req: CompletionRequest, request: Request, user_hash: str | None = Depends(require_key)
    ):
        """Raw-text completion; ``echo`` + ``logprobs`` score the prompt (multiple choice)."""
        _check_model(state, req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts or len(prompts) > 32:
            raise ApiError(400, "prompt must be a string or a list of 1 to 32 strings")
        params = _sampling(state, req, 16) if req.max_tokens else None
        if (req.echo or req.logprobs is not None) and not supports_tokens(state.generator):
            raise ApiError(400, "echo/logprobs need the hf backend on this server")
        top = req.logprobs or 0
        start = time.perf_counter()
        choices = []
        total_prompt = total_new = 0
        with state.runner.admit() as slot:  # one deadline for all the prompts
            for i, prompt in enumerate(prompts):
                verdict = state.guard.check(prompt)
                if verdict.reply is not None:
                    state.crisis.inc()
                    choices.append(
                        {
                            "index": i,
                            "text": verdict.reply,
                            "finish_reason": "stop",
                            "logprobs": None,
                            "medmllm": {"crisis": verdict.crisis.to_dict()},
                        }
                    )
                    continue
                choice = await state.runner.call(
                    slot,
                    _complete_one,
                    state,
                    prompt,
                    params,
                    req.echo,
                    top,
                    req.logprobs is not None,
                )
                total_prompt += choice.pop("_prompt_tokens")
                total_new += choice.pop("_new_tokens")
                choices.append({"index": i, **choice})
                state.guard.audit(
                    prompt=prompt,
                    user=req.user or user_hash,
                    model=state.model_name,
                    route="completions",
                    latency_s=time.perf_counter() - start,
                    crisis=verdict.crisis,
                )
        state.tokens.inc(total_new)
        body = {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": state.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": total_prompt,
                "completion_tokens": total_new,
                "total_tokens": total_prompt + total_new,
            },
        }
        if req.stream:

            async def events() -> AsyncIterator[dict[str, Any]]:
                yield {**body, "object": "text_completion"}

            return sse_response(events())
        return body

    return router


def _reply_logprobs(
    state: ServerState,
    messages: list[dict[str, str]],
    reply: str,
    top: int,
    images: list[Any] | None = None,
) -> TokenLogprobs:
    """Log-probs of a chat reply after its prompt, with its image (runs on the model thread)."""
    prompt_text = chat_prompt_text(state.generator, messages, images)
    return completion_logprobs(state.generator, prompt_text, reply, top, images)


def _complete_one(
    state: ServerState, prompt: str, params: dict | None, echo: bool, top: int, want_lp: bool
) -> dict[str, Any]:
    """One prompt: echo scoring, generation, or both (runs on the model thread)."""
    gen = state.generator
    text, finish, n_new = "", "length", 0
    lps = TokenLogprobs()
    n_prompt = 0
    if echo:
        scored, _ = prompt_logprobs(gen, prompt, top)
        lps.extend(scored, 0)
        n_prompt = len(scored.tokens)
        text = scored.text  # what the model scored (de-identified when the server scrubs)
    if params is not None:
        sp = SamplingParams(**{**params, "stop": tuple(params["stop"])})
        if supports_tokens(gen):
            new_text, new_lps, finish, p_tokens, n_new = complete_raw(gen, prompt, sp, top)
            n_prompt = n_prompt or p_tokens
            lps.extend(new_lps, len(text))
        else:  # chat-only backends: the prompt as one user turn
            completion = gen.chat([{"role": "user", "content": prompt}], **params)
            new_text, finish = completion.text, completion.finish_reason
            n_prompt, n_new = completion.usage.prompt_tokens, completion.usage.completion_tokens
        text += new_text
    elif not echo:
        finish = "length"
    return {
        "text": text,
        "finish_reason": finish,
        "logprobs": lps.to_dict() if want_lp else None,
        "_prompt_tokens": n_prompt,
        "_new_tokens": n_new,
    }


def _chat_logprobs(lp: TokenLogprobs) -> list[dict[str, Any]]:
    return [
        {
            "token": tok,
            "logprob": value if value is not None else 0.0,
            "bytes": list(tok.encode("utf-8")),
            "top_logprobs": [
                {"token": t, "logprob": v, "bytes": list(t.encode("utf-8"))}
                for t, v in (top or {}).items()
            ],
        }
        for tok, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True)
    ]
