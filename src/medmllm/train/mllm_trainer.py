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
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

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

    def _save(self, output_dir: str | None = None, state_dict: dict[str, Any] | None = None) -> None:
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
        missing, unexpected = target.load_state_dict(state, strict=False)
        wanted = {n for n, p in target.named_parameters() if p.requires_grad}
        if unexpected or wanted - set(state):
            raise CheckpointMismatchError(
                f"checkpoint {resume_from_checkpoint} does not match this model "
                f"(unexpected {list(unexpected)[:3]}, missing {sorted(wanted - set(state))[:3]})",
                hint="resume with the same config, or start a new output_dir",
            )


class ProgressMeter(TrainerCallback):
    """Rich progress bar with loss and images/s; remembers the losses it saw."""

    def __init__(self, batch_size: int, show: bool) -> None:
        self.batch_size = batch_size
        self.show = show
        self.losses: list[float] = []
        self.last_loss: float | None = None
        self._t0 = 0.0
        self._steps = 0
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t0 = time.perf_counter()
        self._start_step = state.global_step
        if self.show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]train[/]"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "train", total=state.max_steps, completed=state.global_step, info=""
            )

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
            self.losses.append(self.last_loss)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._steps = state.global_step - self._start_step
        if self._progress is not None:
            loss = f"loss {self.last_loss:.3f}" if self.last_loss is not None else ""
            self._progress.update(
                self._task,
                completed=state.global_step,
                info=f"{loss} · {self.images_per_s():.1f} img/s",
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def images_per_s(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return self._steps * self.batch_size / elapsed if elapsed > 0 else 0.0


def build_trainer(
    model: MedMLLM,
    cfg: MLLMTrainConfig,
    examples: list[Example],
    collator: MLLMCollator,
    checkpoint_dir: Path,
) -> tuple[MLLMTrainer, ProgressMeter]:
    """Trainer + progress meter for one stage."""
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        logging_steps=1,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        label_names=["labels"],
    )
    meter = ProgressMeter(cfg.batch_size, cfg.progress)
    trainer = MLLMTrainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(examples),
        data_collator=collator,
        callbacks=[meter],
    )
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the loss
    return trainer, meter
