"""``hf`` backend: Hugging Face transformers on a hub id, a local folder, or a GGUF file.

A GGUF file is dequantised by transformers (+ ``gguf``) on first load, which takes ~20 s for the
embedded model; the result is saved as a normal HF folder under ``MEDMLLM_HOME/cache/hf`` keyed by
the file's checksum, so later loads take a second or two.

Multiple-choice scoring (:meth:`HFGenerator.loglikelihood`) reuses computed key/value caches:
requests sharing a context run it once, and consecutive contexts sharing a prefix (few-shot
exemplars) only run the part after the common prefix.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmllm.config import ensure_online, get_settings
from medmllm.errors import (
    InvalidModelFileError,
    MissingDependencyError,
    ModelNotFoundError,
)
from medmllm.models.defaults import DEFAULT_MODEL, EMBEDDED_MODELS, is_gguf, resolve_model_path
from medmllm.models.generator import (
    BACKENDS,
    BaseGenerator,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
    Usage,
    split_context,
    stop_at,
)

_PATH_PREFIXES = ("/", "./", "../", "~")
# Prefix reuse only pays off when the shared part is long enough to matter.
_MIN_SHARED_PREFIX = 16


def _looks_like_path(model: str) -> bool:
    return model.startswith(_PATH_PREFIXES) or model.endswith(".gguf") or model.count("/") > 1


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _import_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:  # pragma: no cover - core dependency
        raise MissingDependencyError(
            f"the hf backend needs torch and transformers ({exc})",
            hint="pip install 'torch==2.13.0' transformers accelerate gguf",
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def convert_gguf(gguf_path: Path, cache_root: Path) -> Path:
    """Dequantise a GGUF file into a cached HF folder (atomic: built in a temp dir, renamed)."""
    transformers = _import_transformers()
    import torch

    target = cache_root / f"{gguf_path.stem}-{_file_digest(gguf_path)}"
    if (target / "config.json").is_file():
        return target
    transformers.utils.logging.enable_progress_bar()  # first load takes ~20 s: show it
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"): rebuild it from its
    # config and copy the dequantised weights over.
    clean = transformers.AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
    clean.load_state_dict(model.state_dict(), strict=False)
    clean.config.quantization_config = None
    if hasattr(clean.config, "_pre_quantization_dtype"):
        del clean.config._pre_quantization_dtype
    transformers.utils.logging.disable_progress_bar()
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_root))
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


@BACKENDS.register("hf")
class HFGenerator(BaseGenerator):
    """transformers causal LM behind the Generator interface.

    Args:
        model: hub id, local folder, GGUF file or embedded model name; None = embedded default.
        device: torch device ("cpu", "cuda", "cuda:1", "mps").
        dtype: "float32", "bfloat16" or "float16".
        batch_size: continuations scored per forward pass in :meth:`loglikelihood`.
        trust_remote_code: passed to transformers for hub models that need custom code.
    """

    backend = "hf"

    def __new__(cls, model: str | None = None, **options: Any) -> Any:
        # A MedMLLM folder (vision encoder + aligner + LLM) is served by its own generator.
        if cls is HFGenerator and model is not None:
            from medmllm.models.mllm import is_mllm_folder

            if is_mllm_folder(model):
                from medmllm.models.backends.mllm import MLLMGenerator

                return MLLMGenerator(model, **options)
        return super().__new__(cls)

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 16,
        trust_remote_code: bool = False,
    ) -> None:
        transformers = _import_transformers()
        import torch

        self._torch = torch
        settings = get_settings()
        source = self._resolve(model, settings)
        super().__init__(model_id=model or DEFAULT_MODEL)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, trust_remote_code=trust_remote_code
            )
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
            ).to(device)
        except OSError as exc:
            raise ModelNotFoundError(
                f"could not load model {source!r} with transformers: {str(exc).splitlines()[0]}",
                hint="check the id/path; hub ids need network access (unset HF_HUB_OFFLINE)",
            ) from None
        self.model.eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._prefix: tuple[list[int], Any, Any] | None = None  # (tokens, kv cache, last logits)
        # transformers >= 5.2x renamed the forward argument ``past_key_values`` to ``cache``.
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"

    @staticmethod
    def _resolve(model: str | None, settings: Any) -> str:
        if (
            model is None
            or model in EMBEDDED_MODELS
            or model == "default"
            or _looks_like_path(model)
            or Path(model).expanduser().exists()
        ):
            path = resolve_model_path(model)
            if path.is_file():
                if not is_gguf(path):
                    raise InvalidModelFileError(
                        f"{path} is neither a GGUF file nor a Hugging Face model folder",
                        hint="pass a .gguf file, a folder with config.json, or a hub id",
                    )
                return str(convert_gguf(path, settings.cache_dir("hf")))
            if not (path / "config.json").is_file():
                raise InvalidModelFileError(
                    f"{path} is a folder without config.json, so not a Hugging Face model",
                    hint="pass a folder written by save_pretrained, a .gguf file, or a hub id",
                )
            return str(path)
        ensure_online(f"the Hugging Face hub (model {model!r})", settings)
        return model

    # -- generation ---------------------------------------------------------------------------
    def _prompt_ids(self, messages: list[Message]) -> Any:
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                [m.to_dict() for m in messages], tokenize=False, add_generation_prompt=True
            )
        else:  # base models: plain transcript
            text = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        return ids.to(self.device)

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        import transformers

        torch = self._torch
        input_ids = self._prompt_ids(messages)
        streamer = transformers.TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        cancel = threading.Event()

        class _Cancel(transformers.StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        result: dict[str, Any] = {}
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": params.max_tokens,
            "do_sample": sample,
            "streamer": streamer,
            "pad_token_id": self.tokenizer.pad_token_id,
            "stopping_criteria": transformers.StoppingCriteriaList([_Cancel()]),
        }
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.inference_mode():
                    result["out"] = self.model.generate(**kwargs)
            except Exception as exc:  # surfaced in the consumer thread
                result["error"] = exc
                streamer.on_finalized_text("", stream_end=True)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text = ""
        emitted = 0
        stopped = False
        try:
            for delta in streamer:
                text += delta
                if params.stop:
                    cut, stopped = stop_at(text, params.stop)
                    if stopped:
                        cancel.set()
                        if len(cut) > emitted:
                            yield StreamChunk(cut[emitted:])
                        break
                    # hold back a tail that could be the start of a stop string
                    hold = max(len(s) for s in params.stop) - 1
                    safe = max(emitted, len(text) - hold)
                else:
                    safe = len(text)
                if safe > emitted:
                    yield StreamChunk(text[emitted:safe])
                    emitted = safe
        finally:
            cancel.set()
            thread.join()
        if "error" in result:
            raise result["error"]
        if not stopped and len(text) > emitted:
            yield StreamChunk(text[emitted:])
        n_prompt = int(input_ids.shape[1])
        n_new = int(result["out"].shape[1]) - n_prompt if "out" in result else 0
        eos = self.tokenizer.eos_token_id
        hit_eos = "out" in result and n_new > 0 and int(result["out"][0, -1]) == eos
        finish = (
            "length" if (n_new >= params.max_tokens and not hit_eos and not stopped) else "stop"
        )
        yield StreamChunk("", finish_reason=finish, usage=Usage(n_prompt, n_new))

    # -- scoring ------------------------------------------------------------------------------
    def clear_cache(self) -> None:
        self._prefix = None

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _bos(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [bos] if bos is not None and getattr(self.tokenizer, "add_bos_token", False) else []

    def _context_state(self, ctx: list[int]) -> tuple[Any, Any]:
        """KV cache and last-position log-probs after ``ctx``, reusing the previous prefix."""
        torch = self._torch
        start = 0
        past = None
        if self._prefix is not None:
            prev, prev_cache, prev_logp = self._prefix
            if prev == ctx:
                return prev_cache, prev_logp
            n = 0
            limit = min(len(prev), len(ctx)) - 1  # keep >= 1 new token to get fresh logits
            while n < limit and prev[n] == ctx[n]:
                n += 1
            if n >= _MIN_SHARED_PREFIX:
                past = copy.deepcopy(prev_cache)
                # A negative crop drops that many tokens from the end (all transformers versions).
                past.crop(n - past.get_seq_length())
                start = n
        ids = torch.tensor([ctx[start:]], device=self.device)
        with torch.inference_mode():
            # logits_to_keep=1: only the last position's logits are needed, which skips the
            # vocabulary projection for the rest of the context.
            out = self.model(
                input_ids=ids, **{self._cache_kw: past}, use_cache=True, logits_to_keep=1
            )
        logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        cache = _output_cache(out)
        self._prefix = (ctx, cache, logp)
        return cache, logp

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        torch = self._torch
        results: list[float] = [0.0] * len(requests)
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, req in enumerate(requests):
            ctx, cont = split_context(self._encode, req.context, req.continuation)
            # An empty context still needs a position whose logits predict the first token.
            ctx = self._bos() + ctx or [self.tokenizer.eos_token_id]
            groups.setdefault(tuple(ctx), []).append((i, cont))
        for ctx_key, items in groups.items():
            cache, last_logp = self._context_state(list(ctx_key))
            multi = [(i, c) for i, c in items if len(c) > 1]
            for i, cont in items:
                results[i] = float(last_logp[cont[0]])
            for start in range(0, len(multi), self.batch_size):
                chunk = multi[start : start + self.batch_size]
                width = max(len(c) for _, c in chunk)
                pad = self.tokenizer.pad_token_id
                # Right padding needs no attention mask: causal attention never lets a real
                # token see the padding after it.
                batch = torch.tensor(
                    [c + [pad] * (width - len(c)) for _, c in chunk], device=self.device
                )
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(chunk))
                with torch.inference_mode():
                    logits = self.model(input_ids=batch, **{self._cache_kw: past}).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, (i, cont) in enumerate(chunk):
                    targets = torch.tensor(cont[1:], device=self.device)
                    picked = logp[row, : len(cont) - 1].gather(1, targets[:, None])
                    results[i] += float(picked.sum())
        return results


def _output_cache(out: Any) -> Any:
    cache = getattr(out, "past_key_values", None)
    return cache if cache is not None else getattr(out, "cache", None)
