"""``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp server, TGI, hosted APIs).

This is how the same toolkit code scales out: serve a large model with vLLM on a GPU box and
point ``--backend openai --base-url http://gpu-host:8000/v1`` at it.

* **Concurrency**: up to ``concurrency`` requests are in flight at once (a semaphore shared by
  every thread), so ``eval --concurrency 8`` keeps a batching server busy.
* **Timeouts**: ``timeout`` seconds to connect (at most 10) and to wait for each response or
  stream chunk; a server that accepts connections but never answers fails after that long with
  one clear error. The default (60 s) is finite on purpose.
* **Retries**: only where waiting helps — HTTP 429 and 5xx, with exponential backoff (or the
  server's ``Retry-After``). A refused connection, a timeout or a 4xx fail at once, naming the URL.

Log-likelihood scoring uses the legacy completions endpoint with ``echo=True, logprobs=1`` (vLLM
and llama-cpp-python's server support it; chat-only APIs do not and raise a clear error), with
several prompts per request where the server takes a list prompt.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import httpx

from medmllm.config import ensure_online, get_settings
from medmllm.errors import (
    BackendConnectionError,
    InvalidRequestError,
    MissingDependencyError,
    UnsupportedInputError,
)
from medmllm.models.generator import (
    BACKENDS,
    BaseGenerator,
    FinishReason,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
    Usage,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
DEFAULT_TIMEOUT_S = 60.0
MAX_BACKOFF_S = 30.0


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
        timeout: seconds to wait for a connection (capped at 10) and for each response.
        max_retries: retries of a request answered 429 or 5xx (exponential backoff from
            ``backoff_s``); connection errors and timeouts are never retried.
        concurrency: requests in flight at once (chat requests from concurrent callers and
            batches of log-likelihood scoring).
        prompts_per_request: prompts sent in one ``/completions`` call when scoring (servers
            that answer a list prompt with fewer choices fall back to one prompt per call).
        backoff_s: first retry delay; doubles on each retry, at most 30 s.

    Example:
        >>> gen = OpenAIGenerator(base_url="http://gpu:8000/v1", concurrency=16)  # doctest: +SKIP
    """

    backend = "openai"
    # Images go out as image_url data URLs; a text-only server answers with an error.
    supports_images = True

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 3,
        concurrency: int = 4,
        prompts_per_request: int = 8,
        backoff_s: float = 0.5,
    ) -> None:
        if not timeout > 0:
            raise InvalidRequestError(f"timeout must be > 0 seconds, got {timeout}")
        if concurrency < 1 or prompts_per_request < 1 or max_retries < 0:
            raise InvalidRequestError(
                f"concurrency and prompts_per_request must be >= 1 and max_retries >= 0, got "
                f"{concurrency}, {prompts_per_request}, {max_retries}"
            )
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
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.prompts_per_request = prompts_per_request
        self.backoff_s = backoff_s
        self.retries = 0  # how many retries were needed so far (429/5xx)
        self._slots = threading.BoundedSemaphore(concurrency)
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "no-key",
            timeout=openai.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            max_retries=0,  # ours below: 429/5xx only, never a refused connection
        )
        super().__init__(model_id=model or self._first_model())
        self._aligned: bool | None = None  # echo-logprob alignment, probed on first use
        self._list_prompts = True  # cleared if the server ignores list prompts

    def _output_options(self) -> dict[str, Any]:
        # another server behind the same model name is another model (never the api key)
        return {"base_url": self.base_url, "files": None}

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """Run a client call in a concurrency slot; retry 429/5xx; one clear error otherwise."""
        openai = self._openai
        for attempt in range(self.max_retries + 1):
            try:
                with self._slots:
                    return fn(**kwargs)
            except openai.APITimeoutError:
                raise BackendConnectionError(
                    f"no answer from the server at {self.base_url} within {self.timeout:g} s "
                    f"({what})",
                    hint="check that the server is not stuck or overloaded, or raise --timeout",
                ) from None
            except openai.APIConnectionError as exc:
                raise BackendConnectionError(
                    f"cannot reach the OpenAI-compatible server at {self.base_url} ({what}): "
                    f"{exc.__cause__ or exc}",
                    hint="check --base-url and that the server is running",
                ) from None
            except openai.APIStatusError as exc:
                status = exc.status_code
                if (status == 429 or status >= 500) and attempt < self.max_retries:
                    self.retries += 1
                    time.sleep(self._delay(attempt, exc))
                    continue
                detail = exc.message if hasattr(exc, "message") else str(exc)
                tried = f" after {attempt + 1} attempts" if attempt else ""
                raise BackendConnectionError(
                    f"server at {self.base_url} answered {status} to {what}{tried}: {detail}",
                    hint="check --model and the server's logs",
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, exc: Any) -> float:
        """The server's Retry-After if it sent one, else exponential backoff."""
        header = exc.response.headers.get("retry-after") if exc.response is not None else None
        try:
            wait = float(header) if header is not None else self.backoff_s * 2**attempt
        except ValueError:
            wait = self.backoff_s * 2**attempt
        return min(max(wait, 0.0), MAX_BACKOFF_S)

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
            "messages": _with_images([m.to_dict() for m in messages], images),
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
        finish: FinishReason = "stop"
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
        except httpx.TimeoutException:
            raise BackendConnectionError(
                f"the stream from {self.base_url} stalled for more than {self.timeout:g} s",
                hint="check that the server is not stuck or overloaded, or raise --timeout",
            ) from None
        except (self._openai.APIError, httpx.HTTPError) as exc:
            raise BackendConnectionError(
                f"stream from {self.base_url} broke off: {exc}", hint="retry; check the server"
            ) from None
        # Servers that send no usage in streams: count chunks (about one token each).
        yield StreamChunk("", finish_reason=finish, usage=usage or Usage(0, n_chunks))

    def _echo_logprobs(self, prompts: list[str]) -> list[Any]:
        """Prompt-token logprobs of each prompt (one request; a list prompt if several)."""
        response = self._call(
            "POST /completions (echo, logprobs)",
            self.client.completions.create,
            model=self.model_id,
            prompt=prompts if len(prompts) > 1 else prompts[0],
            max_tokens=1,
            temperature=0.0,
            echo=True,
            logprobs=1,
        )
        choices = sorted(response.choices, key=lambda c: c.index)
        if len(choices) != len(prompts):
            raise _ListPromptUnsupported
        out = []
        for choice in choices:
            logprobs = choice.logprobs
            if logprobs is None or not logprobs.token_logprobs:
                raise UnsupportedInputError(
                    f"server at {self.base_url} returned no prompt logprobs (echo=True)",
                    hint="use a server that supports echo+logprobs (e.g. vLLM) or the hf/llamacpp "
                    "backends for multiple-choice scoring",
                )
            out.append(logprobs)
        return out

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
        logprobs = self._echo_logprobs([probe])[0]
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
        spans = []
        for req in requests:
            context = req.context.rstrip(" ")  # trailing spaces belong to the continuation
            spans.append((len(context), context + req.context[len(context) :] + req.continuation))
        size = self.prompts_per_request
        chunks = [spans[i : i + size] for i in range(0, len(spans), size)]
        with ThreadPoolExecutor(min(self.concurrency, len(chunks))) as pool:
            scored = list(pool.map(self._score_chunk, chunks))
        return [value for chunk in scored for value in chunk]

    def _score_chunk(self, spans: list[tuple[int, str]]) -> list[float]:
        prompts = [prompt for _, prompt in spans]
        try:
            if len(prompts) > 1 and not self._list_prompts:
                raise _ListPromptUnsupported
            all_logprobs = self._echo_logprobs(prompts)
        except _ListPromptUnsupported:
            self._list_prompts = False  # this server answers one prompt per request
            all_logprobs = [self._echo_logprobs([p])[0] for p in prompts]
        results = []
        for (start, prompt), logprobs in zip(spans, all_logprobs, strict=True):
            total = 0.0
            for offset, lp in zip(logprobs.text_offset, logprobs.token_logprobs, strict=False):
                if start <= offset < len(prompt) and lp is not None:
                    total += lp
            results.append(total)
        return results

    def close(self) -> None:
        self.client.close()


class _ListPromptUnsupported(Exception):
    """The server answered a list prompt with a different number of choices."""


def _with_images(messages: list[dict[str, Any]], images: Sequence[ImageInput] | None) -> Any:
    """Attach images to the first user turn as ``image_url`` data URLs (how vLLM takes them)."""
    if not images:
        return messages
    from medmllm.models.imaging import to_data_url

    first = next(i for i, m in enumerate(messages) if m["role"] == "user")
    parts: list[dict[str, Any]] = [{"type": "text", "text": messages[first]["content"]}]
    parts += [{"type": "image_url", "image_url": {"url": to_data_url(im)}} for im in images]
    return [*messages[:first], {"role": "user", "content": parts}, *messages[first + 1 :]]
