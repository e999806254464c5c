"""The ``transformers.Trainer`` behind :func:`medmllm.train.mllm.train_mllm`.

Checkpoints hold only the trainable weights (aligner, LoRA, a trainable encoder) as safetensors,
next to the optimizer, scheduler and RNG states the Trainer writes itself, so resuming after a
``kill -9`` continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer, TrainerCallback

if TYPE_CHECKING:
    from medmllm.models.mllm import MedMLLM
    from medmllm.train.mllm import Example, MLLMCollator, MLLMTrainConfig

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

        out = Path(output_dir or self.args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{TRAINABLE_FILE}.tmp"
        save_file(trainable_state(self.model), str(tmp))
        os.replace(tmp, out / TRAINABLE_FILE)

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: torch.nn.Module | None = None
    ) -> None:
        from safetensors.torch import load_file

        from medmllm.errors import CheckpointMismatchError

        target = model or self.model
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
