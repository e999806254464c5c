"""``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp server, TGI, hosted APIs).

This is how the same toolkit code scales out: serve a large model with vLLM on a GPU box and
point ``--backend openai --base-url http://gpu-host:8000/v1`` at it. Retries are off by default
so an unreachable URL fails fast with one clear message instead of a retry storm.

Log-likelihood scoring uses the legacy completions endpoint with ``echo=True, logprobs=1`` (vLLM
and llama-cpp-python's server support it; chat-only APIs do not and raise a clear error).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

from medmllm.config import ensure_online, get_settings
from medmllm.errors import BackendConnectionError, MissingDependencyError, UnsupportedInputError
from medmllm.models.generator import (
    BACKENDS,
    BaseGenerator,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
    Usage,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def _is_local(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@BACKENDS.register("openai")
class OpenAIGenerator(BaseGenerator):
    """A model served behind an OpenAI-compatible HTTP API.

    Args:
        model: the served model name; None asks the server's ``/models`` for the first one.
        base_url: API root ending in ``/v1`` (default: ``OPENAI_BASE_URL`` or 127.0.0.1:8000).
        api_key: bearer token (default: ``OPENAI_API_KEY``; local servers accept any value).
        timeout: seconds per request.
        max_retries: retries on connection errors (0 = fail fast).
    """

    backend = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 0,
    ) -> None:
        try:
            import openai
        except ImportError:  # pragma: no cover - core dependency
            raise MissingDependencyError(
                "the openai backend needs the openai client", hint="pip install openai"
            ) from None
        self._openai = openai
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        if not _is_local(self.base_url):
            ensure_online(f"the server at {self.base_url}", get_settings())
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "no-key",
            timeout=openai.Timeout(timeout, connect=min(10.0, timeout)),
            max_retries=max_retries,
        )
        super().__init__(model_id=model or self._first_model())
        self._aligned: bool | None = None  # echo-logprob alignment, probed on first use

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """Run a client call, turning transport and HTTP errors into one clear message."""
        openai = self._openai
        try:
            return fn(**kwargs)
        except openai.APIConnectionError as exc:
            raise BackendConnectionError(
                f"cannot reach the OpenAI-compatible server at {self.base_url} ({what}): "
                f"{exc.__cause__ or exc}",
                hint="check --base-url and that the server is running",
            ) from None
        except openai.APIStatusError as exc:
            detail = exc.message if hasattr(exc, "message") else str(exc)
            raise BackendConnectionError(
                f"server at {self.base_url} answered {exc.status_code} to {what}: {detail}",
                hint="check --model and the server's logs",
            ) from None

    def _first_model(self) -> str:
        listing = self._call("GET /models", self.client.models.list)
        ids = [m.id for m in listing.data]
        if not ids:
            raise BackendConnectionError(f"server at {self.base_url} serves no models")
        return ids[0]

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        kwargs: dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.to_dict() for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": params.json_schema},
            }
        stream = self._call("POST /chat/completions", self.client.chat.completions.create, **kwargs)
        n_chunks = 0
        finish = "stop"
        usage: Usage | None = None
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                text = choice.delta.content if choice.delta else None
                if text:
                    n_chunks += 1
                    yield StreamChunk(text)
                if choice.finish_reason:
                    finish = "length" if choice.finish_reason == "length" else "stop"
        except self._openai.APIError as exc:
            raise BackendConnectionError(
                f"stream from {self.base_url} broke off: {exc}", hint="retry; check the server"
            ) from None
        # Servers that send no usage in streams: count chunks (about one token each).
        yield StreamChunk("", finish_reason=finish, usage=usage or Usage(0, n_chunks))

    def _echo_logprobs(self, prompt: str) -> Any:
        response = self._call(
            "POST /completions (echo, logprobs)",
            self.client.completions.create,
            model=self.model_id,
            prompt=prompt,
            max_tokens=1,
            temperature=0.0,
            echo=True,
            logprobs=1,
        )
        logprobs = response.choices[0].logprobs
        if logprobs is None or not logprobs.token_logprobs:
            raise UnsupportedInputError(
                f"server at {self.base_url} returned no prompt logprobs (echo=True)",
                hint="use a server that supports echo+logprobs (e.g. vLLM) or the hf/llamacpp "
                "backends for multiple-choice scoring",
            )
        return logprobs

    def _check_alignment(self) -> None:
        """Refuse servers whose echoed logprobs are shifted by one token.

        The OpenAI semantics: ``token_logprobs[i]`` is log p(token i | tokens < i).
        llama-cpp-python's server (0.3.36) instead pairs token i with the distribution *after*
        it, which would silently corrupt every multiple-choice score. A counting sequence tells
        the two apart: correctly aligned, its later numbers are near-certain (mean log-prob
        close to 0); shifted, each number is scored as if it were the next comma (very low).
        """
        if self._aligned is not None:
            if not self._aligned:
                raise self._misaligned_error()
            return
        probe = ", ".join(str(i) for i in range(1, 25))
        logprobs = self._echo_logprobs(probe)
        tail = [lp for lp in logprobs.token_logprobs[len(logprobs.token_logprobs) // 2 :] if lp]
        self._aligned = bool(tail) and sum(tail) / len(tail) > -2.0
        if not self._aligned:
            raise self._misaligned_error()

    def _misaligned_error(self) -> UnsupportedInputError:
        return UnsupportedInputError(
            f"server at {self.base_url} returns echo logprobs shifted by one token (a known "
            "llama-cpp-python server bug), so log-likelihood scores would be wrong",
            hint="score with --backend llamacpp or hf on the same GGUF, or serve with vLLM",
        )

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        self._check_alignment()
        results = []
        for req in requests:
            context = req.context.rstrip(" ")
            prompt = context + req.context[len(context) :] + req.continuation
            logprobs = self._echo_logprobs(prompt)
            total = 0.0
            for offset, lp in zip(logprobs.text_offset, logprobs.token_logprobs, strict=False):
                if len(context) <= offset < len(prompt) and lp is not None:
                    total += lp
            results.append(total)
        return results

    def close(self) -> None:
        self.client.close()
