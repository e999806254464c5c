"""Shared trainer core: the base run config, run folders, resume, seeding, progress, YAML loading.

Every training recipe (text stages in ``train/cpt.py`` … ``rlaif.py``, the multimodal stages in
``train/mllm.py``) builds on these functions instead of repeating them. Nothing here imports TRL,
and transformers / peft are imported inside the functions that need them, so loading and
validating a config stays fast (a typo fails before torch is imported).

Example:
    >>> from medmllm.train.core import TrainConfig, prepare_run_dir, training_arguments
    >>> cfg = TrainConfig(output_dir="runs/x", max_steps=10)
    >>> run_dir = prepare_run_dir(cfg.output_dir, cfg)  # doctest: +SKIP
    >>> args = training_arguments(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medmllm.errors import ConfigError, MissingDependencyError, RunMismatchError
from medmllm.provenance import config_hash, environment
from medmllm.validation import validation_message

if TYPE_CHECKING:
    from transformers import TrainerCallback

RUN_FILE = "run.json"
CHECKPOINT_FILE = "medmllm_checkpoint.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# Keys that may change between a run and its resumption without changing what is trained.
# errno values of a failed write (disk full, quota, read-only, permission, I/O).
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO})
RESUME_SAFE_KEYS = frozenset({"output_dir", "logging_steps", "progress"})

C = TypeVar("C", bound=BaseModel)


class LoraOptions(BaseModel):
    """LoRA adapter settings (peft ``LoraConfig``)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="Rank of the low-rank update matrices.")
    alpha: int = Field(32, ge=1, description="Scaling numerator: the update is scaled by alpha/r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names that get adapters, or 'all-linear' (every linear but the head).",
    )
    modules_to_save: list[str] | None = Field(
        None, description="Modules trained in full and saved beside the adapter (e.g. lm_head)."
    )


class TrainConfig(BaseModel):
    """Settings every training run has, whatever the recipe (recipes subclass this).

    Field values map 1:1 onto ``transformers.TrainingArguments`` through
    :func:`training_arguments`.
    """

    model_config = ConfigDict(extra="forbid")

    output_dir: Path = Field(
        Path("runs/train"),
        description="Run folder: run.json, checkpoint-N/ folders and the final adapter/model.",
    )
    seed: int = Field(0, description="Seed for Python, numpy, torch and the data order.")
    max_steps: int = Field(100, ge=1, description="Optimizer steps to train for.")
    save_steps: int = Field(50, ge=1, description="Write a resumable checkpoint every N steps.")
    save_total_limit: int = Field(
        2, ge=1, description="Checkpoints kept; older ones are deleted after a new one is complete."
    )
    logging_steps: int = Field(1, ge=1, description="Log loss and speed every N steps.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field(
        "linear", description="transformers scheduler name: linear, cosine, constant, …"
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    batch_size: int = Field(1, ge=1, description="Examples per device per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Forward passes accumulated per optimizer step.")
    finetune: Literal["lora", "full", "qlora"] = Field(
        "lora",
        description="lora (adapters, default), full (all weights) or qlora (4-bit base + LoRA; "
        "needs a CUDA GPU and bitsandbytes).",
    )
    lora: LoraOptions = Field(
        default_factory=LoraOptions, description="LoRA settings (finetune lora/qlora)."
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Training precision: fp32 (CPU), bf16 or fp16 (mixed, GPU)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto uses the GPU when there is one (or what accelerate launch set)."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, slower)."
    )
    progress: bool = Field(True, description="Show a progress bar with loss and samples/s.")


# -- config files ------------------------------------------------------------------------------
def _format_validation_error(exc: ValidationError, source: str) -> str:
    return f"invalid config {source}: " + validation_message(exc, show_input=True)


def validate_config(cls: type[C], raw: dict[str, Any], source: str = "<config>") -> C:
    """Validate a mapping as ``cls``; errors name the key, the value and ``source``."""
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            _format_validation_error(exc, source),
            hint=f"fix that key in {source}; allowed keys: {', '.join(cls.model_fields)}",
        ) from None


def load_config(path: str | Path, cls: type[C], overrides: dict[str, Any] | None = None) -> C:
    """Load a YAML config file as ``cls`` (a :class:`TrainConfig` subclass or any pydantic model).

    Args:
        path: the YAML file (a mapping at the top level).
        cls: the pydantic model to validate against (``extra="forbid"`` catches typos).
        overrides: values that replace the file's (CLI flags); ``None`` values are ignored.

    Raises:
        ConfigError: missing/unreadable file, not a mapping, an unknown key or a wrong type —
            the message names the key and the file.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"config file not found: {source}", hint="check the --config path")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source} must hold a mapping of keys, got {type(raw).__name__}",
            hint="write one 'key: value' per line",
        )
    return validate_config(cls, _merge(raw, overrides or {}), str(source))


def _merge(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``raw``: nested mappings merge key by key; None is skipped."""
    out = dict(raw)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# -- run folders -------------------------------------------------------------------------------
