"""Two-stage MedMLLM training: every aligner and several encoder families train and generate,
resume after a crash with the same loss, cache frozen features, and every shipped config loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmllm.errors import ConfigError, UnknownNameError
from medmllm.models.mllm import MedMLLM, MLLMConfig
from medmllm.train.mllm import DataConfig, MLLMTrainConfig, load_examples, train_mllm

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


def test_vqa_rad_and_covid_notes_examples(shared_data: Path) -> None:
    vqa = load_examples(DataConfig(kind="vqa_rad", limit=5))
    notes = load_examples(DataConfig(kind="covid_cxr_notes", limit=5))
    assert all(Path(e.image).is_file() for e in vqa + notes)
    assert vqa[0].prompt.endswith("?") and notes[0].target
