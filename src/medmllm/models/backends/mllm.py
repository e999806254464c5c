"""A MedMLLM folder behind the Generator interface: the ``mllm`` backend.

``load_generator("mllm", "path/to/mllm-folder")`` returns a :class:`MLLMGenerator`; so does
``load_generator("hf", …)`` on such a folder (the ``hf`` backend recognises its ``config.json`` and
hands over, refusing hf-only options such as ``dtype``). It takes one image per
conversation (a path to PNG/JPEG/DICOM, a PIL image or an array), streams like the text backend
and scores continuations *with* a request's image (multiple-choice VQA, the server's logprobs):
the context becomes the user turn of the same chat prompt generation uses, image spliced in.
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
    scores_images = True
    batch_size = 16  # rows per scoring forward pass

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
        """Requests with an image: the context is the user turn of the chat prompt (image
        placeholder included, as in generation) and the continuation the start of the reply
        (leading spaces, a raw-text convention, dropped). Without: raw text, as before.

        Each distinct image is encoded once; rows are scored in right-padded batches, longest
        first, image rows and text rows apart (a batch either has an image per row or none).
        """
        encode = lambda s: self.tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
        images: dict[tuple[str, Any], ImageInput] = {}
        rows: list[tuple[list[int], int, tuple[str, Any] | None]] = []  # (ids, n_context, image)
        for i, req in enumerate(requests):
            if len(req.images) > 1:
                raise InvalidRequestError(
                    f"MedMLLM scores with one image per request; request {i} has {len(req.images)}",
                    hint="send one image",
                )
            if req.images:
                key = _image_key(req.images[0])
                images.setdefault(key, req.images[0])
                prompt = self.mllm.prompt_text([{"role": "user", "content": req.context}], True)
                ctx, cont = split_context(encode, prompt, req.continuation.lstrip() or " ")
                rows.append((ctx + cont, len(ctx), key))
            else:
                ctx, cont = split_context(encode, req.context, req.continuation)
                ctx = ctx or [self.tokenizer.eos_token_id]
                rows.append((ctx + cont, len(ctx), None))
        features = self._encode_images(images)
        scores = [0.0] * len(rows)
        for with_image in (True, False):
            todo = [i for i, r in enumerate(rows) if (r[2] is not None) == with_image]
            todo.sort(key=lambda i: -len(rows[i][0]))
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                keys = [rows[i][2] for i in chunk]
                feats = torch.stack([features[k] for k in keys if k]) if with_image else None
                logits = self._logits([rows[i][0] for i in chunk], feats)
                for row, i in enumerate(chunk):
                    ids, n_ctx, _ = rows[i]
                    logp = torch.log_softmax(logits[row, n_ctx - 1 : len(ids) - 1].float(), -1)
                    targets = torch.tensor(ids[n_ctx:], device=logp.device)
                    scores[i] = float(logp.gather(1, targets[:, None]).sum())
        return scores

    def sequence_logits(self, ids: list[int], image: ImageInput | None = None) -> torch.Tensor:
        """Logits [len(ids), vocab] of one token sequence; with ``image``, the sequence must
        hold the placeholders of :meth:`MedMLLM.prompt_text` (the server's token logprobs)."""
        feats = None
        if image is not None:
            feats = self._encode_images({_image_key(image): image})[_image_key(image)][None]
        return self._logits([ids], feats)[0]

    def _encode_images(
        self, images: dict[tuple[str, Any], ImageInput]
    ) -> dict[tuple[str, Any], torch.Tensor]:
        out: dict[tuple[str, Any], torch.Tensor] = {}
        keys = list(images)
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start : start + self.batch_size]
            pixels = self.mllm.pixel_values([images[k] for k in chunk]).to(self.device)
            with torch.inference_mode():
                feats = self.mllm.encoder(pixels)
            out.update(zip(chunk, feats, strict=True))
        return out

    def _logits(self, rows: list[list[int]], features: torch.Tensor | None) -> torch.Tensor:
        """One forward pass over right-padded rows (causal: padding never changes a real
        position's logits); ``features``: encoder features, one image per row."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), int(self.tokenizer.pad_token_id), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for n, row in enumerate(rows):
            ids[n, : len(row)] = torch.tensor(row)
            mask[n, : len(row)] = 1
        with torch.inference_mode():
            return self.mllm(  # type: ignore[no-any-return]
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                image_features=features,
            ).logits


def _image_key(image: ImageInput) -> tuple[str, Any]:
    """Requests naming the same file share one encoding; in-memory images count by identity."""
    if isinstance(image, str | Path):
        return ("path", str(Path(image).expanduser()))
    return ("object", id(image))
