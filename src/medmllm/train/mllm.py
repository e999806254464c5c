"""Two-stage multimodal training on ``transformers.Trainer``: ``align`` then ``instruct``.

* Stage ``align``: only the aligner learns (encoder and LLM frozen), on image → text pairs
  (e.g. chest X-ray → finding from ``covid_cxr_notes``).
* Stage ``instruct``: the aligner plus LoRA adapters on the LLM (peft), on VQA / instructions
  (e.g. ``vqa_rad``); usually starts from the stage-1 model folder (``init_from``).

A run folder holds ``config.yaml`` (the resolved config), ``checkpoints/`` (Trainer checkpoints
with only the trainable weights, optimizer, scheduler and RNG states: a run killed with
``kill -9`` resumes from the last one and ends with the same loss), ``model/`` (the final
MedMLLM folder, LoRA merged), ``split.json`` (the rows held apart for evaluation, split by image:
``medmllm eval --exclude-split RUN/split.json`` drops the trained rows) and ``summary.json``
(final loss, images/s, config hash, versions).

A frozen encoder's features are computed once per image and cached under
``MEDMLLM_HOME/cache/mllm-features/<encoder fingerprint>/`` (the fingerprint covers the encoder
config, its weights and its preprocessing), so CPU time goes to the aligner and the LLM.

Example:
    >>> from medmllm.train.mllm import MLLMTrainConfig, train_mllm
    >>> summary = train_mllm(MLLMTrainConfig.from_yaml("configs/train/mllm_align_cpu.yaml"))
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import Trainer, TrainerCallback

from medmllm.errors import ConfigError, DataFormatError, DataNotFoundError
from medmllm.models.mllm import MedMLLM, MLLMConfig
from medmllm.train.core import TrainConfig, load_config
from medmllm.train.data import SPLIT_FILE, earlier_splits, split_ids

Stage = Literal["align", "instruct"]


class DataConfig(BaseModel):
    """Where image–text examples come from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["vqa_rad", "covid_cxr_notes", "jsonl"] = Field(
        "vqa_rad",
        description="vqa_rad (question → answer), covid_cxr_notes (image → finding/notes) or a "
        "generic JSONL with image, prompt and target keys.",
    )
    path: str | None = Field(
        None,
        description="JSONL file; None uses the shared data folder's file for the kind "
        "(vqa/vqa_rad/qa.jsonl, imaging/covid_cxr_notes/cases.jsonl).",
    )
    image_root: str | None = Field(
        None, description="Folder image paths are relative to; None = the JSONL's folder."
    )
    limit: int | None = Field(
        None, ge=1, description="Train on at most this many examples (the first of the train side)."
    )
    target: Literal["finding", "report"] = Field(
        "finding", description="covid_cxr_notes: train on the finding label or the notes text."
    )
    max_target_words: int = Field(48, ge=1, description="Truncate long targets to this many words.")
    instruction: str | None = Field(
        None,
        description="Appended to every prompt as the eval harness's gen mode appends a task's "
        "prompt.instruction ('question\\n\\ninstruction'); set it to the evaluated task's "
        "instruction so the model is evaluated on the prompt it was trained on.",
    )
    eval_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of the file's images held apart for evaluation with every row about "
        "them (split by image: no image on both sides); written to the run's split.json.",
    )
    split_seed: int = Field(20261128, description="Seed of the train/held-apart hash split.")


