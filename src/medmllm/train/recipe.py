"""What the text recipes (cpt, ift, sft, dpo, reward, rlaif) share: config, model, data, run.

A recipe module defines its config (a :class:`RecipeConfig` subclass with its defaults) and a
function that builds one TRL trainer; :func:`run_recipe` does the rest in the same order for all
of them — validate data, open the run folder, load the model, train (resumable), save, summarise.
Cheap checks come first so that a bad dataset or a refused resume fails before any weights load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from medmllm.errors import ModelNotFoundError
from medmllm.train.core import (
    TrainConfig,
    _atomic_write_json,
    attach_callbacks,
    prepare_run_dir,
    read_run,
    resolve_device,
    seed_everything,
    train_resumable,
)
from medmllm.train.data import DataConfig, Dataset, load_dataset, write_split

FINAL_ADAPTER = "adapter"
FINAL_MODEL = "model"
RESULT_FILE = "result.json"


class RecipeConfig(TrainConfig):
    """A text training run: the base settings plus the model, the data and sequence length."""

    model: str | None = Field(
        None,
        description="Base model: None/embedded name (SmolLM2-135M GGUF, converted once), a .gguf "
        "file, an HF folder (e.g. a previous stage's merged model) or a hub id.",
    )
    adapter: str | None = Field(
        None,
        description="A LoRA adapter folder of a previous stage (chains cpt → ift → sft → dpo): "
        "LoRA trains that adapter further; full fine-tuning merges it into the base first.",
    )
    data: DataConfig = Field(description="Where the training rows come from.")
    max_length: int = Field(512, ge=8, description="Tokens per sequence (packed block length).")
    chat: bool = Field(
        True,
        description="Wrap prompt/completion rows in the model's chat template (user/assistant "
        "turns); false trains on the raw strings.",
    )


def resolve_base_model(model: str | None) -> str:
    """A loadable HF source for ``model`` (:func:`~medmllm.models.hf_weights.resolve_hf_model`:
    the embedded/GGUF models become a cached HF folder), refusing an adapter folder: training
    starts from a full model, and a previous stage's adapter goes in ``adapter:``.

    Raises:
        ModelNotFoundError: a path that does not exist, or an adapter folder.
        InvalidModelFileError: a file that is not a GGUF, a folder that is not a model.
        OfflineError: a hub id while offline.
    """
    from medmllm.config import get_settings
    from medmllm.models.hf_weights import resolve_hf_model

    source = resolve_hf_model(model, get_settings())
    path = Path(source)
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} is a LoRA adapter, not a base model",
            hint="set model: to the adapter's base model and adapter: to this folder",
        )
    return source


def load_model_and_tokenizer(
    config: RecipeConfig, *, sequence_classification: bool = False
) -> tuple[Any, Any]:
    """The base model (+ a previous stage's adapter merged in) and its tokenizer."""
    import torch
    import transformers

    device = resolve_device(config)
    source = resolve_base_model(config.model)
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if config.finetune == "qlora":
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["dtype"] = torch.bfloat16
    auto = (
        transformers.AutoModelForSequenceClassification
        if sequence_classification
        else transformers.AutoModelForCausalLM
    )
    if sequence_classification:
        kwargs["num_labels"] = 1
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        model: Any = auto.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(
            f"could not load base model {source!r}: {str(exc).splitlines()[0]}",
            hint="check model: in the config (hub ids need network access)",
        ) from None
    if config.adapter:
        from peft import PeftModel

        adapter = Path(config.adapter)
        if not (adapter / "adapter_config.json").is_file():
            raise ModelNotFoundError(
                f"adapter folder {adapter} has no adapter_config.json",
                hint="set adapter: to the 'adapter' folder of a finished LoRA run",
            )
        if config.finetune == "full":
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            model.requires_grad_(True)  # peft froze the base for inference; full FT trains all
        else:
            # LoRA stages chain by training the previous stage's adapter further: the saved
            # adapter then applies to the original base on its own (export, eval).
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if config.finetune == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    elif device == "cuda":
        model = model.to(device)
    return model, tokenizer


def to_hf_dataset(dataset: Dataset, *, chat: bool) -> Any:
    """A ``datasets.Dataset`` in TRL's shapes (conversational when ``chat``)."""
    import datasets

    rows = dataset.rows
    if chat and dataset.format == "prompt_completion":
        rows = [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "completion": [{"role": "assistant", "content": r["completion"].lstrip()}],
            }
            for r in rows
        ]
    elif chat and dataset.format == "preference":
        rows = [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "chosen": [{"role": "assistant", "content": r["chosen"].lstrip()}],
                "rejected": [{"role": "assistant", "content": r["rejected"].lstrip()}],
            }
            for r in rows
        ]
    else:
        keep = {"text": ("text",), "prompt_completion": ("prompt", "completion")}.get(
            dataset.format, ("prompt", "chosen", "rejected")
        )
        rows = [{k: r[k] for k in keep} for r in rows]
    return datasets.Dataset.from_list(rows)


