"""Experiment 3 (training stages): presets build; the whole flow runs on a tiny model; the MTS
stage never trains on an evaluated dialogue; base and SFT models get the same prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.experiments import mts_dialog
from medmllm.experiments import training_stages as ts
from tests.train.conftest import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_preset_configs_build(preset: str, tmp_path: Path) -> None:
    from medmllm.train.core import training_arguments

    settings = ts.PRESETS[preset]
    for recipe in ("cpt", "ift", "sft", "dpo", ts.MTS_STAGE):
        config = ts._recipe_config(recipe, settings, tmp_path / recipe, None)
        assert config.max_steps == settings.steps[recipe]
        if preset == "cpu":  # bf16 on the gpu preset needs a GPU to build TrainingArguments
            training_arguments(config)
    mts = ts._recipe_config(ts.MTS_STAGE, settings, tmp_path / "m", None)
    assert mts.chat and mts.data.builder == "mts_dialog" and mts.data.split == "train"
    assert mts.max_length == settings.mts_max_length and mts.lora == settings.mts_lora
    assert set(settings.stages) <= set(ts.PIPELINES)


def test_shipped_mts_config_is_the_cpu_stage(tmp_path: Path) -> None:
    """configs/train/sft_mts_dialog.yaml trains what experiment 3's sft_mts stage trains."""
    from medmllm.train.core import load_config
    from medmllm.train.sft import SFTRunConfig

    shipped = load_config(ROOT / "configs/train/sft_mts_dialog.yaml", SFTRunConfig, {})
    stage = ts._recipe_config(ts.MTS_STAGE, ts.PRESETS["cpu"], tmp_path, None)
    fields = ("max_steps", "max_length", "batch_size", "learning_rate", "lora", "chat", "data")
    assert {f: getattr(shipped, f) for f in fields} == {f: getattr(stage, f) for f in fields}


def test_unknown_option_names_it(tmp_path: Path) -> None:
    from medmllm.errors import ConfigError

    with pytest.raises(ConfigError, match="eval_limt"):
        ts.run("cpu", tmp_path, eval_limt=3)
    with pytest.raises(ConfigError, match="sft_mst"):
        ts.run("cpu", tmp_path, stages=["base", "sft_mst"])
    with pytest.raises(ConfigError, match="mts_stages names sft_mts"):
        ts.run("cpu", tmp_path, stages=["base", "sft"], mts_stages=["base", "sft_mts"])


