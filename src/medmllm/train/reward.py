"""Reward model on (prompt, chosen, rejected) pairs, over TRL's ``RewardTrainer``.

A scalar-head (sequence classification) copy of the base model learns to score the chosen answer
above the rejected one (Bradley–Terry loss). Its ``adapter``/``model`` folder can rank answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from medmllm.train.core import training_arguments
from medmllm.train.data import DataConfig
from medmllm.train.recipe import RecipeConfig, run_recipe


class RewardRunConfig(RecipeConfig):
    """Reward-model settings; data defaults to constructed MCQA pairs."""

    data: DataConfig = Field(
        default_factory=lambda: DataConfig(builder="mcqa_pairs"),
        description="Preference rows (prompt/chosen/rejected).",
    )


def reward_trainer(
    config: RewardRunConfig, model: Any, tokenizer: Any, train_ds: Any, peft_config: Any
) -> Any:
    """A TRL ``RewardTrainer`` for ``config``."""
    from trl import RewardConfig, RewardTrainer

    args = training_arguments(config, cls=RewardConfig, max_length=config.max_length)
    return RewardTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def train(config: RewardRunConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Train a reward model; returns the run summary (``result.json``)."""
    return run_recipe(
        config, "preference", reward_trainer, overwrite=overwrite, sequence_classification=True
    )
