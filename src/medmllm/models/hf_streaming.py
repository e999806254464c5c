"""Streaming text out of transformers' ``generate`` (one owner for the hf and MedMLLM backends).

``generate`` runs in a worker thread that feeds a ``TextIteratorStreamer``; the caller's thread
yields text as it arrives. A stop string ends the stream and cancels generation at the next token
(a ``StoppingCriteria``), so a stopped or abandoned stream does not keep the model busy; a tail of
the text that could be the start of a stop string is held back until it is decided.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from medmllm.models.generator import SamplingParams, StreamChunk, stop_at


@dataclass
class Generated:
    """How a stream ended: what ``generate`` returned and whether a stop string cut it."""

    output: Any
    stopped: bool


def stream_generate(
    tokenizer: Any, generate: Callable[[dict[str, Any]], Any], params: SamplingParams
) -> Generator[StreamChunk, None, Generated]:
    """Yield text chunks of ``generate(kwargs)``; return its output (``yield from`` this).

    Args:
        tokenizer: decodes the new tokens (special tokens skipped).
        generate: runs the model's ``generate`` with these keyword arguments added to its own
            (``max_new_tokens``, sampling settings, ``streamer``, ``stopping_criteria``).
        params: sampling parameters; ``seed`` seeds torch in the worker thread.
    """
    import torch
    import transformers

    streamer = transformers.TextIteratorStreamer(
        tokenizer, skip_prompt=True, skip_special_tokens=True
    )
    cancel = threading.Event()

    class _Cancel(transformers.StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return cancel.is_set()

    sample = params.temperature > 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_tokens,
        "do_sample": sample,
        "streamer": streamer,
        "stopping_criteria": transformers.StoppingCriteriaList([_Cancel()]),
    }
    if sample:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            with torch.inference_mode():
                result["out"] = generate(kwargs)
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
    return Generated(result.get("out"), stopped)