class MLLMTrainConfig(TrainConfig):
    """One training stage of a MedMLLM (the shared run settings come from ``TrainConfig``).

    ``finetune`` applies to the instruct stage: ``lora`` (default) or ``full`` LLM training.
    """

    stage: Stage = Field("align", description="align (aligner only) or instruct (+ LLM tuning).")
    model: MLLMConfig = Field(
        default_factory=MLLMConfig, description="Assembly to build when init_from is empty."
    )
    init_from: str | None = Field(
        None, description="MedMLLM folder to start from (e.g. the align stage's model/)."
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Training examples.")
    output_dir: Path = Field(
        Path("runs/mllm"), description="Run folder: run.json, checkpoint-N/, model/, summary."
    )
    max_steps: int = Field(20, ge=1, description="Optimizer steps.")
    save_steps: int = Field(5, ge=1, description="Checkpoint every N steps (resume point).")
    learning_rate: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    batch_size: int = Field(4, ge=1, description="Image–text examples per step.")
    cache_features: bool = Field(
        True, description="Cache frozen-encoder features per image (ignored if trainable)."
    )
    max_length: int = Field(512, ge=16, description="Truncate token sequences to this length.")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> MLLMTrainConfig:
        """Load a YAML config; ``overrides`` replace top-level keys (None values are ignored)."""
        return load_config(path, cls, overrides)


@dataclass
class Example:
    """One image–prompt–target triple and where it came from."""

    image: str
    prompt: str
    target: str
    key: str = ""  # "<data-file stem>:<row id>": the item id evaluation gives this row
    image_name: str = ""  # the image as the data file names it (the unit of the split)


def data_file(cfg: DataConfig) -> Path:
    """The JSONL the config reads (``path``, else the shared data folder's file for the kind)."""
    from medmllm.config import shared_data_dir

    default = {
        "vqa_rad": "vqa/vqa_rad/qa.jsonl",
        "covid_cxr_notes": "imaging/covid_cxr_notes/cases.jsonl",
    }
    if cfg.path is not None:
        path = Path(os.path.expandvars(cfg.path)).expanduser()
    elif cfg.kind in default:
        data_dir = shared_data_dir()
        assert data_dir is not None
        path = data_dir / default[cfg.kind]
    else:
        raise ConfigError("data.kind 'jsonl' needs data.path", hint="set data.path")
    if not path.is_file():
        raise DataNotFoundError(f"training data {str(path)!r} does not exist")
    return path


def read_examples(cfg: DataConfig) -> list[Example]:
    """Every row of the data file as an example, in file order (no split, no limit).

    Row ids follow the evaluation readers, so ``split.json`` names rows as ``medmllm eval``
    does: VQA-RAD's ``qid``, else the row's ``id``, else its 1-based line number.
    """
    from medmllm.jsonl import iter_jsonl

    path = data_file(cfg)
    root = Path(cfg.image_root).expanduser() if cfg.image_root else path.parent
    if cfg.kind == "vqa_rad" and not cfg.image_root:
        root = path.parent / "images"
    id_field = "qid" if cfg.kind == "vqa_rad" else "id"
    out: list[Example] = []
    for line, row in iter_jsonl(path):
        try:
            if cfg.kind == "vqa_rad":
                ex = Example(row["image_name"], row["question"], str(row["answer"]))
            elif cfg.kind == "covid_cxr_notes":
                text = row["finding"] if cfg.target == "finding" else row["report"]
                prompt = (
                    "What is the finding in this chest X-ray?"
                    if cfg.target == "finding"
                    else "Describe the findings of this chest X-ray."
                )
                ex = Example(row["image"], prompt, str(text))
            else:
                ex = Example(row["image"], row["prompt"], str(row["target"]))
        except KeyError as exc:
            raise DataFormatError(f"{path}:{line}: missing key {exc}") from None
        ex.target = " ".join(ex.target.split()[: cfg.max_target_words])
        if cfg.instruction:  # the harness's chat_prompt: body, blank line, instruction
            ex.prompt = f"{ex.prompt.rstrip()}\n\n{cfg.instruction}".strip()
        ex.key = f"{path.stem}:{row.get(id_field) if row.get(id_field) is not None else line}"
        ex.image_name = str(ex.image)
        image = Path(ex.image)
        ex.image = str(image if image.is_absolute() else root / image)
        out.append(ex)
    if not out:
        raise DataFormatError(f"{path} holds no training examples")
    return out


def split_examples(
    cfg: DataConfig, examples: list[Example]
) -> tuple[list[Example], dict[str, Any]]:
    """(examples to train on, the split record) — held apart by image, never by row.

    Images go to one side by the seeded hash split of text training
    (:func:`medmllm.train.data.split_ids`), so a row about a held-apart image is never trained
    on and the same file, fraction and seed always give the same split. ``limit`` then takes the
    first rows of the train side; the record's ``train`` lists every train-side row (what an
    evaluation must drop), ``held`` every held-apart row.
    """
    train_images, held_images = split_ids(
        [ex.image_name for ex in examples], cfg.eval_fraction, cfg.split_seed
    )
    train = [ex for ex in examples if ex.image_name in train_images]
    if not train:
        raise DataFormatError(
            f"no training rows left after holding {cfg.eval_fraction:.0%} of the images apart",
            hint="lower data.eval_fraction or add images",
        )
    record = {
        "source": cfg.kind,
        "path": str(data_file(cfg)),
        "files": [data_file(cfg).name],
        "key": "file_stem:id",
        "by": "image",
        "eval_fraction": cfg.eval_fraction,
        "split_seed": cfg.split_seed,
        "train": sorted(ex.key for ex in train),
        "held": sorted(ex.key for ex in examples if ex.image_name in held_images),
        "train_images": sorted(train_images),
        "held_images": sorted(held_images),
    }
    return train[: cfg.limit] if cfg.limit else train, record


def load_examples(cfg: DataConfig) -> list[Example]:
    """The examples a run trains on: the train side of the image split, at most ``limit``."""
    return split_examples(cfg, read_examples(cfg))[0]


# -- feature cache ------------------------------------------------------------------------------
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]