def _atomic_write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _comparable(config: BaseModel | dict[str, Any]) -> dict[str, Any]:
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    return {k: v for k, v in data.items() if k not in RESUME_SAFE_KEYS}


def _diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys: list[str] = []
        for key in sorted(set(old) | set(new)):
            keys += _diff_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return keys
    return [] if old == new else [prefix.rstrip(".")]


def prepare_run_dir(
    out_dir: str | Path, config: BaseModel | dict[str, Any], *, overwrite: bool = False
) -> Path:
    """Create (or reopen for resuming) a run folder and record the run in ``run.json``.

    ``run.json`` holds the config, its :func:`~medmllm.provenance.config_hash` and the
    :func:`~medmllm.provenance.environment` (versions, commit, load). Reopening a folder made by
    the same config resumes it; a different config is refused, naming the keys that differ
    (keys in :data:`RESUME_SAFE_KEYS` may change).

    Args:
        out_dir: the run folder.
        config: the run's config (a pydantic model or a JSON-able mapping).
        overwrite: delete an existing folder first instead of resuming it.

    Raises:
        RunMismatchError: the folder holds a run of a different config.
    """
    out = Path(out_dir)
    run_file = out / RUN_FILE
    current = _comparable(config)
    digest = config_hash(current)
    if overwrite and out.exists():
        shutil.rmtree(out)
    if run_file.is_file():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunMismatchError(
                f"{run_file} is unreadable ({exc}); cannot tell which config made this run",
                hint="pass --overwrite to start over, or choose another --out folder",
            ) from None
        if previous.get("config_hash") != digest:
            differ = _diff_keys(previous.get("config", {}), current) or ["(unknown)"]
            raise RunMismatchError(
                f"{out} was made by a different config; keys that differ: {', '.join(differ)}",
                hint="rerun with the same config to resume, pass --overwrite to start over, "
                "or choose another --out folder",
            )
        previous.setdefault("resumed", []).append(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **_env_short()}
        )
        _atomic_write_json(run_file, previous)
        return out
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_json(
        run_file,
        {
            "config": current,
            "config_hash": digest,
            "environment": environment(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    return out


def _env_short() -> dict[str, Any]:
    env = environment()
    return {"git_commit": env.get("git_commit"), "load_avg": env.get("load_avg")}


def read_run(out_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a run folder (``{}`` when there is none)."""
    path = Path(out_dir) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _checkpoint_complete(folder: Path) -> bool:
    # transformers writes trainer_state.json after weights, optimizer and RNG states: a folder
    # without a readable one was interrupted mid-write (killed, disk full) and is not resumable.
    state = folder / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return True


def checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete ``checkpoint-N`` folders of a run, oldest first."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    found = []
    for child in out.iterdir():
        match = _CHECKPOINT_RE.match(child.name)
        if match and child.is_dir() and _checkpoint_complete(child):
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def last_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run (incomplete, half-written ones are skipped)."""
    found = checkpoints(out_dir)
    return found[-1] if found else None


def remove_incomplete_checkpoints(out_dir: str | Path) -> list[Path]:
    """Delete half-written ``checkpoint-N`` folders (after a crash or a failed write)."""
    out = Path(out_dir)
    removed = []
    if out.is_dir():
        for child in out.iterdir():
            is_ckpt = _CHECKPOINT_RE.match(child.name) and child.is_dir()
            if is_ckpt and not _checkpoint_complete(child):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
    return removed


# -- seeding and devices -----------------------------------------------------------------------
def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch (all devices); ``deterministic`` also asks torch for
    deterministic kernels (slower on GPU)."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a core dependency
        pass
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(config: TrainConfig) -> str:
    """``cpu`` or ``cuda`` for a config; errors clearly where the config asks for what is absent.

    Raises:
        ConfigError: ``device: cuda``, ``precision: fp16`` or ``finetune: qlora`` without a GPU.
        MissingDependencyError: ``finetune: qlora`` without bitsandbytes.
    """
    import torch

    has_cuda = torch.cuda.is_available()
    device = "cuda" if config.device == "auto" and has_cuda else config.device
    device = "cpu" if device == "auto" else device
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            "device: cuda was asked for but no CUDA GPU is visible",
            hint="set device: auto or cpu",
        )
    if config.precision == "fp16" and device != "cuda":
        raise ConfigError(
            "precision: fp16 needs a CUDA GPU (mixed precision with a loss scaler)",
            hint="use precision: fp32 (or bf16) on a CPU",
        )
    if config.finetune == "qlora":
        if device != "cuda":
            raise ConfigError(
                "finetune: qlora needs a CUDA GPU (bitsandbytes 4-bit kernels)",
                hint="use finetune: lora on a CPU",
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "finetune: qlora needs bitsandbytes, which is not installed",
                hint="pip install bitsandbytes (CUDA), or use finetune: lora",
            ) from None
    return device


def lora_config(options: LoraOptions, task_type: str = "CAUSAL_LM") -> Any:
    """A peft ``LoraConfig`` from :class:`LoraOptions`."""
    from peft import LoraConfig

    return LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        modules_to_save=options.modules_to_save,
        task_type=task_type,
    )


# -- transformers glue -------------------------------------------------------------------------
def training_arguments(config: TrainConfig, *, cls: type[Any] | None = None, **extra: Any) -> Any:
    """``TrainingArguments`` (or a subclass such as a TRL config, via ``cls``) from a config.

    Checkpoints keep optimizer, scheduler and RNG states so a resumed run continues exactly;
    logging goes to our progress bar and ``run.json``, not to external trackers.

    Args:
        config: the run config.
        cls: ``TrainingArguments`` subclass to build (default ``TrainingArguments``).
        **extra: recipe-specific arguments of ``cls`` (e.g. ``max_length``), applied last.
    """
    if cls is None:
        from transformers import TrainingArguments

        cls = TrainingArguments
    device = resolve_device(config)
    kwargs: dict[str, Any] = {
        "output_dir": str(config.output_dir),
        "seed": config.seed,
        "data_seed": config.seed,
        "max_steps": config.max_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "save_only_model": False,
        "logging_steps": config.logging_steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "bf16": config.precision == "bf16",
        "fp16": config.precision == "fp16",
        "use_cpu": device == "cpu",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
    }
    # transformers 5 renamed gradient_checkpointing (the old name warns); older ones lack the new.
    fields = getattr(cls, "__dataclass_fields__", {})
    ckpt_key = "activation_checkpointing" if "activation_checkpointing" in fields else None
    kwargs[ckpt_key or "gradient_checkpointing"] = config.gradient_checkpointing
    kwargs.update(extra)
    return cls(**kwargs)


def _callback_classes() -> tuple[type, type]:
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """A rich progress bar: step, loss, samples/s; a one-line summary at the end."""

        def __init__(self) -> None:
            self._progress: Any = None
            self._task: Any = None
            self._start = 0.0
            self._start_step = 0
            self._loss: float | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._start = time.perf_counter()
            self._start_step = state.global_step
            self._progress = Progress(
                TextColumn("[bold]train[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "train", total=state.max_steps, completed=state.global_step, info=""
            )

        def _samples_per_s(self, args: Any, state: Any) -> float:
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
            return (state.global_step - self._start_step) * per_step * args.world_size / elapsed

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self._progress is not None:
                loss = f"loss {self._loss:.4f} · " if self._loss is not None else ""
                info = f"{loss}{self._samples_per_s(args, state):.2f} samples/s"
                self._progress.update(self._task, completed=state.global_step, info=info)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if logs and "loss" in logs:
                self._loss = float(logs["loss"])

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self._progress is None:
                return
            self._progress.stop()
            rate = self._samples_per_s(args, state)
            loss = f", last loss {self._loss:.4f}" if self._loss is not None else ""
            self._progress.console.print(
                f"trained {state.global_step}/{state.max_steps} steps{loss}, {rate:.2f} samples/s"
            )
            self._progress = None

    class CheckpointStampCallback(TrainerCallback):
        """Writes seed, versions and the config hash into every checkpoint folder."""

        def __init__(self, run: dict[str, Any]) -> None:
            self._run = run

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                _atomic_write_json(
                    folder / CHECKPOINT_FILE,
                    {
                        "step": state.global_step,
                        "seed": args.seed,
                        "config_hash": self._run.get("config_hash"),
                        "environment": environment(),
                    },
                )

    return ProgressCallback, CheckpointStampCallback


def progress_callback() -> TrainerCallback:
    """A ``TrainerCallback`` showing a rich progress bar with loss and samples/s."""
    return _callback_classes()[0]()


def checkpoint_stamp_callback(out_dir: str | Path) -> TrainerCallback:
    """A ``TrainerCallback`` writing seed, versions and config hash into each checkpoint."""
    return _callback_classes()[1](read_run(out_dir))


def attach_callbacks(trainer: Any, config: TrainConfig) -> None:
    """Replace transformers' tqdm/printer callbacks by ours (progress bar, checkpoint stamps)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if config.progress:
        trainer.add_callback(progress_callback())
    trainer.add_callback(checkpoint_stamp_callback(config.output_dir))


def train_resumable(trainer: Any, config: TrainConfig) -> Any:
    """Run ``trainer.train()``, resuming from the newest complete checkpoint of the run folder.

    Half-written checkpoints (a killed run) are removed first. A failed checkpoint write (disk
    full) removes the partial folder, keeps every earlier checkpoint and raises
    :class:`CheckpointWriteError`.
    """
    from medmllm.errors import CheckpointWriteError

    out = Path(config.output_dir)
    remove_incomplete_checkpoints(out)
    resume = last_checkpoint(out)
    try:
        return trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        remove_incomplete_checkpoints(out)
        kept = last_checkpoint(out)
        raise CheckpointWriteError(
            f"writing a checkpoint in {out} failed ({exc.strerror or exc}); "
            f"the last complete checkpoint is {kept.name if kept else 'none'}",
            hint="free disk space (or fix permissions) and rerun the same command to resume",
        ) from None
