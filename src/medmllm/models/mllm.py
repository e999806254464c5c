"""``MedMLLM``: vision encoder → aligner → any Hugging Face causal LM → text.

The image is loaded (:mod:`medmllm.models.imaging`), preprocessed by the encoder's processor,
encoded to patch tokens, mapped by the aligner to the LLM's width and either

* spliced into the input embeddings at the ``<image>`` placeholder (``linear``, ``mlp2x_gelu``,
  ``qformer``, ``perceiver``; the placeholder is expanded to the aligner's visual-token count, as
  transformers' LLaVA does), or
* read by gated cross-attention blocks inside the LLM (``cross_attn``; no image tokens).

A model folder holds ``config.json`` (our config + the encoder's and LLM's transformers configs),
``model.safetensors`` (every weight), ``tokenizer/`` and ``processor.json``. Loading rebuilds the
architecture from the configs (no hub access) and loads the weights strictly: a folder whose
config does not match its weights raises :class:`~medmllm.errors.CheckpointMismatchError`.

Example:
    >>> from medmllm.models.mllm import MedMLLM, MLLMConfig
    >>> model = MedMLLM.build(MLLMConfig.tiny("vit", "mlp2x_gelu"))  # doctest: +SKIP
    >>> model.generate_text("scan.png", "Is there a fracture?", max_new_tokens=8)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from medmllm.errors import CheckpointMismatchError, InvalidModelFileError, InvalidRequestError
from medmllm.models.aligners import AlignerConfig, build_aligner
from medmllm.models.imaging import load_image
from medmllm.models.vision import EncoderConfig, VisionEncoder, build_encoder

MLLM_FORMAT = "medmllm-mllm"
FORMAT_VERSION = 1
IMAGE_TOKEN = "<image>"


class LLMConfig(BaseModel):
    """The language model: a hub id / folder / GGUF, the embedded default, or a tiny random one."""

    model_config = ConfigDict(extra="forbid")

    model_id: str | None = Field(
        None,
        description="Hub id, HF folder or GGUF file; None = the embedded SmolLM2 (dequantised "
        "to an HF folder once and cached).",
    )
    tiny: bool = Field(
        False,
        description="Random-initialised small Llama with the embedded model's tokenizer "
        "(unit tests and CPU experiments); model_id is then ignored.",
    )
    hidden_size: int = Field(64, ge=8, description="Width of the tiny LLM.")
    num_layers: int = Field(2, ge=1, description="Decoder layers of the tiny LLM.")
    num_heads: int = Field(4, ge=1, description="Attention heads of the tiny LLM.")


class MLLMConfig(BaseModel):
    """An encoder × aligner × LLM assembly."""

    model_config = ConfigDict(extra="forbid")

    encoder: EncoderConfig = Field(default_factory=EncoderConfig, description="Vision encoder.")
    aligner: AlignerConfig = Field(default_factory=AlignerConfig, description="Aligner.")
    llm: LLMConfig = Field(default_factory=LLMConfig, description="Language model.")
    seed: int = Field(0, description="Seed for random-initialised parts.")

    @classmethod
    def tiny(cls, encoder: str = "vit", aligner: str = "mlp2x_gelu", size: int = 64) -> MLLMConfig:
        """Small random config for tests: ``size`` px images, tiny encoder, aligner and LLM."""
        return cls(
            encoder=EncoderConfig(name=encoder, image_size=size, hidden_size=32),
            aligner=AlignerConfig(name=aligner, num_queries=4, num_layers=1),
            llm=LLMConfig(tiny=True),
        )


def default_llm_folder() -> Path:
    """The embedded SmolLM2 as a cached HF folder (converted from the GGUF on first use)."""
    from medmllm.config import get_settings
    from medmllm.models.defaults import resolve_model_path
    from medmllm.models.hf_weights import convert_gguf

    return convert_gguf(resolve_model_path(None), get_settings().cache_dir("hf"))


def _llm_source(cfg: LLMConfig) -> str:
    if cfg.tiny or cfg.model_id is None:
        return str(default_llm_folder())
    from medmllm.config import get_settings
    from medmllm.models.hf_weights import resolve_hf_model

    return resolve_hf_model(cfg.model_id, get_settings())


def _load_llm(cfg: LLMConfig, tokenizer: Any) -> Any:
    import transformers

    if cfg.tiny:
        config = transformers.LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.hidden_size * 2,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_heads,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return transformers.AutoModelForCausalLM.from_pretrained(_llm_source(cfg), dtype=torch.float32)


class MedMLLM(nn.Module):
    """Encoder + aligner + causal LM; :meth:`build` a new one, :meth:`from_pretrained` a folder."""

    def __init__(
        self,
        cfg: MLLMConfig,
        encoder: VisionEncoder,
        llm: Any,
        tokenizer: Any,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.llm: Any = llm  # a transformers PreTrainedModel (dynamic attributes)
        self.tokenizer = tokenizer
        llm_dim = int(llm.get_input_embeddings().weight.shape[1])
        self.aligner = build_aligner(cfg.aligner, encoder.hidden_size, llm_dim)
        if not self.aligner.splices:
            self.aligner.attach(llm)  # type: ignore[operator]
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
        self.num_visual_tokens = self.aligner.visual_tokens(encoder.num_tokens)

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: MLLMConfig | dict[str, Any]) -> MedMLLM:
        """Assemble a fresh model (pretrained parts from their sources, the rest random)."""
        import transformers

        cfg = cfg if isinstance(cfg, MLLMConfig) else MLLMConfig.model_validate(cfg)
        torch.manual_seed(cfg.seed)
        encoder = build_encoder(cfg.encoder)
        tokenizer = transformers.AutoTokenizer.from_pretrained(_llm_source(cfg.llm))
        _add_image_token(tokenizer)
        llm = _load_llm(cfg.llm, tokenizer)
        if llm.get_input_embeddings().weight.shape[0] < len(tokenizer):
            llm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        return cls(cfg, encoder, llm, tokenizer)

    # -- forward ------------------------------------------------------------------------------
    def visual_embeds(
        self, pixel_values: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Aligned visual tokens [B, T, D_llm] from pixels or from cached encoder features."""
        if features is None:
            if pixel_values is None:
                raise InvalidRequestError("visual_embeds needs pixel_values or features")
            features = self.encoder(pixel_values)
        return self.aligner(features)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        has_image = pixel_values is not None or image_features is not None
        visual = self.visual_embeds(pixel_values, image_features) if has_image else None
        if self.aligner.splices:
            embeds = self._splice(input_ids, visual)
            return self.llm(
                inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kwargs
            )
        self.aligner.set_memory(visual)  # type: ignore[operator]
        try:
            return self.llm(
                input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs
            )
        finally:
            self.aligner.set_memory(None)  # type: ignore[operator]

    def _splice(self, input_ids: torch.Tensor, visual: torch.Tensor | None) -> torch.Tensor:
        mask = input_ids == self.image_token_id
        embeds = self.llm.get_input_embeddings()(input_ids.masked_fill(mask, 0))
        n_slots = int(mask.sum())
        if visual is None:
            if n_slots:
                raise InvalidRequestError(
                    f"the prompt has {n_slots} image placeholder token(s) but no image was given"
                )
            return embeds
        if n_slots != visual.shape[0] * visual.shape[1]:
            raise InvalidRequestError(
                f"the prompt has {n_slots} image placeholder tokens; the images give "
                f"{visual.shape[0]}x{visual.shape[1]} visual tokens",
                hint="build prompts with MedMLLM.prompt_text (one image per sequence)",
            )
        return embeds.masked_scatter(mask.unsqueeze(-1), visual.to(embeds.dtype))

    # -- prompts ------------------------------------------------------------------------------
    def prompt_text(self, messages: list[dict[str, str]], with_image: bool) -> str:
        """Chat-templated prompt; the first user turn gets the image placeholder(s)."""
        msgs = [dict(m) for m in messages]
        if with_image and self.aligner.splices:
            first = next(i for i, m in enumerate(msgs) if m["role"] == "user")
            slot = IMAGE_TOKEN * self.num_visual_tokens
            msgs[first]["content"] = f"{slot}\n{msgs[first]['content']}"
        if self.tokenizer.chat_template:
            return str(
                self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            )
        return "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant:"

    def pixel_values(self, images: list[Any]) -> torch.Tensor:
        """Load (paths, DICOM, PIL, arrays) and preprocess images → [B, 3, S, S]."""
        return self.encoder.preprocess([load_image(im) for im in images])

    @torch.inference_mode()
    def generate_ids(
        self,
        messages: list[dict[str, str]],
        image: Any | None = None,
        **generate_kwargs: Any,
    ) -> tuple[torch.Tensor, int]:
        """Run ``llm.generate``; returns (new token ids [1, n], prompt length)."""
        text = self.prompt_text(messages, with_image=image is not None)
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        device = next(self.llm.parameters()).device
        ids = ids.to(device)
        pixels = self.pixel_values([image]).to(device) if image is not None else None
        mask = torch.ones_like(ids)
        kwargs = {
            "pad_token_id": self.tokenizer.pad_token_id,
            "suppress_tokens": [self.image_token_id],  # never generate the placeholder
            "min_new_tokens": 1,  # an empty answer is never wanted
            **generate_kwargs,
        }
        if self.aligner.splices:
            visual = self.visual_embeds(pixels) if pixels is not None else None
            embeds = self._splice(ids, visual)
            out = self.llm.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
        else:
            self.aligner.set_memory(self.visual_embeds(pixels) if pixels is not None else None)  # type: ignore[operator]
            try:
                out = self.llm.generate(input_ids=ids, attention_mask=mask, **kwargs)[
                    :, ids.shape[1] :
                ]
            finally:
                self.aligner.set_memory(None)  # type: ignore[operator]
        return out, int(ids.shape[1])

    def generate_text(self, image: Any | None, question: str, max_new_tokens: int = 32) -> str:
        """Greedy answer to ``question`` about ``image`` (None: text only)."""
        self.eval()
        out, _ = self.generate_ids(
            [{"role": "user", "content": question}],
            image,
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
        return str(self.tokenizer.decode(out[0], skip_special_tokens=True)).strip()

    # -- reporting ----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Parameter counts and visual-token budget (for tables and benchmarks)."""
        return {
            "encoder": self.cfg.encoder.name,
            "aligner": self.cfg.aligner.name,
            "encoder_parameters": sum(p.numel() for p in self.encoder.parameters()),
            "aligner_parameters": self.aligner.num_parameters(),
            "llm_parameters": sum(p.numel() for p in self.llm.parameters()),
            "trainable_parameters": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "visual_tokens": self.num_visual_tokens,
            "encoder_tokens": self.encoder.num_tokens,
        }

    # -- persistence --------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the model folder atomically (temp folder renamed into place)."""
        from safetensors.torch import save_model

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            meta = {
                "format": MLLM_FORMAT,
                "format_version": FORMAT_VERSION,
                "mllm": self.cfg.model_dump(),
                "encoder_class": type(self.encoder.model).__name__,
                "encoder_kind": self.encoder.kind,
                "encoder_hidden_size": self.encoder.hidden_size,
                "encoder_config": self.encoder.model.config.to_dict(),
                "llm_config": self.llm.config.to_dict(),
                "visual_tokens": self.num_visual_tokens,
            }
            (tmp / "config.json").write_text(json.dumps(meta, indent=2, default=str))
            (tmp / "processor.json").write_text(self.encoder.processor.to_json_string())
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            save_model(self, str(tmp / "model.safetensors"))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> MedMLLM:
        """Load a folder written by :meth:`save_pretrained` (no network)."""
        import transformers
        from safetensors.torch import load_model

        folder = Path(folder)
        meta = read_mllm_config(folder)
        cfg = MLLMConfig.model_validate(meta["mllm"])
        enc_cfg_dict = dict(meta["encoder_config"])
        enc_config = transformers.AutoConfig.for_model(**enc_cfg_dict)
        enc_cls = getattr(transformers, meta["encoder_class"])
        extra = {"add_pooling_layer": False} if meta["encoder_class"] == "ViTModel" else {}
        enc_model = enc_cls(enc_config, **extra)
        processor = transformers.ViTImageProcessorPil.from_json_file(folder / "processor.json")
        encoder = VisionEncoder(
            cfg.encoder,
            enc_model,
            processor,
            int(meta["encoder_hidden_size"]),
            meta["encoder_kind"],
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "tokenizer")
        llm_config = transformers.AutoConfig.for_model(**meta["llm_config"])
        llm = transformers.AutoModelForCausalLM.from_config(llm_config, dtype=torch.float32)
        model = cls(cfg, encoder, llm, tokenizer)
        try:
            missing, unexpected = load_model(model, folder / "model.safetensors", strict=False)
        except (RuntimeError, OSError, ValueError) as exc:
            raise CheckpointMismatchError(
                f"{folder}: weights do not match its config.json ({str(exc).splitlines()[0]})",
                hint="the folder was edited or mixed from two models; re-export it",
            ) from None
        missing = [k for k in missing if not _tied(k, llm)]
        if missing or unexpected:
            raise CheckpointMismatchError(
                f"{folder}: weights do not match its config.json (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})",
                hint="the folder was edited or mixed from two models; re-export it",
            )
        return model.to(device).eval()


def _tied(key: str, llm: nn.Module) -> bool:
    return key.endswith("lm_head.weight") and bool(
        getattr(llm.config, "tie_word_embeddings", False)
    )


def _add_image_token(tokenizer: Any) -> None:
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def is_mllm_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder written by :meth:`MedMLLM.save_pretrained`."""
    cfg = Path(path).expanduser() / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == MLLM_FORMAT
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def read_mllm_config(folder: Path) -> dict[str, Any]:
    """The folder's config.json, checked for format and required files."""
    if not is_mllm_folder(folder):
        raise InvalidModelFileError(
            f"{folder} is not a MedMLLM folder (no config.json with format {MLLM_FORMAT!r})",
            hint="pass a folder written by MedMLLM.save_pretrained / medmllm train mllm",
        )
    meta: dict[str, Any] = json.loads((folder / "config.json").read_text())
    for name in ("model.safetensors", "processor.json", "tokenizer"):
        if not (folder / name).exists():
            raise CheckpointMismatchError(
                f"{folder} is missing {name}", hint="re-export the model folder"
            )
    return meta