def cached_features(model: MedMLLM, images: list[str]) -> dict[str, torch.Tensor]:
    """Frozen-encoder features per image path, computed once and stored on disk."""
    from safetensors.torch import load_file, save_file

    from medmllm.config import get_settings

    folder = get_settings().cache_dir("mllm-features", model.encoder.fingerprint())
    result: dict[str, torch.Tensor] = {}
    todo: list[tuple[str, Path]] = []
    for image in dict.fromkeys(images):
        file = folder / f"{_file_hash(image)}.safetensors"
        if file.is_file():
            result[image] = load_file(file)["features"]
        else:
            todo.append((image, file))
    for start in range(0, len(todo), 16):
        chunk = todo[start : start + 16]
        with torch.no_grad():
            feats = model.encoder(model.pixel_values([img for img, _ in chunk]))
        for (image, file), feat in zip(chunk, feats, strict=True):
            tmp = file.with_suffix(f".tmp{os.getpid()}")
            save_file({"features": feat.contiguous()}, str(tmp))
            os.replace(tmp, file)
            result[image] = feat
    return result


class MLLMCollator:
    """Tokenise prompt + target (loss on the target only) and attach pixels or features."""

    def __init__(
        self,
        model: MedMLLM,
        max_length: int,
        features: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.max_length = max_length
        self.features = features
        tok = model.tokenizer
        self.end = tok.eos_token or ""

    def encode(self, ex: Example) -> tuple[list[int], list[int]]:
        tok = self.model.tokenizer
        prompt = self.model.prompt_text([{"role": "user", "content": ex.prompt}], True)
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        t_ids = tok(ex.target + self.end, add_special_tokens=False).input_ids
        ids = (p_ids + t_ids)[: max(self.max_length, len(p_ids) + 1)]
        labels = ([-100] * len(p_ids) + t_ids)[: len(ids)]
        return ids, labels

    def __call__(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        pad = self.model.tokenizer.pad_token_id
        encoded = [self.encode(ex) for ex in batch]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, lab) in enumerate(encoded):  # right padding
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(lab)] = torch.tensor(lab)
            mask[row, : len(ids)] = 1
        out = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        if self.features is not None:
            out["image_features"] = torch.stack([self.features[ex.image] for ex in batch])
        else:
            out["pixel_values"] = self.model.pixel_values([ex.image for ex in batch])
        return out


# -- model preparation --------------------------------------------------------------------------
def prepare_model(cfg: MLLMTrainConfig) -> MedMLLM:
    """Build or load the model and set which parameters learn for the stage."""
    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        model = MedMLLM.from_pretrained(Path(cfg.init_from).expanduser())
    else:
        model = MedMLLM.build(cfg.model)
    model.requires_grad_(False)
    if not model.cfg.encoder.frozen:
        model.encoder.requires_grad_(True)
    if cfg.stage == "instruct":
        if cfg.finetune == "full":
            model.llm.requires_grad_(True)
        elif cfg.finetune == "lora":
            from peft import get_peft_model

            from medmllm.train.core import lora_config

            model.llm = get_peft_model(model.llm, lora_config(cfg.lora))
        else:
            raise ConfigError(
                f"finetune {cfg.finetune!r} is not supported for MedMLLM training",
                hint="use finetune: lora or full",
            )
    model.aligner.requires_grad_(True)  # after peft, which freezes what it does not adapt
    return model


def finalize_model(model: MedMLLM) -> MedMLLM:
    """Merge LoRA adapters into the LLM so the folder is a plain MedMLLM."""
    from peft import PeftModel

    if isinstance(model.llm, PeftModel):
        model.llm = model.llm.merge_and_unload()
    return model


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().contiguous().clone() for n, p in model.named_parameters() if p.requires_grad
    }


