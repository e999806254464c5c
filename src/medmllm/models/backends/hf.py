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
import inspect
import time
from collections.abc import Iterator, Sequence
from typing import Any

from medmllm.config import get_settings
from medmllm.errors import (
    InvalidRequestError,
    ModelNotFoundError,
)
from medmllm.models.defaults import DEFAULT_MODEL
from medmllm.models.generator import (
    BACKENDS,
    BaseGenerator,
    Completion,
    FinishReason,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
    Usage,
    local_files,
    split_context,
)
from medmllm.models.hf_streaming import stream_generate
from medmllm.models.hf_weights import import_transformers, resolve_hf_model
from medmllm.models.placement import check_device, check_dtype

# Prefix reuse only pays off when the shared part is long enough to matter.
_MIN_SHARED_PREFIX = 16


@BACKENDS.register("hf")
class HFGenerator(BaseGenerator):
    """transformers causal LM behind the Generator interface.

    Args:
        model: hub id, local folder, GGUF file or embedded model name; None = embedded default.
        device: torch device ("cpu", "cuda", "cuda:1", "mps"); None = cpu, or wherever
            ``model_kwargs["device_map"]`` puts the weights.
        dtype: "float32", "bfloat16", "float16" or "auto" (the checkpoint's own dtype).
        batch_size: sequences per forward pass in :meth:`loglikelihood`.
        trust_remote_code: passed to transformers for hub models that need custom code.
        model_kwargs: more ``from_pretrained`` arguments, e.g. ``{"device_map": "auto"}`` to
            spread a large model over all GPUs (and CPU), ``{"attn_implementation": "sdpa"}``,
            ``{"revision": "main"}``.

    Example:
        >>> gen = HFGenerator("meta-llama/Llama-3.1-8B-Instruct", dtype="bfloat16",
        ...                   model_kwargs={"device_map": "auto"})  # doctest: +SKIP
    """

    backend = "hf"

    def __new__(cls, model: str | None = None, **options: Any) -> Any:
        # A MedMLLM folder (vision encoder + aligner + LLM) is the ``mllm`` backend's: it is
        # recognised here too (``-b hf -m runs/vqa/model`` keeps working), but only with the
        # options that backend takes — an hf-only option (dtype, model args) is refused, never
        # silently dropped (issue 19).
        if cls is HFGenerator and model is not None:
            from medmllm.models.mllm import is_mllm_folder

            if is_mllm_folder(model):
                from medmllm.models.generator import BACKENDS, check_options

                mllm = BACKENDS.get("mllm")
                check_options(mllm, "mllm", options, given_as="hf")
                return mllm(model, **options)  # type: ignore[call-arg]
        return super().__new__(cls)

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        dtype: str = "float32",
        batch_size: int = 16,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        kwargs = dict(model_kwargs or {})
        dtype = check_dtype(dtype)
        if "device_map" in kwargs and device is not None:
            raise InvalidRequestError(
                f"both a device ({device!r}) and device_map={kwargs['device_map']!r} given",
                hint="drop --device when you pass --model-arg device_map=…",
            )
        device = check_device(device) if device is not None else None
        if batch_size < 1:
            raise InvalidRequestError(f"batch_size must be >= 1, got {batch_size}")
        transformers = import_transformers()
        import torch

        self._torch = torch
        settings = get_settings()
        source = self._resolve(model, settings)
        super().__init__(model_id=model or DEFAULT_MODEL)
        kwargs.setdefault("trust_remote_code", trust_remote_code)
        kwargs.setdefault("dtype", "auto" if dtype == "auto" else getattr(torch, dtype))
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, trust_remote_code=kwargs["trust_remote_code"]
            )
            self.model = transformers.AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except OSError as exc:
            raise ModelNotFoundError(
                f"could not load model {source!r} with transformers: {str(exc).splitlines()[0]}",
                hint="check the id/path; hub ids need network access (unset HF_HUB_OFFLINE)",
            ) from None
        except (TypeError, ValueError) as exc:  # an argument from_pretrained does not take
            raise InvalidRequestError(
                f"transformers refused the model arguments {sorted(kwargs)}: {exc}",
                hint="check the --model-arg keys against from_pretrained's documentation",
            ) from None
        self._source = source
        self._dtype = dtype
        self._model_kwargs = dict(model_kwargs or {})
        self._trust_remote_code = trust_remote_code
        if "device_map" not in kwargs:
            self.model.to(device or "cpu")
        self.model.eval()
        # inputs go where the embeddings live (the first device of a device_map split)
        self.device = self.model.get_input_embeddings().weight.device
        self.batch_size = batch_size
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._prefix: tuple[list[int], Any] | None = None  # (tokens, their kv cache)
        # transformers >= 5.2x renamed the forward argument ``past_key_values`` to ``cache``.
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"

    @staticmethod
    def _resolve(model: str | None, settings: Any) -> str:
        return resolve_hf_model(model, settings)

    def _output_options(self) -> dict[str, Any]:
        return {
            "files": local_files(self._source),  # the folder really loaded (a GGUF's conversion)
            "dtype": self._dtype,
            "device": str(self.device),
            "model_kwargs": self._model_kwargs,
            "trust_remote_code": self._trust_remote_code,
        }

    # -- context window -----------------------------------------------------------------------
    def context_window(self) -> int | None:
        window = getattr(self.model.config, "max_position_embeddings", None)  # config field
        return int(window) if window else None

    def count_tokens(self, messages: Sequence[Message | dict[str, str]]) -> int | None:
        return int(self._prompt_ids([Message.coerce(m) for m in messages]).shape[-1])

    # -- generation ---------------------------------------------------------------------------
    def _prompt_text(self, messages: list[Message]) -> str:
        if self.tokenizer.chat_template:
            return str(
                self.tokenizer.apply_chat_template(
                    [m.to_dict() for m in messages], tokenize=False, add_generation_prompt=True
                )
            )
        return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"  # base LMs

    def _prompt_ids(self, messages: list[Message]) -> Any:
        text = self._prompt_text(messages)
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        return ids.to(self.device)

    def chat_batch(
        self,
        conversations: Sequence[Sequence[Message | dict[str, str]]],
        max_tokens: int | Sequence[int],
        *,
        batch_size: int = 16,
    ) -> list[Completion]:
        """Greedy replies to many conversations, ``batch_size`` at a time (left-padded).

        Why: one conversation at a time, a small model on a CPU spends its time reading weights
        for a single row; a batch of rows shares each read. Rows are grouped by ``max_tokens``
        (one value, or one per conversation) and sorted by prompt length, so a batch wastes
        little on padding or on rows that have already finished. The texts are what
        :meth:`chat` gives greedily, up to floating-point ties.
        """
        limits = [max_tokens] * len(conversations) if isinstance(max_tokens, int) else max_tokens
        if len(limits) != len(conversations):
            raise InvalidRequestError(
                f"{len(limits)} max_tokens values for {len(conversations)} conversations"
            )
        if batch_size < 1 or any(m < 1 for m in limits):
            raise InvalidRequestError("batch_size and every max_tokens must be >= 1")
        texts = []
        for conv in conversations:
            msgs = self._check_messages(conv, None)
            self.check_context(msgs, 1)
            texts.append(self._prompt_text(msgs))
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False).input_ids]
        order = sorted(range(len(texts)), key=lambda i: (limits[i], lengths[i]))
        out: dict[int, Completion] = {}
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # new tokens follow every prompt's last token
        try:
            start = 0
            while start < len(order):
                chunk = order[start : start + batch_size]
                chunk = [i for i in chunk if limits[i] == limits[chunk[0]]]
                start += len(chunk)
                out.update(self._generate_rows(chunk, texts, limits[chunk[0]]))
        finally:
            self.tokenizer.padding_side = side
        return [out[i] for i in range(len(texts))]

    def _generate_rows(
        self, rows: list[int], texts: list[str], max_tokens: int
    ) -> dict[int, Completion]:
        started = time.perf_counter()
        enc = self.tokenizer(
            [texts[i] for i in rows], add_special_tokens=False, padding=True, return_tensors="pt"
        ).to(self.device)
        with self._torch.inference_mode():
            output = self.model.generate(
                **enc,
                max_new_tokens=max_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        latency = time.perf_counter() - started
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        done = {}
        width = enc.input_ids.shape[1]
        for j, i in enumerate(rows):
            new = [int(t) for t in output[j, width:]]
            ended = eos in new
            new = new[: new.index(eos) + 1] if ended else [t for t in new if t != pad]
            done[i] = Completion(
                text=self.tokenizer.decode(new, skip_special_tokens=True),
                finish_reason="stop" if ended or len(new) < max_tokens else "length",
                usage=Usage(int(enc.attention_mask[j].sum()), len(new)),
                latency_s=latency,
                model=self.model_id,
                backend=self.backend,
            )
        return done

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        input_ids = self._prompt_ids(messages)
        own = {
            "input_ids": input_ids,
            "attention_mask": self._torch.ones_like(input_ids),
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        done = yield from stream_generate(
            self.tokenizer, lambda kwargs: self.model.generate(**own, **kwargs), params
        )
        n_prompt = int(input_ids.shape[1])
        out = done.output
        n_new = int(out.shape[1]) - n_prompt if out is not None else 0
        hit_eos = out is not None and n_new > 0 and int(out[0, -1]) == self.tokenizer.eos_token_id
        finish: FinishReason = (
            "length"
            if (n_new >= params.max_tokens and not hit_eos and not done.stopped)
            else "stop"
        )
        yield StreamChunk("", finish_reason=finish, usage=Usage(n_prompt, n_new))

    # -- scoring ------------------------------------------------------------------------------
    def clear_cache(self) -> None:
        self._prefix = None

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _encode_many(self, texts: Sequence[str]) -> dict[str, list[int]]:
        """One batched tokenizer call for many strings (the fast tokenizer runs them in Rust)."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        ids = self.tokenizer(unique, add_special_tokens=False).input_ids
        return dict(zip(unique, ids, strict=True))

    def _bos(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [bos] if bos is not None and getattr(self.tokenizer, "add_bos_token", False) else []

    def _prefix_cache(self, prefix: list[int]) -> Any:
        """KV cache (batch 1) after ``prefix``, extending or cropping the previous prefix's."""
        torch = self._torch
        start, past = 0, None
        if self._prefix is not None:
            prev, prev_cache = self._prefix
            if prev == prefix:
                return prev_cache
            n = 0
            limit = min(len(prev), len(prefix))
            while n < limit and prev[n] == prefix[n]:
                n += 1
            if n >= _MIN_SHARED_PREFIX:
                past = copy.deepcopy(prev_cache)
                # A negative crop drops that many tokens from the end (all transformers versions).
                if n < past.get_seq_length():
                    past.crop(n - past.get_seq_length())
                start = n
        if start < len(prefix):
            ids = torch.tensor([prefix[start:]], device=self.device)
            with torch.inference_mode():
                # logits_to_keep=1: the prefix's logits are never read; skip most of lm_head.
                out = self.model(
                    input_ids=ids, **{self._cache_kw: past}, use_cache=True, logits_to_keep=1
                )
            past = _output_cache(out)
        self._prefix = (prefix, past)
        return past

    def _rows(
        self, requests: list[LoglikelihoodRequest]
    ) -> tuple[list[list[int]], list[tuple[int, list[int]]]]:
        """Token rows to run and, per request, (row index, continuation tokens).

        A request's continuation of L tokens is predicted by the last L positions of its row:
        the row is the context plus all but the last continuation token. Requests sharing a
        context with a one-token continuation share one row (the options " A".." D" of a
        question cost one sequence, not four).
        """
        pairs = []
        for req in requests:
            context, continuation = req.context, req.continuation
            n_spaces = len(context) - len(context.rstrip(" "))
            if n_spaces:  # the split_context rule, applied here to pre-tokenise in one batch
                context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
            pairs.append((context, continuation))
        known = self._encode_many([t for c, k in pairs for t in (c, c + k)])

        def encode(text: str) -> list[int]:
            return known[text] if text in known else self._encode(text)

        rows: list[list[int]] = []
        index: dict[tuple[int, ...], int] = {}
        plan: list[tuple[int, list[int]]] = []
        head = self._bos()
        for ctx_text, cont_text in pairs:
            ctx, cont = split_context(encode, ctx_text, cont_text)
            # An empty context still needs a position whose logits predict the first token.
            row = (head + ctx or [self.tokenizer.eos_token_id]) + cont[:-1]
            key = tuple(row)
            if key not in index:
                index[key] = len(rows)
                rows.append(row)
            plan.append((index[key], cont))
        return rows, plan

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        """Padded batches of whole rows (left padding), after one shared-prefix pass.

        Rows are sorted by length so a batch pads little; padding goes on the left, so every
        row ends at the last position and only the last positions' logits are computed
        (``logits_to_keep``). The longest prefix shared by all rows (few-shot exemplars) is
        run once, and its KV cache is reused by every batch and by the next call.
        """
        torch = self._torch
        rows, plan = self._rows(requests)
        need = [1] * len(rows)  # positions whose logits each row must keep
        for r, cont in plan:
            need[r] = max(need[r], len(cont))
        shared = _common_prefix(rows)
        # every position whose logits are read must come after the prefix
        shared = min(shared, *(len(row) - n for row, n in zip(rows, need, strict=True)))
        prefix = rows[0][:shared] if shared >= _MIN_SHARED_PREFIX else []
        cache = self._prefix_cache(prefix) if prefix else None
        p = len(prefix)
        logps: list[Any] = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]), reverse=True)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            suffixes = [rows[r][p:] for r in chunk]
            width = max(len(s) for s in suffixes)
            ids = torch.tensor([[pad] * (width - len(s)) + s for s in suffixes], device=self.device)
            mask = torch.tensor(
                [[0] * (width - len(s)) + [1] * len(s) for s in suffixes], device=self.device
            )
            positions = (mask.cumsum(-1) - 1).clamp(min=0) + p
            kwargs: dict[str, Any] = {}
            if cache is not None:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(chunk))
                kwargs[self._cache_kw] = past
                mask = torch.cat(
                    [torch.ones(len(chunk), p, dtype=mask.dtype, device=self.device), mask], 1
                )
            keep = max(need[r] for r in chunk)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=cache is not None,
                    logits_to_keep=keep,
                    **kwargs,
                ).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
            for j, r in enumerate(chunk):
                logps[r] = logp[j, keep - need[r] :]
        results = []
        for r, cont in plan:
            logp = logps[r]
            targets = torch.tensor(cont, device=logp.device)
            picked = logp[logp.shape[0] - len(cont) :].gather(1, targets[:, None])
            results.append(float(picked.sum()))
        return results


def _common_prefix(rows: list[list[int]]) -> int:
    """Length of the longest token prefix shared by every row."""
    first = rows[0]
    n = min(len(r) for r in rows)
    for row in rows[1:]:
        k = 0
        while k < n and row[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def _output_cache(out: Any) -> Any:
    cache = getattr(out, "past_key_values", None)
    return cache if cache is not None else getattr(out, "cache", None)
