"""The ``Generator`` interface every model backend implements, and its typed values.

Three methods cover everything the toolkit asks of a model:

* :meth:`Generator.chat` — a full reply with token counts and timing;
* :meth:`Generator.stream` — the same reply as text deltas (CLI, web UI);
* :meth:`Generator.loglikelihood` — summed log-probabilities of continuations given contexts,
  which is how multiple-choice evaluation scores options without sampling.

Backends subclass :class:`BaseGenerator` (validation and shared plumbing live there) and register
themselves in :data:`BACKENDS`. :func:`load_generator` is the one way to build one.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from medmllm.errors import ContextLengthError, InvalidRequestError, UnsupportedInputError
from medmllm.registry import Registry

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]
ImageInput = Any  # a path, PIL image or array; multimodal backends document what they take


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: Role
    content: str

    @classmethod
    def coerce(cls, value: Message | dict[str, str]) -> Message:
        if isinstance(value, Message):
            return value
        try:
            return cls(role=value["role"], content=value["content"])  # type: ignore[arg-type]
        except (KeyError, TypeError):
            raise InvalidRequestError(
                f"a chat message must have 'role' and 'content', got {value!r}"
            ) from None

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Usage:
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Completion:
    """A finished reply.

    Attributes:
        text: the generated text.
        finish_reason: ``"stop"`` (end of turn or stop string) or ``"length"`` (max_tokens).
        usage: prompt and completion token counts.
        latency_s: wall time of the whole call.
        ttft_s: time to the first generated token (None if unknown).
        model: the model id or path that produced it.
        backend: the backend name.
    """

    text: str
    finish_reason: FinishReason
    usage: Usage
    latency_s: float
    ttft_s: float | None = None
    model: str = ""
    backend: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "model": self.model,
            "backend": self.backend,
        }


@dataclass(frozen=True)
class StreamChunk:
    """A text delta; the last chunk of a stream carries ``finish_reason`` and ``usage``."""

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``continuation`` after ``context`` (e.g. a question prompt and ``" B"``).

    ``images`` are what the context asks about (VQA scored by option likelihood): a multimodal
    backend scores the continuation as the start of its reply to the context *with* the images,
    as :meth:`Generator.chat` would see them; a backend that cannot is refused, never answered
    text-only. A plain ``(context, continuation)`` tuple is accepted wherever requests are.
    """

    context: str
    continuation: str
    images: tuple[ImageInput, ...] = field(default=(), hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, tuple):  # a list from callers; frozen, so set directly
            object.__setattr__(self, "images", tuple(self.images or ()))


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings shared by all backends.

    Attributes:
        max_tokens: upper bound on generated tokens (> 0).
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling mass in (0, 1].
        stop: strings that end generation (not included in the text).
        seed: seed for sampled decoding; same seed, same output on the same backend.
        json_schema: constrain the reply to JSON matching this schema where the backend can
            (llama.cpp grammar; ``response_format`` on OpenAI-compatible servers); backends
            without constrained decoding ignore it, so callers still validate the text.
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None
    json_schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise InvalidRequestError(
                f"max_tokens must be a positive integer, got {self.max_tokens!r}",
                hint="pass --max-tokens N with N >= 1",
            )
        if self.temperature < 0:
            raise InvalidRequestError(f"temperature must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {self.top_p!r}")


