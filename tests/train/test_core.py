"""The shared trainer core: configs, run folders, resume, checkpoint stamps, write failures."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from medmllm.errors import CheckpointWriteError, ConfigError, RunMismatchError
from medmllm.train import core
from medmllm.train.core import TrainConfig


def test_load_config_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("max_steps: 3\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError) as err:
        core.load_config(path, TrainConfig)
    assert "learning_rat" in err.value.message and str(path) in err.value.message


def test_load_config_wrong_type_names_key_value_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("max_steps: many\nlora:\n  r: 8\n")
    with pytest.raises(ConfigError) as err:
        core.load_config(path, TrainConfig)
    assert "'max_steps'" in err.value.message and "many" in err.value.message
    path.write_text("lora:\n  rank: 8\n")
    with pytest.raises(ConfigError, match=r"lora\.rank"):
        core.load_config(path, TrainConfig)


def test_load_config_not_a_mapping_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        core.load_config(path, TrainConfig)
    with pytest.raises(ConfigError, match="not found"):
        core.load_config(tmp_path / "nope.yaml", TrainConfig)


def test_load_config_overrides_skip_none(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("max_steps: 3\nseed: 7\n")
    cfg = core.load_config(path, TrainConfig, {"max_steps": 5, "seed": None})
    assert cfg.max_steps == 5 and cfg.seed == 7


def test_prepare_run_dir_records_and_refuses_other_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = TrainConfig(output_dir=out, max_steps=4)
    core.prepare_run_dir(out, cfg)
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["max_steps"] == 4
    assert len(run["config_hash"]) == 16 and "versions" in run["environment"]
    # same config (even from another output_dir spelling / logging) resumes
    core.prepare_run_dir(out, cfg.model_copy(update={"logging_steps": 5}))
    assert len(core.read_run(out)["resumed"]) == 1
    other = cfg.model_copy(update={"learning_rate": 1e-3, "lora": core.LoraOptions(r=4)})
    with pytest.raises(RunMismatchError) as err:
        core.prepare_run_dir(out, other)
    assert "learning_rate" in err.value.message and "lora.r" in err.value.message
    assert "max_steps" not in err.value.message
    core.prepare_run_dir(out, other, overwrite=True)
    assert core.read_run(out)["config"]["learning_rate"] == 1e-3


def test_last_checkpoint_skips_incomplete(tmp_path: Path) -> None:
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert core.last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert core.remove_incomplete_checkpoints(tmp_path) == [tmp_path / "checkpoint-12"]
    assert core.last_checkpoint(tmp_path / "missing") is None


def test_training_arguments_and_device_checks(tmp_path: Path) -> None:
    cfg = TrainConfig(output_dir=tmp_path, max_steps=7, save_steps=3, batch_size=2, grad_accum=4)
    args = core.training_arguments(cfg, max_grad_norm=0.5)
    assert (args.max_steps, args.save_steps, args.per_device_train_batch_size) == (7, 3, 2)
    assert args.gradient_accumulation_steps == 4 and args.max_grad_norm == 0.5
    assert not args.save_only_model and args.report_to == []
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="qlora"):
            core.resolve_device(cfg.model_copy(update={"finetune": "qlora"}))
        with pytest.raises(ConfigError, match="fp16"):
            core.resolve_device(cfg.model_copy(update={"precision": "fp16"}))
        with pytest.raises(ConfigError, match="cuda"):
            core.resolve_device(cfg.model_copy(update={"device": "cuda"}))
        assert core.resolve_device(cfg) == "cpu"


def test_lora_config() -> None:
    lc = core.lora_config(core.LoraOptions(r=4, alpha=8, target_modules="all-linear"))
    assert lc.r == 4 and lc.lora_alpha == 8 and lc.target_modules == "all-linear"


def _trainer(model_dir: Path, cfg: TrainConfig, stop_at: int | None = None):  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback

    core.seed_everything(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    rows = [
        {"input_ids": ids, "labels": ids}
        for ids in torch.randint(5, 40, (32, 12), generator=g).tolist()
    ]
    trainer = Trainer(model=model, args=core.training_arguments(cfg), train_dataset=rows)
    core.attach_callbacks(trainer, cfg)

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if stop_at is not None and state.global_step == stop_at:
                raise KeyboardInterrupt

    trainer.add_callback(Crash())
    return trainer


def test_resume_reaches_same_loss_and_stamps_checkpoints(tiny_model: Path, tmp_path: Path) -> None:
    def cfg(out: Path) -> TrainConfig:
        return TrainConfig(
            output_dir=out,
            max_steps=6,
            save_steps=2,
            finetune="full",
            progress=False,
            learning_rate=1e-3,
        )

    straight = cfg(tmp_path / "a")
    core.prepare_run_dir(straight.output_dir, straight)
    full = core.train_resumable(_trainer(tiny_model, straight), straight)

    broken = cfg(tmp_path / "b")
    core.prepare_run_dir(broken.output_dir, broken)
    with pytest.raises(KeyboardInterrupt):
        core.train_resumable(_trainer(tiny_model, broken, stop_at=5), broken)
    assert core.last_checkpoint(broken.output_dir).name == "checkpoint-4"
    stamp = json.loads((broken.output_dir / "checkpoint-4" / core.CHECKPOINT_FILE).read_text())
    assert stamp["config_hash"] == core.read_run(broken.output_dir)["config_hash"]
    assert stamp["seed"] == 0 and "torch" in stamp["environment"]["versions"]
    resumed = core.train_resumable(_trainer(tiny_model, broken), broken)
    # the resumed run trains only steps 5-6; compare the final logged losses
    last = [h["loss"] for h in _history(straight.output_dir) if "loss" in h][-1]
    last_b = [h["loss"] for h in _history(broken.output_dir) if "loss" in h][-1]
    assert last == pytest.approx(last_b, rel=1e-5)
    assert full.global_step == resumed.global_step == 6


def _history(out: Path) -> list[dict]:
    state = json.loads((core.last_checkpoint(out) / "trainer_state.json").read_text())
    return state["log_history"]


def test_checkpoint_write_failure_keeps_previous(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import Trainer

    cfg = TrainConfig(
        output_dir=tmp_path / "c", max_steps=4, save_steps=2, finetune="full", progress=False
    )
    core.prepare_run_dir(cfg.output_dir, cfg)
    original = Trainer._save_rng_state

    def failing(self, output_dir):  # type: ignore[no-untyped-def]
        if str(output_dir).endswith("checkpoint-4"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", failing)
    with pytest.raises(CheckpointWriteError, match="checkpoint-2") as err:
        core.train_resumable(_trainer(tiny_model, cfg), cfg)
    assert "No space left" in err.value.message
    assert not (cfg.output_dir / "checkpoint-4").exists()
    assert core.last_checkpoint(cfg.output_dir) == cfg.output_dir / "checkpoint-2"
    assert (cfg.output_dir / "checkpoint-2" / "model.safetensors").is_file()


def test_nested_overrides_merge(tmp_path: Path) -> None:
    from pydantic import BaseModel, ConfigDict

    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")
        a: int = 1
        b: int = 2

    class Outer(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inner: Inner = Inner()

    path = tmp_path / "c.yaml"
    path.write_text("inner: {a: 5, b: 6}\n")
    assert core.load_config(path, Outer, {"inner": {"b": 9}}).inner.model_dump() == {"a": 5, "b": 9}
