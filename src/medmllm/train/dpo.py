"""Direct preference optimisation on (prompt, chosen, rejected) pairs, over TRL's ``DPOTrainer``.

With LoRA the reference model is the base with the adapter switched off (TRL does this when
given a ``peft_config``), so no second copy of the weights is held in memory.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from medmllm.errors import InvalidRequestError
from medmllm.train.core import training_arguments
from medmllm.train.data import DataConfig
from medmllm.train.recipe import RecipeConfig, run_recipe


class DPORunConfig(RecipeConfig):
    """DPO settings; data defaults to constructed MCQA pairs (correct vs distractor)."""

    data: DataConfig = Field(
        default_factory=lambda: DataConfig(builder="mcqa_pairs"),
        description="Preference rows (prompt/chosen/rejected).",
    )
    beta: float = Field(0.1, gt=0, description="DPO temperature: how far from the reference.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate (DPO: lower).")


def dpo_trainer(
    config: DPORunConfig, model: Any, tokenizer: Any, train_ds: Any, peft_config: Any
) -> Any:
    """A TRL ``DPOTrainer`` for ``config``."""
    from trl import DPOConfig, DPOTrainer

    args = training_arguments(config, cls=DPOConfig, max_length=config.max_length, beta=config.beta)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    # TRL drops pairs whose prompt alone fills max_length; none left would fail deep in torch.
    kept: Any = trainer.train_dataset  # a datasets.Dataset here (TRL types it more loosely)
    if len(kept) == 0:
        raise InvalidRequestError(
            f"every one of the {len(train_ds)} preference pairs has a prompt of at least "
            f"max_length={config.max_length} tokens, and TRL drops those",
            hint="raise max_length (MCQA prompts in the chat template take ~100-200 tokens)",
        )
    return trainer


def train(config: DPORunConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Preference-optimise; returns the run summary (``result.json``)."""
    return run_recipe(config, "preference", dpo_trainer, overwrite=overwrite)
