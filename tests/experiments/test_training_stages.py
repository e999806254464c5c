"""Experiment 3 (training stages): presets build; the whole flow runs on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.experiments import training_stages as ts
from tests.train.conftest import build_tiny_model


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_preset_configs_build(preset: str, tmp_path: Path) -> None:
    from medmllm.train.core import training_arguments

    settings = ts.PRESETS[preset]
    for recipe in ("cpt", "ift", "sft", "dpo"):
        config = ts._recipe_config(recipe, settings, tmp_path / recipe, None)
        assert config.max_steps == settings.steps[recipe]
        if preset == "cpu":  # bf16 on the gpu preset needs a GPU to build TrainingArguments
            training_arguments(config)
    assert set(settings.stages) <= set(ts.PIPELINES)


def test_unknown_option_names_it(tmp_path: Path) -> None:
    from medmllm.errors import ConfigError

    with pytest.raises(ConfigError, match="eval_limt"):
        ts.run("cpu", tmp_path, eval_limt=3)


@pytest.mark.slow
def test_flow_on_tiny_model(tmp_path: Path, shared_data: Path) -> None:
    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "exp"
    result = ts.run(
        "cpu",
        out,
        model=str(model),
        steps={"cpt": 1, "ift": 1, "sft": 1, "dpo": 1},
        max_length=64,
        data_limit=8,
        eval_limit=4,
        mts_limit=2,
        mts_max_tokens=4,
        stages=["base", "sft", "cpt+ift+sft+dpo"],
    )
    assert (out / "table.md").read_text().count("\n") == 5
    assert (out / "stages.png").stat().st_size > 1000
    saved = json.loads((out / "results.json").read_text())
    cell = saved["table"]["sft"]["medmcqa"]
    assert cell["n"] == 4 and cell["majority"] is not None and len(cell["ci"]) == 2
    mts = saved["table"]["base"]["mts_dialog"]
    assert set(mts) == {"rouge_l", "sacrebleu", "meteor"}
    # no "n/a" column; METEOR only without WordNet (make setup installs it: medmllm.eval.wordnet)
    from medmllm.eval.metrics import wordnet_available

    scored = set(mts) if wordnet_available() else set(mts) - {"meteor"}
    assert all(mts[m]["value"] is not None for m in scored), mts
    assert [r["run"] for r in result["training"]["cpt+ift+sft+dpo"]] == [
        "cpt",
        "cpt+ift",
        "cpt+ift+sft",
        "cpt+ift+sft+dpo",
    ]
    # held-apart MCQA rows are exactly those no SFT split trained on
    split = json.loads((out / "runs" / "sft" / "split.json").read_text())
    held = {
        json.loads(x)["id"] for x in (out / "heldout" / "medmcqa.jsonl").read_text().splitlines()
    }
    assert not {k.split(":", 1)[1] for k in split["train"]} & held
