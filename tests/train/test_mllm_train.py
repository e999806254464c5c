"""Two-stage MedMLLM training: every aligner and several encoder families train and generate,
resume after a crash with the same loss, cache frozen features, hold images apart (split.json),
every shipped config loads, and a positive control: trained on bright = yes / dark = no, the model
answers held-apart images from the image (harness image gain > 0, gen and mc mode)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medmllm.errors import ConfigError, DataFormatError, UnknownNameError
from medmllm.models.mllm import MedMLLM, MLLMConfig
from medmllm.train.mllm import (
    DataConfig,
    MLLMTrainConfig,
    load_examples,
    read_examples,
    split_examples,
    train_mllm,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def toy_data(tmp_path: Path) -> Path:
    """Eight synthetic images (bright = 'yes', dark = 'no') and a JSONL of pairs."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        level = 200 if i % 2 else 40
        pixels = np.clip(rng.normal(level, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
        name = f"img{i}.png"
        Image.fromarray(pixels).save(tmp_path / name)
        rows.append({"image": name, "prompt": "Is it bright?", "target": "yes" if i % 2 else "no"})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _cfg(data: Path, out: Path, encoder: str, aligner: str, **kw: object) -> MLLMTrainConfig:
    base = {
        "stage": "align",
        "model": MLLMConfig.tiny(encoder, aligner, size=32).model_dump(),
        "data": {"kind": "jsonl", "path": str(data)},
        "output_dir": str(out),
        "max_steps": 2,
        "save_steps": 1,
        "batch_size": 2,
        "progress": False,
    }
    return MLLMTrainConfig.model_validate({**base, **kw})


CASES = [
    ("vit", "linear", "align"),
    ("resnet", "mlp2x_gelu", "instruct"),
    ("siglip", "qformer", "align"),
    ("clip-vit", "perceiver", "instruct"),
    ("dinov2", "cross_attn", "instruct"),
]


@pytest.mark.parametrize(("encoder", "aligner", "stage"), CASES)
def test_aligners_and_encoders_train_and_generate(
    encoder: str, aligner: str, stage: str, toy_data: Path, tmp_path: Path
) -> None:
    summary = train_mllm(_cfg(toy_data, tmp_path / "run", encoder, aligner, stage=stage))
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    assert summary["images_per_s"] > 0
    info = summary["model"]
    assert 0 < info["trainable_parameters"] < info["llm_parameters"] + info["aligner_parameters"]
    model = MedMLLM.from_pretrained(summary["model_dir"])
    assert isinstance(model.generate_text(toy_data.parent / "img1.png", "Is it bright?", 3), str)


def test_instruct_lora_trains_only_aligner_and_adapters(toy_data: Path, tmp_path: Path) -> None:
    summary = train_mllm(
        _cfg(toy_data, tmp_path / "run", "vit", "mlp2x_gelu", stage="instruct", finetune="lora")
    )
    info = summary["model"]  # after merging, the folder is a plain model
    assert summary["steps"] == 2
    assert (
        MedMLLM.from_pretrained(summary["model_dir"]).describe()["llm_parameters"]
        == info["llm_parameters"]
    )


def test_resume_after_crash_gives_the_same_final_loss(toy_data: Path, tmp_path: Path) -> None:
    import transformers

    full = train_mllm(_cfg(toy_data, tmp_path / "a", "vit", "mlp2x_gelu", max_steps=4))

    class Crash(transformers.TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step == 2:
                raise KeyboardInterrupt  # a hard stop right after checkpoint 2

    cfg = _cfg(toy_data, tmp_path / "b", "vit", "mlp2x_gelu", max_steps=4)
    from medmllm.train import mllm as mllm_trainer

    original = mllm_trainer.build_trainer

    def crashing(*args, **kwargs):  # type: ignore[no-untyped-def]
        trainer, meter = original(*args, **kwargs)
        trainer.add_callback(Crash())
        return trainer, meter

    mllm_trainer.build_trainer = crashing  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            train_mllm(cfg)
    finally:
        mllm_trainer.build_trainer = original  # type: ignore[assignment]
    resumed = train_mllm(cfg)
    assert resumed["resumed_from"] and resumed["resumed_from"].endswith("checkpoint-2")
    assert resumed["final_loss"] == pytest.approx(full["final_loss"], rel=1e-5)


def test_instruct_split_carries_the_align_stage_split(toy_data: Path, tmp_path: Path) -> None:
    align = train_mllm(_cfg(toy_data, tmp_path / "align", "vit", "linear", max_steps=1))
    first = json.loads((tmp_path / "align" / "split.json").read_text())
    assert "earlier" not in first and first["held_images"]  # 2 of the 8 images held apart
    cfg = _cfg(toy_data, tmp_path / "vqa", "vit", "linear", max_steps=1, stage="instruct")
    train_mllm(cfg.model_copy(update={"init_from": align["model_dir"]}))
    second = json.loads((tmp_path / "vqa" / "split.json").read_text())
    assert second["earlier"] == [first]  # evaluation drops what either stage trained on


def test_frozen_features_are_cached_per_encoder_and_preprocessing(toy_data: Path) -> None:
    from medmllm.config import get_settings
    from medmllm.train.mllm import cached_features

    model = MedMLLM.build(MLLMConfig.tiny("vit", "linear", size=32))
    images = [str(p) for p in sorted(toy_data.parent.glob("*.png"))]
    first = cached_features(model, images)
    folder = get_settings().cache_dir("mllm-features", model.encoder.fingerprint())
    assert len(list(folder.glob("*.safetensors"))) >= 8
    again = cached_features(model, images)
    assert all((first[k] == again[k]).all() for k in images)
    model.encoder.processor.image_mean = [0.2, 0.2, 0.2]  # other preprocessing, other key
    assert model.encoder.fingerprint() != folder.name


@pytest.mark.parametrize("path", sorted((REPO / "configs/train").glob("mllm_*.yaml")), ids=str)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = MLLMTrainConfig.from_yaml(path)
    assert cfg.stage in ("align", "instruct")
    if cfg.data.kind == "vqa_rad":  # trained on the prompt `medmllm eval -t vqa_rad` sends
        from medmllm.eval.task import load_task

        assert cfg.data.instruction == load_task("vqa_rad").config.prompt.instruction
    if cfg.model.llm.tiny:  # the CPU configs build in seconds
        model = MedMLLM.build(cfg.model)
        assert model.describe()["visual_tokens"] > 0


def test_bad_configs(tmp_path: Path, toy_data: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: align\nmodel: {encoder: {name: vit}}\nlearning_rat: 1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        MLLMTrainConfig.from_yaml(bad)
    with pytest.raises(UnknownNameError, match="Did you mean"):
        train_mllm(_cfg(toy_data, tmp_path / "r", "vitt", "linear"))
    every_image = DataConfig(kind="jsonl", path=str(toy_data), eval_fraction=0.95)
    with pytest.raises(DataFormatError, match="no training rows left"):
        split_examples(every_image, read_examples(every_image))


def test_vqa_rad_and_covid_notes_examples(shared_data: Path) -> None:
    vqa = load_examples(DataConfig(kind="vqa_rad", limit=5))
    notes = load_examples(DataConfig(kind="covid_cxr_notes", limit=5))
    assert all(Path(e.image).is_file() for e in vqa + notes)
    assert vqa[0].prompt.endswith("?") and notes[0].target


def test_vqa_rad_is_split_by_image_with_eval_ids(shared_data: Path) -> None:
    cfg = DataConfig(kind="vqa_rad")
    rows = read_examples(cfg)
    train, split = split_examples(cfg, rows)
    assert split["by"] == "image" and split["key"] == "file_stem:id"
    assert split["files"] == ["qa.jsonl"]
    assert not set(split["train_images"]) & set(split["held_images"])
    n_images = len({r.image_name for r in rows})
    assert len(split["held_images"]) == round(0.2 * n_images)
    assert (
        len(split["train"]) + len(split["held"])
        == len(rows)
        == len(set(split["train"]) | set(split["held"]))
    )
    assert {ex.key for ex in train} == set(split["train"])
    # the ids are the ones the vqa_rad eval task gives its items ("qa:<qid>")
    from medmllm.eval.task import load_task

    items, _, _ = load_task("vqa_rad").load_items(check_images=False)
    assert {f"qa:{item.id}" for item in items} == set(split["train"]) | set(split["held"])
    assert load_examples(DataConfig(kind="vqa_rad", limit=7)) == train[:7]


# -- positive control ----------------------------------------------------------------------------
# 96 images of varied brightness (low noise, so brightness and not a memorisable noise pattern is
# what tells them apart), "Is the image bright?" → yes / no, trained with the vqa_rad task's answer
# instruction so the harness asks exactly what training taught. Training holds half of the images
# apart (split.json); the harness evaluates those rows only, with its blank-image blind control.
# 40 steps, constant lr 1e-2, full tuning of the tiny LLM (measured: see docs/decisions.md).
N_IMAGES = 96


def _bright_dark_task(instruction: str) -> str:
    import yaml

    task = {
        "name": "bright_dark",
        "description": "bright = yes, dark = no (positive control)",
        "output_type": "vqa",
        "dataset": {"path": "held.jsonl"},
        "fields": {
            "id": "qid",
            "question": "question",
            "answer": "answer",
            "image": "image_name",
            "options": "options",
        },
        # the mc context is the template alone (no instruction appended): it carries it itself
        "prompt": {"template": "{{ question }}\n\n" + instruction, "choices": "text"},
        "answer_type": "yesno",
        "metrics": ["vqa_accuracy"],
    }
    return str(yaml.safe_dump(task))


def train_bright_dark(folder: Path, seed: int = 0, max_steps: int = 40) -> dict[str, Any]:
    """Write the fixture under ``folder``, train on its split, write the held-apart rows and an
    mc task over them; returns what the tests check."""
    from medmllm.eval.task import load_task

    instruction = load_task("vqa_rad").config.prompt.instruction
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_IMAGES):
        bright = i % 2 == 1
        level = rng.uniform(150, 235) if bright else rng.uniform(20, 105)
        pixels = np.clip(rng.normal(level, 5, (32, 32, 3)), 0, 255).astype(np.uint8)
        name = f"img{i:03d}.png"
        Image.fromarray(pixels).save(folder / name)
        rows.append(
            {
                "qid": 100 + i,
                "image_name": name,
                "question": "Is the image bright?",
                "answer": "yes" if bright else "no",
                "answer_type": "CLOSED",
                "options": {"yes": "yes", "no": "no"},
            }
        )
    data = folder / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = MLLMTrainConfig.model_validate(
        {
            "stage": "instruct",
            "finetune": "full",
            "model": MLLMConfig.tiny("vit", "mlp2x_gelu", size=32).model_dump(),
            "data": {
                "kind": "vqa_rad",
                "path": str(data),
                "image_root": str(folder),
                "eval_fraction": 0.5,
                "instruction": instruction,
            },
            "output_dir": str(folder / "run"),
            "max_steps": max_steps,
            "save_steps": max_steps,
            "batch_size": 8,
            "learning_rate": 1e-2,
            "lr_scheduler": "constant",
            "seed": seed,
            "progress": False,
        }
    )
    summary = train_mllm(cfg)
    split = json.loads((folder / "run" / "split.json").read_text())
    held = [r for r in rows if f"qa:{r['qid']}" in set(split["held"])]
    (folder / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    (folder / "task.yaml").write_text(_bright_dark_task(instruction))
    return {
        "folder": folder,
        "rows": rows,
        "summary": summary,
        "split": split,
        "held": held,
        "train_prompt": load_examples(cfg.data)[0].prompt,
    }


@pytest.fixture(scope="module")
def bright_dark_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train_bright_dark(tmp_path_factory.mktemp("bright-dark"))


def test_training_writes_its_image_split(bright_dark_run: dict[str, Any]) -> None:
    split, summary, rows = (
        bright_dark_run["split"],
        bright_dark_run["summary"],
        bright_dark_run["rows"],
    )
    assert (
        split["by"] == "image" and split["key"] == "file_stem:id" and split["files"] == ["qa.jsonl"]
    )
    train_images, held_images = set(split["train_images"]), set(split["held_images"])
    assert not train_images & held_images
    assert train_images | held_images == {r["image_name"] for r in rows}
    assert len(held_images) == N_IMAGES // 2
    by_key = {f"qa:{r['qid']}": r["image_name"] for r in rows}
    assert sorted(split["train"]) == sorted(k for k, im in by_key.items() if im in train_images)
    assert sorted(split["held"]) == sorted(k for k, im in by_key.items() if im in held_images)
    assert summary["examples"] == len(split["train"])  # trained on exactly the train side
    assert summary["held_apart"] == {
        "rows": len(split["held"]),
        "images": len(held_images),
        "split": str(bright_dark_run["folder"] / "run" / "split.json"),
    }


def evaluate_bright_dark(run: dict[str, Any], mode: str) -> dict[str, Any]:
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.eval.task import Task, load_task
    from medmllm.models.backends.mllm import MLLMGenerator

    folder = run["folder"]
    if mode == "gen":  # the vqa_rad task, as the experiments evaluate
        task = load_task("vqa_rad")
        task.data_override = [folder / "held.jsonl"]
        task.image_root_override = folder
    else:  # options per row: yes / no scored by likelihood, with the image
        task = Task.from_file(folder / "task.yaml")
    gen = MLLMGenerator(run["summary"]["model_dir"])
    options = EvalOptions(mode=mode, seed=0)  # type: ignore[arg-type]
    results = run_eval([task], gen, options, cache_path=":memory:", report=False)
    return results["tasks"][task.name]


@pytest.mark.parametrize("mode", ["gen", "mc"])
def test_positive_control_image_gain(bright_dark_run: dict[str, Any], mode: str) -> None:
    """The harness sees the image: held-apart accuracy beats the majority answer and the paired
    gain over the blank-image blind control has a 95% CI above 0 (mc mode scores yes / no with
    the image; it used to drop it, and VQA tasks were refused in mc mode)."""
    section = evaluate_bright_dark(bright_dark_run, mode)
    assert section["n"] == len(bright_dark_run["held"]) == len(bright_dark_run["split"]["held"])
    closed = section["metrics"]["vqa_closed_accuracy"]
    majority = section["majority_baseline"]["vqa_closed_accuracy"]["value"]
    gain = section["blind_control"]["image_gain"]["vqa_closed_accuracy"]
    assert closed["value"] > majority, (closed, majority, section["prediction_distribution"])
    assert gain["ci"][0] > 0, (gain, section["blind_control"]["metrics"])


def test_positive_control_asks_what_training_taught(bright_dark_run: dict[str, Any]) -> None:
    """data.instruction gives training the prompt the harness sends (gen: chat_prompt; mc: the
    task template), so the control measures the image, not a prompt the model never saw."""
    from medmllm.eval.prompting import chat_prompt, render
    from medmllm.eval.task import Task, load_task

    vqa = load_task("vqa_rad")
    vqa.data_override = [bright_dark_run["folder"] / "held.jsonl"]
    items, _, _ = vqa.load_items(check_images=False)
    assert chat_prompt(vqa, items[0], [], cot=False) == bright_dark_run["train_prompt"]
    mc = Task.from_file(bright_dark_run["folder"] / "task.yaml")
    items, _, _ = mc.load_items(check_images=False)
    assert render(mc, items[0]) == bright_dark_run["train_prompt"]
