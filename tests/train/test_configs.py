"""Every shipped training and accelerate config is built by a test (torchtune habit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medmllm.cli.train_text import RECIPES
from medmllm.train.core import load_config, training_arguments
from medmllm.train.data import load_dataset

REPO = Path(__file__).resolve().parents[2]
ALL_TRAIN_CONFIGS = sorted((REPO / "configs" / "train").glob("*.yaml"))
# mllm_*.yaml are the multimodal stages: built by tests/train/test_mllm_train.py
TRAIN_CONFIGS = [p for p in ALL_TRAIN_CONFIGS if not p.stem.startswith("mllm_")]
ACCEL_CONFIGS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))
FORMATS = {
    "cpt": "text",
    "ift": "prompt_completion",
    "sft": "prompt_completion",
    "dpo": "preference",
    "reward": "preference",
    "rlaif": "prompt_completion",
}


def _recipe_class(path: Path) -> tuple[str, type]:
    import importlib

    recipe = path.stem.split("_")[0]
    module, cls, _ = RECIPES[recipe]
    return recipe, getattr(importlib.import_module(module), cls)


def test_every_recipe_has_a_config() -> None:
    assert {p.stem.split("_")[0] for p in TRAIN_CONFIGS} >= set(RECIPES)
    assert {p.stem.split("_")[0] for p in ALL_TRAIN_CONFIGS} <= {*RECIPES, "mllm"}


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.stem)
def test_train_config_builds(path: Path, shared_data: Path, tmp_path: Path) -> None:
    recipe, cls = _recipe_class(path)
    config = load_config(path, cls, {"output_dir": str(tmp_path)})
    data = config.data.model_copy(update={"shared_dir": str(shared_data)})
    assert load_dataset(data, FORMATS[recipe]).rows
    args = training_arguments(config)
    assert args.max_steps == config.max_steps and args.save_steps == config.save_steps


@pytest.mark.parametrize("path", ACCEL_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_parses(path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DistributedType

    config = ClusterConfig.from_yaml_file(str(path))
    assert isinstance(config.distributed_type, DistributedType)
    expected = {
        "cpu": "NO",
        "single_gpu": "NO",
        "multi_gpu_ddp": "MULTI_GPU",
        "deepspeed_zero2": "DEEPSPEED",
        "deepspeed_zero3": "DEEPSPEED",
        "fsdp": "FSDP",
    }[path.stem]
    assert config.distributed_type.value == expected
    if expected == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == int(path.stem[-1])
    if expected == "FSDP":
        from accelerate.utils.constants import FSDP_AUTO_WRAP_POLICY, FSDP_SHARDING_STRATEGY

        assert config.fsdp_config["fsdp_sharding_strategy"] in FSDP_SHARDING_STRATEGY
        assert config.fsdp_config["fsdp_auto_wrap_policy"] in FSDP_AUTO_WRAP_POLICY


def test_accelerate_rejects_unknown_key(tmp_path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    raw = yaml.safe_load((REPO / "configs" / "accelerate" / "cpu.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**raw, "num_procesess": 2}))
    with pytest.raises(ValueError, match="num_procesess"):
        ClusterConfig.from_yaml_file(str(bad))
