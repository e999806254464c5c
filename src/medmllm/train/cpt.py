"""Continued pre-training on raw medical text (packed), over TRL's ``SFTTrainer``.

Documents are tokenised and packed into ``max_length`` blocks (TRL ``bfd_split``: long documents
are split across blocks, nothing is dropped); the loss is on every token.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from medmllm.train.data import DataConfig
from medmllm.train.recipe import run_recipe
from medmllm.train.sft import SFTRunConfig, sft_trainer


class CPTRunConfig(SFTRunConfig):
    """Continued pre-training settings; data defaults to MedQuAD documents."""

    data: DataConfig = Field(
        default_factory=lambda: DataConfig(builder="medquad_cpt"),
        description="Text rows ({text}).",
    )
    chat: bool = Field(False, description="Raw text: no chat template.")


def train(config: CPTRunConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Continue pre-training; returns the run summary (``result.json``)."""
    return run_recipe(config, "text", sft_trainer, overwrite=overwrite)