@pytest.mark.parametrize(
    ("setting", "named"), [("mts_split", "KEY=VALUE"), ("eval_limt=3", "eval_limt")]
)
def test_cli_set_errors_in_one_line(setting: str, named: str, tmp_path: Path) -> None:
    """``--set`` overrides reach the experiment's settings check; bad ones exit 2, no trace."""
    import os
    import subprocess
    import sys

    argv = ["experiment", "training-stages", "--set", setting, "-o", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert output.count("error:") == 1 and "fix:" in output and named in output
    assert "Traceback" not in output


def test_parse_sets_reads_yaml_values() -> None:
    from medmllm.cli.experiment import parse_sets

    assert parse_sets(["mts_split=tune", "stages=[base, sft_mts]", "eval_limit=5"]) == {
        "mts_split": "tune",
        "stages": ["base", "sft_mts"],
        "eval_limit": 5,
    }


def _keys(path: Path) -> set[str]:
    return {json.loads(line)["id"] for line in path.read_text().splitlines()}


def test_mts_stage_never_trains_on_an_evaluated_dialogue(shared_data: Path) -> None:
    """Training rows (with their back-translations) vs validation and tune rows: no shared id,
    no shared dialogue. Two training rows repeat a validation dialogue word for word (train
    56 = validation 58, train 284 = validation 4); they are excluded, with their translations."""
    from medmllm.train.data import DataConfig, load_dataset

    preset = ts.PRESETS["cpu"].model_copy(update={"mts_augmented": True})
    train = load_dataset(DataConfig(**ts.mts_data(preset, "train")), "prompt_completion")
    split = train.split
    assert split is not None
    assert split["excluded"] == ["train:284", "train:56"]
    assert len(split["held"]) == 100 and len(split["tune"]) == 120
    assert not set(split["train"]) & (set(split["tune"]) | set(split["excluded"]))
    sources = {str(r["id"]).split(" ")[0] for r in train.rows}  # "train:12 TR=EN-FR-EN" → key
    assert sources == set(split["train"])  # every row, translated or not, is a training row
    translated = [r for r in train.rows if "TR=" in str(r["id"])]
    assert len(translated) == 2 * len(split["train"])  # FR and ES, none of tune/excluded rows

    def words(prompt: str) -> str:
        return " ".join(prompt.split()).lower()

    trained = {words(r["prompt"]) for r in train.rows}
    for other in ("validation", "tune"):
        rows = load_dataset(DataConfig(**ts.mts_data(preset, other)), "prompt_completion").rows
        assert not trained & {words(r["prompt"]) for r in rows}, other


def test_augmented_applies_to_training_rows_only(shared_data: Path) -> None:
    from medmllm.errors import ConfigError
    from medmllm.train.data import DataConfig, load_dataset

    with pytest.raises(ConfigError, match="augmented"):
        load_dataset(
            DataConfig(builder="mts_dialog", split="validation", augmented=True),
            "prompt_completion",
        )


def test_base_and_sft_models_get_the_training_prompt(tmp_path: Path, shared_data: Path) -> None:
    """The harness renders each evaluated row to exactly the user turn the MTS stage trains on
    (dialogue + section header, no extra instruction), for the base model too."""
    from medmllm.eval.prompting import chat_prompt
    from medmllm.eval.task import load_task
    from medmllm.train.data import DataConfig, load_dataset

    task_file = mts_dialog.write_task(tmp_path, "validation", None, 64)
    items, _, _ = load_task(task_file).load_items()
    rows = load_dataset(DataConfig(builder="mts_dialog", split="validation"), "prompt_completion")
    assert len(items) == 100
    task = load_task(task_file)
    for item, row in zip(items, rows.rows, strict=True):
        assert chat_prompt(task, item, [], cot=False) == row["prompt"]
        assert item.answer == row["completion"].strip()


def test_constants_are_chosen_on_training_notes(
    monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    from medmllm.train.data import DataConfig, load_dataset

    monkeypatch.setattr(mts_dialog, "_MAX_CONSTANT_WORDS", 3)  # a quick search
    chosen = mts_dialog.choose_constants()
    train = {r["completion"] for r in mts_dialog._training_notes()}
    assert chosen["constant"] in train
    assert set(chosen["per_section"].values()) <= train
    assert "allergies" in chosen["per_section"]["ALLERGY"].lower()
    held = load_dataset(DataConfig(builder="mts_dialog", split="validation"), "prompt_completion")
    assert len({r["section_header"] for r in held.rows} - set(chosen["per_section"])) == 0


@pytest.mark.slow
def test_flow_on_tiny_model(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mts_dialog, "_MAX_CONSTANT_WORDS", 3)
    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "exp"
    options = {
        "model": str(model),
        "steps": {"cpt": 1, "ift": 1, "sft": 1, "dpo": 1, ts.MTS_STAGE: 1},
        "max_length": 64,
        "mts_max_length": 256,
        "data_limit": 8,
        "eval_limit": 4,
        "mts_limit": 3,
        "mts_max_tokens": 4,
        "stages": ["base", "sft", "cpt+ift+sft+dpo", ts.MTS_STAGE],
        "mts_stages": ["base", "sft", ts.MTS_STAGE],
    }
    result = ts.run("cpu", out, **options)
    assert (out / "table.md").read_text().count("\n") == 2 + 4 + 2  # + the two constants
    assert (out / "stages.png").stat().st_size > 1000
    saved = json.loads((out / "results.json").read_text())
    cell = saved["table"]["sft"]["medmcqa"]
    assert cell["n"] == 4 and cell["majority"] is not None and len(cell["ci"]) == 2
    mts = saved["table"][ts.MTS_STAGE]["mts_dialog"]
    assert {"rouge_l", "sacrebleu", "rouge_l_minus_base", "rouge_l_minus_constant"} <= set(mts)
    assert "rouge_l_minus_constant_per_section" in mts
    assert mts["rouge_l"]["n"] == 3 and mts["rouge_l"]["majority"] is not None
    assert set(saved["mts_baselines"]) == {"constant", "constant per section"}
    assert saved["timing"][ts.MTS_STAGE]["train_cpu_s"] > 0
    # METEOR only without WordNet (make setup installs it: medmllm.eval.wordnet)
    from medmllm.eval.metrics import wordnet_available

    scored = set(ts.GEN_METRICS) if wordnet_available() else set(ts.GEN_METRICS) - {"meteor"}
    assert all(mts[m]["value"] is not None for m in scored), mts
    assert [r["run"] for r in result["training"]["cpt+ift+sft+dpo"]] == [
        "cpt",
        "cpt+ift",
        "cpt+ift+sft",
        "cpt+ift+sft+dpo",
    ]
    # held-apart MCQA rows are exactly those no SFT split trained on
    split = json.loads((out / "runs" / "sft" / "split.json").read_text())
    held = _keys(out / "heldout" / "medmcqa.jsonl")
    assert not {k.split(":", 1)[1] for k in split["train"]} & held
    # the MTS stage's recorded split: the generated validation rows are held apart
    mts_split = json.loads((out / "runs" / ts.MTS_STAGE / "split.json").read_text())
    generated = _keys(out / "heldout" / "mts_dialog_validation.jsonl")
    assert generated <= set(mts_split["held"])
    assert not set(mts_split["train"]) & set(mts_split["excluded"])
    # ... and the harness reads that split: the adapter's evaluation drops nothing of them
    from medmllm.eval.split import read_split

    trained = read_split(out / "runs" / ts.MTS_STAGE / "split.json")
    assert not any(trained.trained(None, i) for i in generated)
    assert trained.trained(None, mts_split["train"][0])
    # a rerun reuses every stage: no training run and no generation is redone
    files = [*out.glob("eval/*/gen/mts.json"), *out.glob("runs/*/result.json")]
    written = {p: p.stat().st_mtime_ns for p in files}
    assert len(files) == 3 + 6  # generations of 3 stages; cpt, cpt+ift, …, sft, sft_mts
    assert "mts_dialog" not in saved["table"]["cpt+ift+sft+dpo"]  # not in mts_stages
    again = ts.run("cpu", out, **options)
    assert again["table"] == result["table"]
    assert {p: p.stat().st_mtime_ns for p in written} == written