def train_mllm(cfg: MLLMTrainConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Run one stage; returns (and writes) the run summary.

    Reopening the same ``output_dir`` with the same config resumes from its newest complete
    checkpoint; another config is refused (:class:`~medmllm.errors.RunMismatchError`).
    """
    from medmllm.provenance import config_hash, environment
    from medmllm.train.core import (
        attach_callbacks,
        last_checkpoint,
        prepare_run_dir,
        seed_everything,
        train_resumable,
    )

    run = prepare_run_dir(cfg.output_dir, cfg, overwrite=overwrite)
    seed_everything(cfg.seed)
    examples, split = split_examples(cfg.data, read_examples(cfg.data))
    earlier = earlier_splits(cfg.init_from)
    record = {**split, "earlier": earlier} if earlier else split
    _atomic_write(run / SPLIT_FILE, json.dumps(record, indent=1))
    missing = [ex.image for ex in examples if not Path(ex.image).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} training image(s) do not exist, e.g. {missing[0]!r}",
            hint="check data.image_root",
        )
    model = prepare_model(cfg)
    features = None
    t0 = time.perf_counter()
    if model.cfg.encoder.frozen and cfg.cache_features:
        features = cached_features(model, [ex.image for ex in examples])
    feature_s = time.perf_counter() - t0
    collator = MLLMCollator(model, cfg.max_length, features)
    trainer, meter = build_trainer(model, cfg, examples, collator)
    attach_callbacks(trainer, cfg)
    resumed = last_checkpoint(run)
    t0 = time.perf_counter()
    result = train_resumable(trainer, cfg)
    train_s = time.perf_counter() - t0
    finalize_model(model)
    model.save_pretrained(run / "model")
    summary = {
        "stage": cfg.stage,
        "config_hash": config_hash(cfg.model_dump(mode="json")),
        "steps": int(result.global_step),
        "final_loss": meter.last_loss,
        "mean_loss": float(result.training_loss),
        "losses": meter.losses,
        "examples": len(examples),
        "held_apart": {
            "rows": len(split["held"]),
            "images": len(split["held_images"]),
            "split": str(run / SPLIT_FILE),
        },
        "images_per_s": meter.images_per_s(),
        "train_seconds": train_s,
        "feature_cache_seconds": feature_s,
        "feature_cache": features is not None,
        "resumed_from": str(resumed) if resumed else None,
        "model_dir": str(run / "model"),
        "model": model.describe(),
        "environment": environment(),
    }
    _atomic_write(run / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- the transformers.Trainer behind train_mllm ----------------------------------------------
# Checkpoints hold only the trainable weights (aligner, LoRA, a trainable encoder) as safetensors,
# next to the optimizer, scheduler and RNG states the Trainer writes itself, so resuming after a
# kill -9 continues exactly where the last checkpoint left off.
TRAINABLE_FILE = "trainable.safetensors"


class _ListDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


class MLLMTrainer(Trainer):
    """Trainer that saves / restores only the parameters that learn."""

    def _save(
        self, output_dir: str | None = None, state_dict: dict[str, Any] | None = None
    ) -> None:
        from safetensors.torch import save_file

        from medmllm.train.mllm import trainable_state

        out = Path(output_dir or str(self.args.output_dir))
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{TRAINABLE_FILE}.tmp"
        assert self.model is not None
        save_file(trainable_state(self.model), str(tmp))
        os.replace(tmp, out / TRAINABLE_FILE)

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: torch.nn.Module | None = None
    ) -> None:
        from safetensors.torch import load_file

        from medmllm.errors import CheckpointMismatchError

        target = model or self.model
        assert target is not None
        state = load_file(str(Path(resume_from_checkpoint) / TRAINABLE_FILE))
        _, unexpected = target.load_state_dict(state, strict=False)
        wanted = {n for n, p in target.named_parameters() if p.requires_grad}
        if unexpected or wanted - set(state):
            raise CheckpointMismatchError(
                f"checkpoint {resume_from_checkpoint} does not match this model "
                f"(unexpected {list(unexpected)[:3]}, missing {sorted(wanted - set(state))[:3]})",
                hint="resume with the same config, or start a new output_dir",
            )


class LossMeter(TrainerCallback):
    """Remembers the logged losses and measures images/s (the core's bar shows them live)."""

    def __init__(self, images_per_step: int) -> None:
        self.images_per_step = images_per_step
        self.losses: list[float] = []
        self.last_loss: float | None = None
        self._t0 = 0.0
        self._elapsed = 0.0
        self._start_step = 0
        self._steps = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t0 = time.perf_counter()
        self._start_step = state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
            self.losses.append(self.last_loss)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._steps = state.global_step - self._start_step
        self._elapsed = time.perf_counter() - self._t0

    def images_per_s(self) -> float:
        return self._steps * self.images_per_step / self._elapsed if self._elapsed > 0 else 0.0


def build_trainer(
    model: MedMLLM,
    cfg: MLLMTrainConfig,
    examples: list[Example],
    collator: MLLMCollator,
) -> tuple[MLLMTrainer, LossMeter]:
    """Trainer (arguments from the shared core) + a loss / images-per-second meter."""
    from medmllm.train.core import training_arguments

    args = training_arguments(cfg, label_names=["labels"])
    meter = LossMeter(cfg.batch_size * cfg.grad_accum)
    trainer = MLLMTrainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(examples),
        data_collator=collator,
        callbacks=[meter],
    )
    return trainer, meter
