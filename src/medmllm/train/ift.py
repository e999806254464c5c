"""Instruction tuning on broad question → answer data (e.g. MedQuAD), over TRL's ``SFTTrainer``.

Same machinery as :mod:`medmllm.train.sft` (packed, loss on the answer); a separate stage so that
the pipeline cpt → ift → sft can be configured and measured stage by stage.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from medmllm.train.data import DataConfig
from medmllm.train.recipe import run_recipe
from medmllm.train.sft import SFTRunConfig, sft_trainer


class IFTRunConfig(SFTRunConfig):
    """Instruction-tuning settings; data defaults to MedQuAD question → answer."""

    data: DataConfig = Field(
        default_factory=lambda: DataConfig(builder="medquad_ift"),
        description="Instruction rows (prompt/completion).",
    )


def train(config: IFTRunConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Instruction-tune; returns the run summary (``result.json``)."""
    return run_recipe(config, "prompt_completion", sft_trainer, overwrite=overwrite)
