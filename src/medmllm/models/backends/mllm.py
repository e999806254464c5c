"""A MedMLLM folder behind the Generator interface: the ``mllm`` backend.

``load_generator("mllm", "path/to/mllm-folder")`` returns a :class:`MLLMGenerator`; so does
``load_generator("hf", …)`` on such a folder (the ``hf`` backend recognises its ``config.json`` and
hands over, refusing hf-only options such as ``dtype``). It takes one image per
conversation (a path to PNG/JPEG/DICOM, a PIL image or an array), streams like the text backend
and scores continuations text-only for multiple-choice tasks.
"""

from __future__ import annotations

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
)
from medmllm.models.hf_streaming import stream_generate
from medmllm.models.mllm import MedMLLM


class MLLMGenerator(BaseGenerator):
    """Generator over a :class:`~medmllm.models.mllm.MedMLLM` folder (or an in-memory model).

    Args:
        model: folder written by ``MedMLLM.save_pretrained`` (or a built ``MedMLLM``).
        device: torch device.
    """

    backend = "mllm"
    supports_images = True

    def __init__(self, model: str | Path | MedMLLM, *, device: str = "cpu") -> None:
        if isinstance(model, MedMLLM):
            self.mllm = model.to(device).eval()
            model_id = f"mllm:{model.cfg.encoder.name}+{model.cfg.aligner.name}"
        else:
            self.mllm = MedMLLM.from_pretrained(model, device=device)
            model_id = str(model)
        super().__init__(model_id=model_id)
        self.tokenizer = self.mllm.tokenizer
        self.device = torch.device(device)

    def _output_options(self) -> dict[str, Any]:
        return {"device": str(self.device)}

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        if images and len(images) > 1:
            raise InvalidRequestError(
                f"MedMLLM takes one image per conversation, got {len(images)}",
                hint="send one image",
            )
        image = images[0] if images else None
        if image is not None:
            self.mllm.pixel_values([image])  # load + validate before starting the thread
        msgs = [m.to_dict() for m in messages]
        done = yield from stream_generate(
            self.tokenizer, lambda kwargs: self.mllm.generate_ids(msgs, image, **kwargs), params
        )
        out, n_prompt = done.output
        n_new = int(out.shape[1])
        finish: FinishReason = (
            "length" if n_new >= params.max_tokens and not done.stopped else "stop"
        )
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