@runtime_checkable
class Generator(Protocol):
    """What the rest of the toolkit may call on a model.

    Attributes:
        backend: the registered backend name (``"hf"``, ``"llamacpp"``…).
        model_id: the model id or path, as given.
        supports_images: whether ``chat``/``stream`` accept ``images`` (multimodal models).
    """

    backend: str
    model_id: str
    supports_images: bool

    def chat(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Completion: ...

    def stream(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Iterator[StreamChunk]: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]: ...

    def context_window(self) -> int | None:
        """Tokens the model can attend to; None when unknown."""
        ...

    def count_tokens(self, messages: Sequence[Message | dict[str, str]]) -> int | None:
        """Prompt tokens of ``messages``; None when unknown."""
        ...

    def close(self) -> None:
        """Release engine resources (servers, threads); safe to call twice."""
        ...

    def load_options(self) -> dict[str, Any]:
        """What decides this model's outputs, canonical and JSON-able (the eval cache key)."""
        ...


def local_files(model: str | Path | None) -> list[str] | None:
    """``name:size:mtime`` of a local model file, or of the files at the top of a model folder
    (+ a LoRA adapter's local base model, under ``base/``); None for hub ids and served names.

    Part of the eval cache key, so retrained weights at the same path never reuse old answers.
    """
    if model is None:
        return None
    path = Path(model).expanduser()
    try:
        if path.is_file():
            stat = path.stat()
            return [f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"]
        if not path.is_dir():
            return None
        out = []
        for file in sorted(p for p in path.iterdir() if p.is_file()):
            stat = file.stat()
            out.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
        adapter = path / "adapter_config.json"
        if adapter.is_file():
            import json

            base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
            out += [f"base/{f}" for f in local_files(base) or []] if base else []
        return out
    except (OSError, ValueError):  # a hub id that is no valid path, an unreadable adapter config
        return None


class BaseGenerator(abc.ABC):
    """Shared plumbing: argument checks, ``chat`` built on ``stream``, timing.

    Subclasses implement :meth:`_stream` and :meth:`_loglikelihood`; they may override
    :meth:`chat` when the engine has a faster non-streaming path.
    """

    backend: str = ""
    supports_images: bool = False
    # whether _loglikelihood uses LoglikelihoodRequest.images (chat may take images without it)
    scores_images: bool = False

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    # -- public API ---------------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Completion:
        start = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        finish: FinishReason = "stop"
        usage = Usage()
        for chunk in self.stream(messages, images, **sampling):
            if chunk.text and ttft is None:
                ttft = time.perf_counter() - start
            parts.append(chunk.text)
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
            if chunk.usage is not None:
                usage = chunk.usage
        return Completion(
            text="".join(parts),
            finish_reason=finish,
            usage=usage,
            latency_s=time.perf_counter() - start,
            ttft_s=ttft,
            model=self.model_id,
            backend=self.backend,
        )

    def stream(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Iterator[StreamChunk]:
        msgs = self._check_messages(messages, images)
        params = self._params(sampling)
        # refuse a prompt with no room left before the engine overflows; a reply longer than the
        # room left is cut by the engine (finish_reason "length"), as before
        self.check_context(msgs, 1)
        return self._stream(msgs, images, params)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        reqs = list(requests)
        for i, req in enumerate(reqs):
            if not isinstance(req, LoglikelihoodRequest):
                reqs[i] = req = LoglikelihoodRequest(*req)  # accept (context, continuation)
            if not req.continuation:
                raise InvalidRequestError(f"loglikelihood request {i} has an empty continuation")
            if req.images and not self.scores_images:
                raise UnsupportedInputError(
                    f"backend {self.backend!r} with model {self.model_id!r} cannot score "
                    f"continuations with images (request {i} has {len(req.images)})",
                    hint="score image questions with a MedMLLM (mllm backend), or use --mode gen",
                )
        return self._loglikelihood(reqs) if reqs else []

    # -- context window (issue 13: count before calling, refuse what cannot fit) ---------------
    def context_window(self) -> int | None:
        """Tokens the model can attend to (prompt + reply); None when unknown (remote servers)."""
        return None

    def count_tokens(self, messages: Sequence[Message | dict[str, str]]) -> int | None:
        """Prompt tokens of ``messages`` with the chat template applied; None when unknown."""
        return None

    def check_context(self, messages: Sequence[Message | dict[str, str]], max_tokens: int) -> None:
        """Raise :class:`ContextLengthError` unless prompt + ``max_tokens`` fit the window."""
        window = self.context_window()
        if window is None:
            return
        used = self.count_tokens(messages)
        if used is not None and used + max_tokens > window:
            raise ContextLengthError(
                f"the prompt takes {used} tokens (+{max_tokens} reserved for the reply), but "
                f"{self.model_id!r} has a context window of {window} tokens",
                hint="shorten the question, pass fewer passages (-k) or a smaller --max-tokens, "
                "or use a model with a larger context window",
            )

    def clear_cache(self) -> None:  # noqa: B027 - optional hook
        """Forget reusable computation (KV caches), e.g. to measure cold-start scoring."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release engine resources (servers, threads); safe to call twice."""

    def load_options(self) -> dict[str, Any]:
        """Backend, model, the local weights' fingerprint (:func:`local_files`) and every load
        option that changes outputs (dtype, device, model args, server URL…), canonical.

        This is the model's identity for the eval call cache and shard merging: two generators
        with equal load options must give the same answers. Backends add their options in
        :meth:`_output_options`; performance-only knobs (batch size, threads) stay out.
        """
        return {
            "backend": self.backend,
            "model": self.model_id,
            "files": local_files(self.model_id),
            **self._output_options(),
        }

    def _output_options(self) -> dict[str, Any]:
        """The backend's own output-changing load options (JSON-able; overrides ``files``)."""
        return {}

    def __enter__(self) -> BaseGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for subclasses -----------------------------------------------------------------------
    @abc.abstractmethod
    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]: ...

    @abc.abstractmethod
    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]: ...

    # -- helpers ------------------------------------------------------------------------------
    def _check_messages(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None,
    ) -> list[Message]:
        if images and not self.supports_images:
            raise UnsupportedInputError(
                f"backend {self.backend!r} with model {self.model_id!r} is text-only; "
                f"got {len(images)} image(s)",
                hint="use a multimodal model (MedMLLM) for image input",
            )
        msgs = [Message.coerce(m) for m in messages]
        if not msgs:
            raise InvalidRequestError("chat needs at least one message")
        if not any(m.role == "user" and m.content.strip() for m in msgs):
            raise InvalidRequestError(
                "the conversation has no non-empty user message", hint="ask a question"
            )
        return msgs

    @staticmethod
    def _params(sampling: dict[str, Any]) -> SamplingParams:
        allowed = {"max_tokens", "temperature", "top_p", "stop", "seed", "json_schema"}
        unknown = set(sampling) - allowed
        if unknown:
            raise InvalidRequestError(
                f"unknown sampling option(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        stop = sampling.get("stop")
        if isinstance(stop, str):
            sampling = {**sampling, "stop": (stop,)}
        elif stop is not None:
            sampling = {**sampling, "stop": tuple(stop)}
        else:
            sampling = {k: v for k, v in sampling.items() if k != "stop"}
        sampling = {k: v for k, v in sampling.items() if v is not None or k == "seed"}
        return SamplingParams(**sampling)


def split_context(encode: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Tokenise a (context, continuation) pair the way lm-evaluation-harness does.

    Trailing spaces move from the context to the continuation, then the whole string is
    encoded once and split at the context's length, so the continuation's tokens are the ones
    the model would really see after that context.
    """
    n_spaces = len(context) - len(context.rstrip(" "))
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = list(encode(context + continuation))
    ctx = list(encode(context))
    if whole[: len(ctx)] != ctx:  # merge across the boundary: fall back to separate encodings
        return ctx, list(encode(continuation))
    return ctx, whole[len(ctx) :]


def stop_at(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string; returns (text, whether a stop was found)."""
    cut = min((i for s in stop if s and (i := text.find(s)) != -1), default=-1)
    return (text[:cut], True) if cut != -1 else (text, False)


BACKENDS: Registry[type[BaseGenerator]] = Registry("backend")
BACKENDS.register_lazy("hf", "medmllm.models.backends.hf:HFGenerator")
BACKENDS.register_lazy("llamacpp", "medmllm.models.backends.llamacpp:LlamaCppGenerator")
BACKENDS.register_lazy("openai", "medmllm.models.backends.openai:OpenAIGenerator")
BACKENDS.register_lazy("mllm", "medmllm.models.backends.mllm:MLLMGenerator")


Purpose = Literal["chat", "score"]


def default_backend(purpose: Purpose = "chat") -> str:
    """The fastest installed backend for the job on a CPU.

    ``chat`` (token-by-token generation): ``llamacpp`` when llama-cpp-python is installed (Q4_1
    decodes ~60 tok/s vs ~10-17 for torch float32 here), else ``hf``. ``score`` (log-likelihood
    of whole prompts, i.e. ``eval --mode mc``): ``hf``, whose padded float32 batches evaluate
    prompts several times faster than llama.cpp's Q4_1 on the same cores (docs/decisions.md).
    """
    import importlib.util

    if purpose == "score":
        return "hf"
    return "llamacpp" if importlib.util.find_spec("llama_cpp") is not None else "hf"


def check_options(
    cls: type[BaseGenerator], name: str, options: dict[str, Any], *, given_as: str | None = None
) -> None:
    """Refuse options a backend does not take, naming the ones it does (before loading).

    ``given_as``: the backend name the user chose when it hands over to ``name`` (an MLLM
    folder under ``hf``), so the message says what happened.
    """
    import inspect

    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    takes = [p for p in params if p not in ("self", "model")]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        flags = ", ".join(_FLAGS.get(k, k) for k in unknown)
        what = f"backend {name!r}" + (
            f" (the model is a MedMLLM folder, which --backend {given_as} hands to it)"
            if given_as
            else ""
        )
        raise InvalidRequestError(
            f"{what} does not take option(s) {unknown} ({flags})",
            hint=f"drop {flags}; it takes: {', '.join(takes) or 'no options'} "
            "(--device/--dtype/--model-arg apply to hf, --base-url/--timeout/--concurrency to "
            "openai)",
        )


# the CLI flag of each load option, for messages
_FLAGS = {
    "dtype": "--dtype",
    "device": "--device",
    "model_kwargs": "--model-arg",
    "base_url": "--base-url",
    "timeout": "--timeout",
    "concurrency": "--concurrency",
}


def load_generator(
    backend: str | None = None,
    model: str | Path | None = None,
    *,
    purpose: Purpose = "chat",
    **options: Any,
) -> BaseGenerator:
    """Build a generator by backend name.

    Args:
        backend: ``"hf"``, ``"llamacpp"``, ``"openai"`` or any registered name; ``None`` uses
            ``MEDMLLM_BACKEND`` or :func:`default_backend` for ``purpose``.
        model: a Hugging Face id, local folder, GGUF file, or (``openai``) the served model
            name; ``None`` uses ``MEDMLLM_MODEL`` or the embedded default model.
        purpose: ``"chat"`` or ``"score"`` (multiple-choice evaluation): picks the default
            backend when none is named.
        **options: backend-specific options (e.g. ``base_url``/``timeout``/``concurrency`` for
            ``openai``; ``device``/``dtype``/``model_kwargs`` for ``hf``); unknown ones are
            refused before the model loads.

    Example:
        >>> gen = load_generator("llamacpp")  # doctest: +SKIP
        >>> gen.chat([{"role": "user", "content": "What is HbA1c?"}], max_tokens=64).text
        >>> big = load_generator("hf", "Qwen/Qwen2.5-7B-Instruct", device="cuda",
        ...                      dtype="bfloat16")  # doctest: +SKIP
    """
    from medmllm.config import get_settings

    settings = get_settings()
    name = backend or settings.backend or default_backend(purpose)
    cls = BACKENDS.get(name)
    check_options(cls, name, options)
    chosen = model if model is not None else settings.model
    return cls(model=None if chosen is None else str(chosen), **options)  # type: ignore[call-arg]
