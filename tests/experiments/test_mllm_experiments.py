"""Experiments 1 and 2: every grid config (cpu and gpu presets) validates; a tiny cpu run writes
its table, plot and JSON with the caveat, CIs, blind control and trainable-parameter counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.experiments import EXPERIMENTS, alignment, vision_encoders
from medmllm.models.mllm import MLLMConfig
from medmllm.train.mllm import MLLMTrainConfig


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_grids_validate(preset: str, tmp_path: Path) -> None:
    train = tmp_path / "t.jsonl"
    cells = list(vision_encoders.grid(preset, train).values())  # type: ignore[arg-type]
    for task in ("vqa", "findings"):
        cells += list(alignment.grid(preset, train, task, 0).values())  # type: ignore[arg-type]
    for cell in cells:
        cfg = MLLMTrainConfig.model_validate({**cell, "output_dir": str(tmp_path / "r")})
        assert isinstance(cfg.model, MLLMConfig)
        if preset == "gpu":
            assert cfg.model.encoder.model_id and cfg.model.llm.model_id
        else:
            assert cfg.model.llm.tiny and cfg.model.encoder.image_size <= 112
    assert {"vision-encoders", "alignment"} <= set(EXPERIMENTS.names())


@pytest.mark.slow
def test_tiny_vision_encoder_run_writes_outputs(shared_data: Path, tmp_path: Path) -> None:
    result = vision_encoders.run("cpu", tmp_path, encoders=["mobilenet"], max_steps=2, limit=6)
    for name in ("results.md", "results.json", "results.png"):
        assert (tmp_path / name).is_file()
    assert "measure the machinery" in (tmp_path / "results.md").read_text()
    saved = json.loads((tmp_path / "results.json").read_text())
    cell = next(iter(saved["cells"].values()))
    assert cell["eval"]["blind_control"]["image_gain"]
    assert cell["train"]["model"]["trainable_parameters"] > 0
    assert saved["environment"] and saved["config_hash"] == result["config_hash"]
