"""A MedMLLM folder behind the Generator interface (served by the ``hf`` backend).

``load_generator("hf", "path/to/mllm-folder")`` returns a :class:`MLLMGenerator`: the ``hf``
backend recognises the folder's ``config.json`` and delegates here. It takes one image per
conversation (a path to PNG/JPEG/DICOM, a PIL image or an array), streams like the text backend
and scores continuations text-only for multiple-choice tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from medmllm.errors import InvalidRequestError
from medmllm.models.generator import (
    BaseGenerator,
    FinishReason,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
    Usage,
    split_context,
    stop_at,
)
from medmllm.models.mllm import MedMLLM


class MLLMGenerator(BaseGenerator):
    """Generator over a :class:`~medmllm.models.mllm.MedMLLM` folder (or an in-memory model).

    Args:
        model: folder written by ``MedMLLM.save_pretrained`` (or a built ``MedMLLM``).
        device: torch device.
    """

    backend = "hf"
    supports_images = True

    def __init__(self, model: str | Path | MedMLLM, *, device: str = "cpu", **_: Any) -> None:
        if isinstance(model, MedMLLM):
            self.mllm = model.to(device).eval()
            model_id = f"mllm:{model.cfg.encoder.name}+{model.cfg.aligner.name}"
        else:
            self.mllm = MedMLLM.from_pretrained(model, device=device)
            model_id = str(model)
        super().__init__(model_id=model_id)
        self.tokenizer = self.mllm.tokenizer
        self.device = torch.device(device)

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        import transformers

        if images and len(images) > 1:
            raise InvalidRequestError(
                f"MedMLLM takes one image per conversation, got {len(images)}",
                hint="send one image",
            )
        image = images[0] if images else None
        if image is not None:
            self.mllm.pixel_values([image])  # load + validate before starting the thread
        streamer = transformers.TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sample,
            "streamer": streamer,
        }
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        result: dict[str, Any] = {}
        msgs = [m.to_dict() for m in messages]

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                result["out"] = self.mllm.generate_ids(msgs, image, **kwargs)
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
                cut, stopped = stop_at(text, params.stop) if params.stop else (text, False)
                if len(cut) > emitted:
                    yield StreamChunk(cut[emitted:])
                    emitted = len(cut)
                if stopped:
                    break
        finally:
            thread.join()
        if "error" in result:
            raise result["error"]
        out, n_prompt = result["out"]
        n_new = int(out.shape[1])
        finish: FinishReason = "length" if n_new >= params.max_tokens and not stopped else "stop"
        yield StreamChunk("", finish_reason=finish, usage=Usage(n_prompt, n_new))

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        encode = lambda s: self.tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
        scores = []
        for req in requests:
            ctx, cont = split_context(encode, req.context, req.continuation)
            ctx = ctx or [self.tokenizer.eos_token_id]
            ids = torch.tensor([ctx + cont], device=self.device)
            with torch.inference_mode():
                logits = self.mllm(input_ids=ids).logits[0].float()
            logp = torch.log_softmax(logits[len(ctx) - 1 : -1], dim=-1)
            targets = torch.tensor(cont, device=self.device)
            scores.append(float(logp.gather(1, targets[:, None]).sum()))
        return scores
