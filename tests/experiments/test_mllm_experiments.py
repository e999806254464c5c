"""Experiments 1 and 2: grids validate; the split keeps images apart and trains on the harness's
prompts; per-question-type slicing and the degenerate labels are right; a tiny run writes its
tables, plot and JSON end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medmllm.eval.task import Item
from medmllm.experiments import EXPERIMENTS, alignment, vision_encoders
from medmllm.experiments import mllm_grid as G
from medmllm.models.mllm import MLLMConfig
from medmllm.train.mllm import MLLMTrainConfig


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_grids_validate(preset: str, tmp_path: Path) -> None:
    train = tmp_path / "t.jsonl"
    cells = list(vision_encoders.grid(preset, train).values())  # type: ignore[arg-type]
    cells += list(alignment.grid(preset, train).values())  # type: ignore[arg-type]
    for cell in cells:
        cfg = MLLMTrainConfig.model_validate({**cell, "output_dir": str(tmp_path / "r")})
        assert isinstance(cfg.model, MLLMConfig)
        assert cfg.finetune == "lora" and not cfg.model.llm.tiny
        if preset == "gpu":
            assert cfg.model.encoder.model_id and cfg.model.llm.model_id
        else:  # the embedded SmolLM2 and the offline encoders, pooled for splicing aligners
            assert cfg.model.llm.model_id is None
            splices = cfg.model.aligner.name in ("linear", "mlp2x_gelu")
            assert (cfg.model.encoder.pool_grid == G.CPU_RECIPE.pool_grid) == splices
    labels = list(vision_encoders.grid("cpu", train))
    assert sum("random" in label for label in labels) == 1  # one labelled contrast
    assert {"vision-encoders", "alignment"} <= set(EXPERIMENTS.names())


def test_steps_follow_epochs() -> None:
    recipe = G.VqaRecipe(epochs=2, batch_size=8)
    cfg = G.instruct_config({"name": "vit"}, {"name": "linear"}, Path("x"), 100, recipe, seed=0)
    assert cfg["max_steps"] == 25
    assert cfg["model"]["encoder"] == {"name": "vit", "image_size": 224, "pool_grid": 2}


def test_recipe_options_are_validated() -> None:
    assert G.recipe_for("cpu", {"epochs": 1, "encoders": ["x"]}).epochs == 1
    with pytest.raises(Exception, match="learning_rate"):
        G.recipe_for("cpu", {"learning_rate": -1})


def test_stratified_split_by_image() -> None:
    # 20 images, 4 of them "rare": an unstratified quarter may miss them, a stratified one not
    rows = [{"img": f"i{i}", "rare": i < 4, "q": q} for i in range(20) for q in range(3)]
    for seed in range(10):
        train, test = G.split_by_image(rows, "img", 0.25, seed, lambda rs: rs[0]["rare"])
        assert not {r["img"] for r in train} & {r["img"] for r in test}
        assert len({r["img"] for r in test if r["rare"]}) == 1  # 25% of 4
        assert len({r["img"] for r in test}) == 5
    assert G.vqa_stratum([{"image_organ": "HEAD", "answer_type": "CLOSED",
                           "question_type": "PRES, PLANE"}]) == ("HEAD", True)  # fmt: skip


def _item(i: int, qtype: str, answer_type: str, answer: str) -> Item:
    meta = {"answer_type": answer_type, "question_type": qtype}
    return Item(id=str(i), question="q", answer=answer, image="x.png", meta=meta)


def _section(items: list[Item], preds: list[str], blind: list[str]) -> dict[str, Any]:
    return {
        "items": [
            {"id": it.id, "gold": it.answer, "pred": p} for it, p in zip(items, preds, strict=True)
        ],
        "blind_control": {"predictions": {it.id: b for it, b in zip(items, blind, strict=True)}},
    }


def test_per_type_slicing() -> None:
    items = [
        _item(0, "MODALITY", "CLOSED", "yes"),
        _item(1, "PLANE", "CLOSED", "no"),
        _item(2, "PRES, POS", "CLOSED", "yes"),
        _item(3, "PRES", "CLOSED", "no"),
        _item(4, "MODALITY", "OPEN", "ct"),
        _item(5, "ATRIB", "OPEN", "round"),
    ]
    preds = ["yes", "no", "no", "no", "CT scan", "oval"]
    blind = ["no", "yes", "no", "no", "mri", "oval"]
    out = G.analyse_vqa(_section(items, preds, blind), items, seed=0)
    visible = out[G.VISIBLE]["closed"]
    assert visible["n"] == 2 and visible["accuracy"] == 1.0 and visible["blind_accuracy"] == 0.0
    assert visible["image_gain"] == 1.0 and visible["changed_answers"] == 2
    assert out[G.VISIBLE]["open"]["image_gain"] == 1.0  # "ct" in "CT scan", not in "mri"
    assert (
        out[G.OTHER_TYPES]["closed"]["n"] == 2 and out[G.OTHER_TYPES]["closed"]["image_gain"] == 0
    )
    assert out["PRES"]["closed"]["n"] == 2 and out["POS"]["closed"]["n"] == 1  # both types count
    assert "ATTRIB" in out and "ATRIB" not in out  # the data's misspelling is folded
    assert out["all"]["closed"]["n"] == 4 and out["all"]["open"]["n"] == 2
    assert out["all"]["closed"]["image_gain"] == pytest.approx(0.5)
    assert G.type_order([out])[:4] == [G.VISIBLE, "MODALITY", "PLANE", G.OTHER_TYPES]
    header, rows = G.per_type_table({"cell": {"analysis": out}})
    assert len(header) == len(rows[0]) and rows[0][1] == G.VISIBLE


def test_image_clustered_interval_is_wider_for_clustered_items() -> None:
    # four questions per image, answered all right or all wrong: 10 independent units, not 40
    values = [1.0] * 20 + [0.0] * 20
    images = [f"i{i // 4}" for i in range(40)]
    lo, hi = G.cluster_bootstrap_ci(values, images, seed=0)
    item_lo, item_hi = G.cluster_bootstrap_ci(values, [str(i) for i in range(40)], seed=0)
    assert lo < 0.5 < hi and hi - lo > (item_hi - item_lo) * 1.5
    assert G.cluster_bootstrap_ci([0.0, 0.0], ["a", "b"]) == (0.0, 0.0)


def test_organ_probe_rows_one_per_image() -> None:
    raw = [
        {"image_name": "/x/a.jpg", "image_organ": "HEAD"},
        {"image_name": "/x/a.jpg", "image_organ": "HEAD"},
        {"image_name": "/x/b.jpg", "image_organ": "ABD"},
    ]
    rows = G.organ_probe_rows(raw)
    assert [r["answer"] for r in rows] == ["head", "abdomen"]
    assert {r["answer_type"] for r in rows} == {"OPEN"} and rows[0]["qid"] == "organ-a"


def test_degenerate_cells_are_labelled() -> None:
    assert G.constant_answer(["No.", "no", "No, there is not"], closed=True) == "no"
    assert G.constant_answer(["yes", "no"], closed=True) is None
    assert G.constant_answer(["ct", "CT"], closed=False) == "ct"
    items = [_item(i, "PRES", "CLOSED", a) for i, a in enumerate(["yes", "no", "no"])]
    out = G.analyse_vqa(_section(items, ["no"] * 3, ["no"] * 3), items, seed=0)
    closed = out["all"]["closed"]
    assert G.accuracy_cell(closed).startswith("degenerate: answers 'no' to every item (0.667")
    assert G.blind_cell(closed) == "0.667 (answers 'no' to every item)"
    assert G.gain_cell(closed).startswith("none: the same answer")
    assert G.accuracy_cell({**closed, "constant_answer": ""}).startswith(
        "degenerate: gives an empty answer to every item"
    )
    varied = G.analyse_vqa(_section(items, ["yes", "no", "yes"], ["no"] * 3), items, seed=0)
    assert G.accuracy_cell(varied["all"]["closed"]).startswith("0.667 [")
    assert G.gain_cell(varied["all"]["closed"]).startswith("+0.000 [")
    assert "; by image [" in G.gain_cell(varied["all"]["closed"])


def test_split_keeps_images_apart_and_trains_on_harness_prompts(
    shared_data: Path, tmp_path: Path
) -> None:
    from medmllm.eval.prompting import chat_prompt
    from medmllm.eval.task import load_task

    recipe = G.VqaRecipe(blank_share=0.5)
    tune = G.prepare_vqa_rad(tmp_path, recipe, 0, "tune")
    final = G.prepare_vqa_rad(tmp_path, recipe, 0, "final")
    split = json.loads((tmp_path / "split.json").read_text())
    held, tune_imgs, fit = (set(split[k]) for k in ("held_apart", "tune", "fit"))
    assert held and tune_imgs and fit and not (held & tune_imgs or held & fit or tune_imgs & fit)
    assert len(held | tune_imgs | fit) == 111

    def images(path: Path, key: str) -> set[str]:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return {Path(r[key]).name for r in rows}

    blank = "blank-224-128.png"
    assert images(tune.train_file, "image") - {blank} == fit
    assert images(tune.eval_file, "image_name") == tune_imgs
    assert images(final.train_file, "image") - {blank} == fit | tune_imgs
    assert images(final.eval_file, "image_name") == held
    rows = [json.loads(line) for line in final.eval_file.read_text().splitlines()]
    assert sum(G.vqa_stratum([r])[1] for r in rows) >= 5  # closed visible-type questions
    counts = final.protocol["counts"]
    assert counts["held_apart"]["images"] == len(held) and final.protocol["blank_image_rows"] > 0
    task = load_task("vqa_rad")
    first = json.loads(final.train_file.read_text().splitlines()[0])
    items, _, _ = task.load_items()
    item = next(i for i in items if i.image == first["image"] and i.answer == first["target"])
    assert first["prompt"] == chat_prompt(task, item, [], cot=False)


@pytest.mark.slow
def test_tiny_vision_encoder_run_writes_outputs(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fresh shared cell store: a cell finished by an earlier test session is not reused
    monkeypatch.setattr(G, "_shared_cell", lambda digest: tmp_path / f"shared-{digest}.json")
    kw: dict[str, Any] = {"encoders": ["mobilenet"], "max_steps": 2, "limit": 8}
    result = vision_encoders.run("cpu", tmp_path, llm={"tiny": True}, phase="tune", **kw)
    for name in ("tune.md", "tune.json", "tune.png", "split.json"):
        assert (tmp_path / name).is_file()
    saved = json.loads((tmp_path / "tune.json").read_text())
    assert saved["protocol"]["evaluated_on"] == "tune images"
    cell = next(iter(saved["cells"].values()))
    assert cell["eval"]["blind_control"]["image_gain"] and "items" not in cell["eval"]
    assert cell["eval"]["analysis"]["all"]["closed"]["n"] > 0
    assert cell["cpu_seconds"]["train"] > 0
    assert cell["train"]["model"]["visual_tokens"] == G.CPU_RECIPE.pool_grid**2  # CNN: no CLS
    assert saved["config_hash"] == result["config_hash"]
    assert "Per question type" in (tmp_path / "tune.md").read_text()
    run_split = json.loads(next(tmp_path.glob("cells/*/run/split.json")).read_text())
    assert run_split["held"] == []  # split by image by the grid already: training keeps every row
    again = vision_encoders.run("cpu", tmp_path, llm={"tiny": True}, phase="tune", **kw)
    assert again["cells"] == result["cells"]  # the finished cell is reused, not retrained


def test_finished_cell_is_reused_across_experiments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.setattr(G, "_shared_cell", lambda digest: tmp_path / "shared" / f"{digest}.json")
    (tmp_path / "shared").mkdir()
    Image.new("RGB", (40, 40), (90, 90, 90)).save(tmp_path / "a.png")
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"image": str(tmp_path / "a.png"), "prompt": "q", "target": "no"}))
    recipe = G.VqaRecipe(llm={"tiny": True}, image_size=32, epochs=1)
    cfg = G.instruct_config({"name": "vit"}, {"name": "linear"}, data, 1, recipe, seed=0)
    calls: list[Path] = []

    def evaluate(model_dir: Path) -> dict[str, Any]:
        calls.append(model_dir)
        return {"metrics": {}}

    first = G.run_cell("exp1-cell", cfg, tmp_path / "exp1", evaluate, eval_key="k")
    again = G.run_cell("exp2-cell", cfg, tmp_path / "exp2", evaluate, eval_key="k")
    assert len(calls) == 1 and again == first  # trained once, reused by the other experiment
    assert (tmp_path / "exp2/cells/exp2-cell/result.json").is_file()
    G.run_cell("exp2-other", cfg, tmp_path / "exp2", evaluate, eval_key="other evaluation")
    assert len(calls) == 2


def test_grid_prompts_are_what_mllm_data_instruction_gives(shared_data: Path) -> None:
    """The grid writes the harness's chat_prompt into its rows; a VQA-RAD run configured with
    main's ``data.instruction`` trains on the same text, so the two paths cannot drift apart."""
    from medmllm.eval.prompting import chat_prompt
    from medmllm.eval.task import load_task
    from medmllm.prompts.cot import answer_instruction
    from medmllm.train.mllm import DataConfig, read_examples

    task = load_task("vqa_rad")
    p = task.config.prompt
    instruction = answer_instruction(p.instruction, p.cot_instruction, cot=False)
    examples = read_examples(DataConfig(kind="vqa_rad", instruction=instruction))[:40]
    items, _, _ = task.load_items()
    by_id = {i.id: i for i in items}
    for ex in examples:
        assert ex.prompt == chat_prompt(task, by_id[ex.key.split(":", 1)[1]], [], cot=False)


def test_alignment_projection_cell_is_experiment_one_cell(tmp_path: Path) -> None:
    """Experiment 2's mlp2x_gelu cell must validate to experiment 1's DINOv2 cell (so it is reused,
    not retrained with another MLP width): on main it carried the query aligners' hidden 128."""
    train = tmp_path / "t.jsonl"
    for preset in ("cpu", "gpu"):
        mlp = alignment.grid(preset, train)["mlp2x_gelu"]  # type: ignore[arg-type]
        same = [
            c
            for c in vision_encoders.grid(preset, train).values()
            if c["model"]["encoder"] == mlp["model"]["encoder"]
        ]  # type: ignore[arg-type]
        dump = [
            MLLMTrainConfig.model_validate({**c, "output_dir": "o"}).model_dump(mode="json")
            for c in (mlp, *same)
        ]
        assert len(dump) == 2 and dump[0] == dump[1]