TrainerFactory = Callable[[Any, Any, Any, Any, Any], Any]


def run_recipe(
    config: RecipeConfig,
    fmt: str,
    make_trainer: TrainerFactory,
    *,
    overwrite: bool = False,
    sequence_classification: bool = False,
) -> dict[str, Any]:
    """Run one recipe end to end; returns (and writes) ``result.json``.

    Args:
        config: the recipe config.
        fmt: the data format the recipe takes (text, prompt_completion, preference).
        make_trainer: ``(config, model, tokenizer, train_dataset, peft_config) -> trainer``.
        overwrite: start the run folder over instead of resuming it.
        sequence_classification: load a scalar-head model (reward models).
    """
    from medmllm.train.core import lora_config

    _require_training_extras()
    dataset = load_dataset(config.data, fmt)  # bad data fails before any weights load
    resolve_base_model(config.model)  # a missing model fails before the run folder is made
    run_dir = prepare_run_dir(config.output_dir, config, overwrite=overwrite)
    write_split(dataset, run_dir, config.adapter)  # + the earlier stages' splits
    seed_everything(config.seed)
    model, tokenizer = load_model_and_tokenizer(
        config, sequence_classification=sequence_classification
    )
    task = "SEQ_CLS" if sequence_classification else "CAUSAL_LM"
    lora = config.finetune != "full"
    # a chained LoRA stage already holds a trainable adapter (see load_model_and_tokenizer)
    peft_config = lora_config(config.lora, task) if lora and not config.adapter else None
    train_ds = to_hf_dataset(dataset, chat=config.chat)
    trainer = make_trainer(config, model, tokenizer, train_ds, peft_config)
    attach_callbacks(trainer, config)
    started = time.perf_counter()
    output = train_resumable(trainer, config)
    elapsed = time.perf_counter() - started
    final = run_dir / (FINAL_ADAPTER if lora else FINAL_MODEL)
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    from medmllm.train.export import write_base_record

    write_base_record(final, config.model)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {
        "format": fmt,
        "output": str(final),
        "finetune": config.finetune,
        "global_step": trainer.state.global_step,
        "final_loss": losses[-1] if losses else None,
        "losses": losses,
        "train_rows": len(dataset.rows),
        "data_source": dataset.source,
        "num_input_tokens_seen": trainer.state.num_input_tokens_seen,
        "train_runtime_s": round(elapsed, 2),
        "metrics": output.metrics,
        "config_hash": read_run(run_dir).get("config_hash"),
    }
    _atomic_write_json(run_dir / RESULT_FILE, result)
    return result


def _require_training_extras() -> None:
    import importlib.util

    from medmllm.errors import MissingDependencyError

    missing = [m for m in ("trl", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"training needs {' and '.join(missing)}, which is not installed",
            hint="pip install 'medmllm[train]'",
        )


def read_result(run_dir: str | Path) -> dict[str, Any]:
    """The ``result.json`` of a finished run."""
    return json.loads((Path(run_dir) / RESULT_FILE).read_text(encoding="utf-8"))
