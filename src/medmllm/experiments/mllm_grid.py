"""Shared runner of the multimodal experiments: split → train → evaluate → per-type table/plot/JSON.

Protocol (recorded in every ``results.json`` under ``protocol``):

* VQA-RAD (developer subset) is split **by image**: a held-apart share of the images is never
  trained on; a *tune* share of the remaining training images is carved out for choosing steps,
  learning rate and the visual-token budget. ``phase="tune"`` trains on the other training
  images and evaluates on the tune images; ``phase="final"`` trains on every training image and
  evaluates once on the held-apart images. Hyper-parameters are picked from tune runs only.
* Training prompts are the harness's own generative prompt (question + answer instruction), so
  a model is evaluated on exactly the text it was trained on.
* A share of the training rows is repeated with the harness's blank image (modality dropout), so
  the image-blind control measures the model's own language prior instead of its reaction to an
  input it never saw.
* Evaluation is the harness (:func:`medmllm.eval.runner.run_eval`, gen mode): closed / open
  accuracy with 95% CIs, the majority baseline and the image-blind control (paired image gain
  with a bootstrap CI), plus the same figures per VQA-RAD question type.

Cells already finished (``cells/<name>/result.json`` with the same config hash) are reused, so a
killed experiment resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medmllm.config import shared_data_dir
from medmllm.eval.task import Item, Task

Phase = Literal["tune", "final"]

CLOSED = "vqa_closed_accuracy"
OPEN = "vqa_open_accuracy"
# question types whose answer is visible in the image itself (pre-declared, not picked on results)
VISIBLE_TYPES = ("MODALITY", "ORGAN", "PLANE")
VISIBLE = "visible (MODALITY/ORGAN/PLANE)"
OTHER_TYPES = "other types"
_TYPE_ALIASES = {"ATRIB": "ATTRIB"}
ORGAN_QUESTION = "Which part of the body does this image show?"
ORGAN_WORDS = {"HEAD": "head", "CHEST": "chest", "ABD": "abdomen"}


class VqaRecipe(BaseModel):
    """How every cell of a preset is trained and evaluated (cells differ in encoder/aligner)."""

    model_config = ConfigDict(extra="forbid")

    llm: dict[str, Any] = Field(
        default_factory=lambda: {"model_id": None},
        description="LLMConfig of every cell ({'model_id': None} = the embedded SmolLM2-135M).",
    )
    finetune: Literal["lora", "full"] = Field("lora", description="LLM tuning in the instruct run.")
    learning_rate: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    epochs: float = Field(3.0, gt=0, description="Passes over the training rows (sets max_steps).")
    batch_size: int = Field(8, ge=1, description="Examples per optimizer step.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps of linear warm-up.")
    blank_share: float = Field(
        0.15, ge=0, le=1, description="Share of training rows repeated with the blank image."
    )
    organ_probe: bool = Field(
        True,
        description="Add one 'which part of the body' row per training image (label: VQA-RAD's "
        "image_organ) and score the same question on the evaluated images: a positive control "
        "whose answer is always visible.",
    )
    image_size: int | None = Field(
        224, description="Encoder input side for cells that do not set one (None: keep theirs)."
    )
    pool_grid: int | None = Field(
        2, description="Pool the patch grid to NxN visual tokens (None: every patch token)."
    )
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Training precision.")
    test_share: float = Field(0.25, gt=0, lt=1, description="Share of images held apart.")
    tune_share: float = Field(
        0.2, gt=0, lt=1, description="Share of the training images carved out as the tune split."
    )
    eval_limit: int | None = Field(None, ge=1, description="Evaluate at most N items (None: all).")


# Chosen on the tune split (docs/experiments/vision-encoders/tune.md); never on held-apart rows:
# lr 1e-3 over 3e-4, the organ probe, and 4x4 pooled patches (17 visual tokens) over 2x2 (5).
CPU_RECIPE = VqaRecipe(pool_grid=4)
GPU_RECIPE = VqaRecipe(
    llm={"model_id": "HuggingFaceTB/SmolLM2-1.7B-Instruct"},
    learning_rate=2e-4,
    epochs=5,
    batch_size=16,
    image_size=None,
    pool_grid=None,
    precision="bf16",
)
RECIPES = {"cpu": CPU_RECIPE, "gpu": GPU_RECIPE}

CPU_CAVEAT = (
    "CPU preset: the embedded SmolLM2-135M-Instruct with LoRA, frozen offline encoders with "
    "cached features pooled to a few visual tokens, trained on the VQA-RAD developer subset "
    "(111 images). The held-apart split is a few dozen images, so intervals are wide; the "
    "random-initialised encoder is a labelled contrast, not a competitor. The gpu preset "
    "(hub checkpoints, SmolLM2-1.7B) is the comparison at scale."
)


def recipe_for(preset: str, options: dict[str, Any]) -> VqaRecipe:
    """The preset's recipe with ``options`` (recipe field names) replacing its values."""
    from medmllm.train.core import validate_config

    base = RECIPES[preset].model_dump()
    known = {k: v for k, v in options.items() if k in VqaRecipe.model_fields and v is not None}
    return validate_config(VqaRecipe, {**base, **known}, f"preset {preset} + options")


def instruct_config(
    encoder: dict[str, Any],
    aligner: dict[str, Any],
    train_file: Path,
    n_rows: int,
    recipe: VqaRecipe,
    *,
    seed: int,
) -> dict[str, Any]:
    """One grid cell's ``instruct`` run (as a dict); the cells of a grid differ only in
    encoder/aligner. Steps follow from ``recipe.epochs`` over ``n_rows`` training rows."""
    enc = dict(encoder)
    if recipe.image_size is not None:
        enc.setdefault("image_size", recipe.image_size)
    if recipe.pool_grid is not None and aligner.get("name") in ("linear", "mlp2x_gelu"):
        enc.setdefault("pool_grid", recipe.pool_grid)  # query/cross-attn aligners read every patch
    steps = max(1, math.ceil(recipe.epochs * n_rows / recipe.batch_size))
    return {
        "stage": "instruct",
        "model": {"encoder": enc, "aligner": aligner, "llm": recipe.llm, "seed": seed},
        # the grid splits by image itself (held-apart / tune / fit): train on every row given
        "data": {"kind": "jsonl", "path": str(train_file), "eval_fraction": 0.0},
        "finetune": recipe.finetune,
        "max_steps": steps,
        "save_steps": max(1, steps // 4),
        "warmup_steps": int(steps * recipe.warmup_ratio),
        "batch_size": recipe.batch_size,
        "learning_rate": recipe.learning_rate,
        "seed": seed,
        "progress": False,
        "precision": recipe.precision,
    }


# -- data -----------------------------------------------------------------------------------------
def split_by_image(
    rows: list[dict[str, Any]],
    key: str,
    test_share: float,
    seed: int,
    stratum: Callable[[list[dict[str, Any]]], Any] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train rows, test rows) with every image on one side only.

    ``stratum`` maps an image's rows to a label; each label's images are split in the same
    proportion (a stratified split by image), so a small test side still holds every kind.
    """
    by_image: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_image.setdefault(r[key], []).append(r)
    strata: dict[str, list[str]] = {}
    for image in sorted(by_image):
        label = stratum(by_image[image]) if stratum else ""
        strata.setdefault(str(label), []).append(image)
    rng = random.Random(seed)
    test_images: set[str] = set()
    for label in sorted(strata):
        images = strata[label]
        rng.shuffle(images)
        share = len(images) * test_share
        n_test = max(1, round(share) if stratum else int(share))
        test_images.update(images[:n_test])
    train = [r for r in rows if r[key] not in test_images]
    test = [r for r in rows if r[key] in test_images]
    return train, test


def vqa_stratum(rows: list[dict[str, Any]]) -> tuple[str, bool]:
    """An image's stratum: its organ and whether it has a closed question of a visible type
    (only 28 of the 111 images do; an unstratified quarter held 3 such questions)."""
    visible = any(
        str(r.get("answer_type", "")).upper() == "CLOSED"
        and any(t.strip().upper() in VISIBLE_TYPES for t in str(r.get("question_type")).split(","))
        for r in rows
    )
    return (str(rows[0].get("image_organ")), visible)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return path


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class VqaData:
    """What one phase trains on and is evaluated on."""

    train_file: Path
    eval_file: Path
    n_train_rows: int
    protocol: dict[str, Any]
    probe_file: Path | None = None

    def eval_key(self, limit: int | None, seed: int) -> str:
        """What an evaluation of this phase scores (file contents, limit, seed)."""
        return f"vqa_rad:{file_digest(self.eval_file, self.probe_file)}:{limit}:{seed}"


def training_rows(
    task: Task, items: Sequence[Item], blank_share: float, seed: int
) -> list[dict[str, Any]]:
    """``{image, prompt, target}`` rows in the harness's own prompt, plus blank-image repeats."""
    from medmllm.eval.blind import blank_image
    from medmllm.eval.prompting import chat_prompt

    rng = random.Random(seed)
    blank = str(blank_image())
    rows = []
    for item in items:
        row = {
            "image": item.image,
            "prompt": chat_prompt(task, item, [], cot=False),
            "target": item.answer,
        }
        rows.append(row)
        if rng.random() < blank_share:
            rows.append({**row, "image": blank})
    return rows


def organ_probe_rows(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One VQA-RAD-shaped row per image: "which part of the body?" → head / chest / abdomen."""
    first: dict[str, dict[str, Any]] = {}
    for r in raw:
        first.setdefault(r["image_name"], r)
    return [
        {
            "qid": f"organ-{Path(image).stem}",
            "image_name": image,
            "image_organ": r["image_organ"],
            "question": ORGAN_QUESTION,
            "answer": ORGAN_WORDS[str(r["image_organ"])],
            "answer_type": "OPEN",
            "question_type": "ORGAN-PROBE",
        }
        for image, r in first.items()
    ]


def prepare_vqa_rad(out_dir: Path, recipe: VqaRecipe, seed: int, phase: Phase) -> VqaData:
    """Split VQA-RAD by image into held-apart / tune / fit and write the phase's files.

    ``split.json`` lists the images of each part, so the protocol can be audited.
    """
    from medmllm.eval.task import load_task

    data = shared_data_dir()
    assert data is not None
    root = data / "vqa/vqa_rad"
    raw = [json.loads(line) for line in (root / "qa.jsonl").read_text().splitlines() if line]
    for r in raw:
        r["image_name"] = str(root / "images" / r["image_name"])
    train_raw, test_raw = split_by_image(raw, "image_name", recipe.test_share, seed, vqa_stratum)
    fit_raw, tune_raw = split_by_image(
        train_raw, "image_name", recipe.tune_share, seed + 1, vqa_stratum
    )
    parts = {"held_apart": test_raw, "tune": tune_raw, "fit": fit_raw}
    task = load_task("vqa_rad")
    items, _, _ = task.load_items()
    by_id = {i.id: i for i in items}
    trained = fit_raw if phase == "tune" else fit_raw + tune_raw
    evaluated = tune_raw if phase == "tune" else test_raw
    train_items = [by_id[str(r["qid"])] for r in trained]
    folder = out_dir / "data"
    probe_file = None
    if recipe.organ_probe:
        probe = organ_probe_rows(trained)
        train_items += [task.to_item(r, i, "organ probe") for i, r in enumerate(probe)]  # type: ignore[misc]
        probe_file = _write_jsonl(
            folder / f"organ_probe_{phase}_eval.jsonl", organ_probe_rows(evaluated)
        )
    rows = training_rows(task, train_items, recipe.blank_share, seed)
    train_file = _write_jsonl(folder / f"vqa_{phase}_train.jsonl", rows)
    eval_file = _write_jsonl(folder / f"vqa_{phase}_eval.jsonl", evaluated)
    protocol = {
        "dataset": "VQA-RAD developer subset (111 images, 1,152 QA; shared data folder)",
        "split": "by image, seeded, stratified by organ x has-a-closed-question-of-a-visible-"
        "type: held-apart images are never trained on; the tune images are carved out of the "
        "training images the same way",
        "shares": {"held_apart": recipe.test_share, "tune_of_training": recipe.tune_share},
        "seed": seed,
        "phase": phase,
        "trained_on": "fit images" if phase == "tune" else "fit + tune images",
        "evaluated_on": "tune images" if phase == "tune" else "held-apart images (once)",
        "counts": {
            name: {
                "images": len({r["image_name"] for r in part}),
                "qa": len(part),
                "closed": sum(str(r.get("answer_type", "")).upper() == "CLOSED" for r in part),
            }
            for name, part in parts.items()
        },
        "training_rows": len(rows),
        "blank_image_rows": len(rows) - len(train_items),
        "organ_probe_rows": len(train_items) - len(trained),
        "organ_probe": "positive control: 'which part of the body does this image show?' "
        "(head / chest / abdomen from VQA-RAD's image_organ), one row per training image; "
        "scored on the evaluated images, never part of the VQA-RAD figures"
        if recipe.organ_probe
        else None,
        "hyper_parameters": "chosen on tune-phase runs only",
    }
    split = {name: sorted({Path(r["image_name"]).name for r in p}) for name, p in parts.items()}
    _write_text(out_dir / "split.json", json.dumps({**split, "seed": seed}, indent=2))
    return VqaData(train_file, eval_file, len(rows), protocol, probe_file)


def prepare_covid(out_dir: Path, seed: int, test_share: float = 0.2) -> tuple[Path, Path]:
    """Train / test JSONL of covid_cxr_notes image → finding, split by image."""
    data = shared_data_dir()
    assert data is not None
    root = data / "imaging/covid_cxr_notes"
    rows = [json.loads(line) for line in (root / "cases.jsonl").read_text().splitlines() if line]
    prompt = "What is the finding in this chest X-ray?"
    items = [
        {
            "id": r["id"],
            "image": str(root / r["image"]),
            "prompt": prompt,
            "question": prompt,
            "target": str(r["finding"]),
            "answer": str(r["finding"]),
        }
        for r in rows
    ]
    train, test = split_by_image(items, "image", test_share, seed)
    return (
        _write_jsonl(out_dir / "data/covid_train.jsonl", train),
        _write_jsonl(out_dir / "data/covid_test.jsonl", test),
    )


def covid_task(out_dir: Path, test_file: Path) -> Path:
    """A harness task folder: covid_cxr_notes finding generation (report metrics)."""
    folder = out_dir / "data/covid_findings"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.yaml").write_text(
        "name: covid_findings\n"
        "description: Chest X-ray → finding label (covid_cxr_notes, held-out images)\n"
        "output_type: report\n"
        f"dataset: {{path: {test_file}}}\n"
        "fields: {id: id, question: question, answer: answer, image: image, options: null}\n"
        "prompt: {template: '{{ question }}', instruction: ''}\n"
        "answer_type: free\n"
        "generation: {max_tokens: 12}\n"
        "metrics: [bleu, rouge_l, meteor]\n"
    )
    return folder / "task.yaml"


# -- evaluation -----------------------------------------------------------------------------------
def question_types(item: Item) -> list[str]:
    """VQA-RAD question types of an item; a row tagged "PRES, POS" counts under both."""
    raw = str(item.meta.get("question_type") or "OTHER")
    names = [t.strip().upper() for t in raw.split(",") if t.strip()]
    return [_TYPE_ALIASES.get(t, t) for t in names] or ["OTHER"]


def constant_answer(preds: Sequence[str | None], closed: bool) -> str | None:
    """The one answer given to every item (closed: judged by its yes/no word), else None."""
    from medmllm.eval.metrics import normalize

    def key(p: str | None) -> str:
        words = normalize(p).split()
        if closed:
            return next((w for w in words if w in ("yes", "no")), " ".join(words))
        return " ".join(words)

    keys = {key(p) for p in preds}
    return next(iter(keys)) if len(preds) > 1 and len(keys) == 1 else None


def cluster_bootstrap_ci(
    values: Sequence[float],
    clusters: Sequence[str],
    *,
    seed: int = 0,
    n_resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of the mean, resampling whole clusters (images) with replacement.

    Why: VQA-RAD asks several questions (often paraphrases) about one image, so its items are
    not independent; resampling items alone understates the interval. SciPy's bootstrap has no
    cluster option, hence these few lines.
    """
    data = np.asarray(values, dtype=float)
    groups = sorted(set(clusters))
    if data.size < 2 or len(groups) < 2 or np.all(data == data[0]):
        v = float(data.mean()) if data.size else float("nan")
        return (v, v)
    index = {g: i for i, g in enumerate(groups)}
    ids = np.asarray([index[c] for c in clusters])
    sums = np.bincount(ids, weights=data, minlength=len(groups))
    counts = np.bincount(ids, minlength=len(groups)).astype(float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(n_resamples, len(groups)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def _subset_stats(
    metric: str,
    preds: list[str | None],
    blind: list[str | None],
    refs: list[str],
    items: list[Item],
    seed: int,
) -> dict[str, Any]:
    from medmllm.eval import metrics as M

    fn = M.METRICS.get(metric).fn
    with_img = np.asarray(fn(preds, refs, items), dtype=float)
    without = np.asarray(fn(blind, refs, items), dtype=float)
    keep = ~np.isnan(with_img)
    n = int(keep.sum())
    if n == 0:
        return {"n": 0}
    diff = with_img[keep] - without[keep]
    closed = metric == CLOSED
    sel = [i for i, k in enumerate(keep) if k]
    return {
        "n": n,
        "accuracy": float(with_img[keep].mean()),
        "accuracy_ci": list(M.bootstrap_ci(with_img[keep], seed=seed)),
        "blind_accuracy": float(without[keep].mean()),
        "image_gain": float(diff.mean()),
        "image_gain_ci": list(M.bootstrap_ci(diff, seed=seed)),
        "image_gain_ci_by_image": list(
            cluster_bootstrap_ci(diff, [str(items[i].image) for i in sel], seed=seed)
        ),
        "images": len({items[i].image for i in sel}),
        "changed_answers": int(np.count_nonzero(diff)),
        "constant_answer": constant_answer([preds[i] for i in sel], closed),
        "blind_constant_answer": constant_answer([blind[i] for i in sel], closed),
        "same_as_blind": all(preds[i] == blind[i] for i in sel),
    }


def analyse_vqa(section: dict[str, Any], items: Sequence[Item], seed: int) -> dict[str, Any]:
    """Closed / open figures overall, for the visible types and per question type."""
    by_id = {i.id: i for i in items}
    rows = section["items"]
    blind_preds = (section.get("blind_control") or {}).get("predictions", {})
    its = [by_id[r["id"]] for r in rows]
    preds = [r.get("pred") for r in rows]
    blind = [blind_preds.get(r["id"]) for r in rows]
    refs = [r["gold"] for r in rows]
    groups: dict[str, list[int]] = {"all": list(range(len(rows))), VISIBLE: [], OTHER_TYPES: []}
    for i, item in enumerate(its):
        types = question_types(item)
        visible = any(t in VISIBLE_TYPES for t in types)
        groups[VISIBLE if visible else OTHER_TYPES].append(i)
        for t in types:
            groups.setdefault(t, []).append(i)
    out: dict[str, Any] = {}
    for group, idx in groups.items():
        p, b, r, it = ([xs[i] for i in idx] for xs in (preds, blind, refs, its))
        out[group] = {
            kind: _subset_stats(metric, p, b, r, it, seed)  # type: ignore[arg-type]
            for kind, metric in (("closed", CLOSED), ("open", OPEN))
        }
    return out


def evaluate_vqa(
    model_dir: Path,
    eval_file: Path,
    limit: int | None,
    seed: int,
    probe_file: Path | None = None,
) -> dict[str, Any]:
    """VQA-RAD through the harness (closed/open accuracy, baseline, image-blind control), with
    the per-question-type analysis under ``analysis`` and the organ probe under ``organ_probe``
    (its own harness run, so it never enters the VQA-RAD figures)."""
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.eval.task import load_task
    from medmllm.models.backends.mllm import MLLMGenerator

    gen = MLLMGenerator(model_dir)
    options = EvalOptions(mode="gen", limit=limit, seed=seed)

    def harness(data: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        task = load_task("vqa_rad")
        task.data_override = [data]
        out = run_eval([task], gen, options, cache_path=":memory:", report=False)
        items, _, _ = task.load_items(limit=limit)
        section: dict[str, Any] = out["tasks"]["vqa_rad"]
        return section, analyse_vqa(section, items, seed)

    section, section["analysis"] = harness(eval_file)
    if probe_file is not None:
        probe, analysis = harness(probe_file)
        section["organ_probe"] = {
            **analysis["all"]["open"],
            "majority_baseline": probe["majority_baseline"].get(OPEN),
            "prediction_distribution": probe["prediction_distribution"],
        }
    return section


def evaluate_generation(model_dir: Path, task_file: Path, limit: int | None, seed: int) -> dict:
    """Image → finding through the harness (BLEU, ROUGE-L, METEOR with CIs)."""
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.eval.task import Task
    from medmllm.models.backends.mllm import MLLMGenerator

    task = Task.from_file(task_file)
    gen = MLLMGenerator(model_dir)
    options = EvalOptions(mode="gen", limit=limit, seed=seed)
    results = run_eval([task], gen, options, cache_path=":memory:", report=False)
    return results["tasks"][task.name]


def file_digest(*paths: Path | None) -> str:
    """Content hash of data files (None entries count as absent): part of a cell's identity."""
    import hashlib

    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes() if path is not None else b"<none>")
    return h.hexdigest()[:16]


def _shared_cell(digest: str) -> Path:
    from medmllm.config import get_settings

    return get_settings().cache_dir("experiment-cells") / f"{digest}.json"


def run_cell(
    name: str,
    train_cfg: dict[str, Any],
    out_dir: Path,
    evaluate: Callable[[Path], dict[str, Any]],
    log: Callable[[str], None] = lambda _: None,
    eval_key: str = "",
) -> dict[str, Any]:
    """Train + evaluate one grid cell, or reuse a finished one with the same identity.

    The identity hashes the training config (without its output folder), the training data's
    content and ``eval_key`` (what and how it is evaluated). A cell finished by this experiment
    (``cells/<name>/result.json``) or by another one (e.g. experiment 2's ``mlp2x_gelu`` cell is
    experiment 1's DINOv2 cell; kept under ``MEDMLLM_HOME/cache/experiment-cells/``) is reused.
    """
    from medmllm.provenance import config_hash, cpu_seconds
    from medmllm.train.mllm import MLLMTrainConfig, train_mllm

    cell = out_dir / "cells" / name
    done = cell / "result.json"
    cfg = MLLMTrainConfig.model_validate({**train_cfg, "output_dir": str(cell / "run")})
    identity = cfg.model_dump(mode="json", exclude={"output_dir"})
    data = Path(cfg.data.path) if cfg.data.path else None
    identity["data"] = {**identity["data"], "path": file_digest(data)}
    digest = config_hash({"train": identity, "eval": eval_key})
    for source in (done, _shared_cell(digest)):
        if source.is_file():
            previous: dict[str, Any] = json.loads(source.read_text())
            if (
                previous.get("config_hash") == digest
                and Path(previous["train"]["model_dir"]).is_dir()
            ):
                if source != done:
                    cell.mkdir(parents=True, exist_ok=True)
                    _write_text(done, json.dumps(previous, indent=2, default=str))
                log(f"{name}: reused {source} (same config, data and evaluation)")
                return previous
    started, cpu0 = time.perf_counter(), cpu_seconds()
    log(f"{name}: training {cfg.max_steps} steps")
    summary = train_mllm(cfg, overwrite=True)
    train_s, cpu1 = time.perf_counter() - started, cpu_seconds()
    log(f"{name}: evaluating ({train_s:.0f} s)")
    evaluation = evaluate(Path(summary["model_dir"]))
    result = {
        "name": name,
        "config_hash": digest,
        "config": cfg.model_dump(mode="json"),
        "train": {k: v for k, v in summary.items() if k not in ("environment", "losses")},
        "losses": summary["losses"],
        "eval": {k: v for k, v in evaluation.items() if k != "_samples"},
        "seconds": {"train": train_s, "total": time.perf_counter() - started},
        "cpu_seconds": {"train": cpu1 - cpu0, "total": cpu_seconds() - cpu0},
        "load_avg": list(os.getloadavg()),
    }
    text = json.dumps(result, indent=2, default=str)
    _write_text(done, text)
    _write_text(_shared_cell(digest), text)
    took = f"{result['seconds']['total']:.0f} s, {result['cpu_seconds']['total']:.0f} CPU-s"
    log(f"{name}: done ({took})")
    return result


def public_cell(result: dict[str, Any]) -> dict[str, Any]:
    """A cell without its per-item predictions (those stay in the run folder)."""
    ev = dict(result.get("eval", {}))
    ev.pop("items", None)
    if ev.get("blind_control"):
        ev["blind_control"] = {k: v for k, v in ev["blind_control"].items() if k != "predictions"}
    return {**result, "eval": ev}


# -- table cells ----------------------------------------------------------------------------------
def _ci(lo: float, hi: float, signed: bool = False) -> str:
    return f"[{lo:+.2f}, {hi:+.2f}]" if signed else f"[{lo:.2f}, {hi:.2f}]"


def _said(answer: str) -> str:
    return f"answers '{answer}'" if answer else "gives an empty answer"


def accuracy_cell(stats: dict[str, Any]) -> str:
    """``0.612 [0.53, 0.69] (n=170)``, or the degenerate label when every answer is the same."""
    if not stats.get("n"):
        return "–"
    text = f"{stats['accuracy']:.3f} {_ci(*stats['accuracy_ci'])} (n={stats['n']})"
    if stats.get("constant_answer") is not None:
        return f"degenerate: {_said(stats['constant_answer'])} to every item ({text})"
    return text


def blind_cell(stats: dict[str, Any]) -> str:
    if not stats.get("n"):
        return "–"
    text = f"{stats['blind_accuracy']:.3f}"
    if stats.get("blind_constant_answer") is not None:
        return f"{text} ({_said(stats['blind_constant_answer'])} to every item)"
    return text


def gain_cell(stats: dict[str, Any]) -> str:
    """``+0.041 [+0.00, +0.08]``; no interval is shown when the image changed no answer."""
    if not stats.get("n"):
        return "–"
    if stats.get("same_as_blind"):
        return "none: the same answer with and without the image on every item"
    lo, hi = stats["image_gain_ci"]
    text = f"{stats['image_gain']:+.3f} {_ci(lo, hi, signed=True)}"
    if stats.get("image_gain_ci_by_image"):
        by_lo, by_hi = stats["image_gain_ci_by_image"]
        text += f"; by image {_ci(by_lo, by_hi, signed=True)}"
    return text


def probe_cell(stats: dict[str, Any] | None) -> str:
    """Organ probe: accuracy / blind and the gain with its CI (one item per image)."""
    if not stats or not stats.get("n"):
        return "–"
    lo, hi = stats["image_gain_ci"]
    base = (stats.get("majority_baseline") or {}).get("value")
    major = f", majority {base:.2f}" if base is not None else ""
    return (
        f"{stats['accuracy']:.2f} / {stats['blind_accuracy']:.2f}{major}, gain "
        f"{stats['image_gain']:+.2f} {_ci(lo, hi, signed=True)} (n={stats['n']})"
    )


def short_gain(stats: dict[str, Any]) -> str:
    """Compact per-type cell: ``+0.20 [+0.00, +0.40] n=10``."""
    if not stats.get("n"):
        return "–"
    lo, hi = stats["image_gain_ci"]
    return f"{stats['image_gain']:+.2f} {_ci(lo, hi, signed=True)} n={stats['n']}"


def baseline_cell(section: dict[str, Any], name: str) -> str:
    b = (section.get("majority_baseline") or {}).get(name) or {}
    if b.get("value") is None:
        return "–"
    return f"{b['value']:.3f} ('{b.get('label')}')" if b.get("label") else f"{b['value']:.3f}"


def metric_cell(section: dict[str, Any], name: str) -> str:
    m = section.get("metrics", {}).get(name) or {}
    if m.get("value") is None:
        return "–"
    ci = m.get("ci") or [m["value"], m["value"]]
    return f"{m['value']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}] (n={m.get('n', '?')})"


def vqa_row(section: dict[str, Any]) -> list[str]:
    """closed acc, blind, gain, majority, visible-type gain (closed, open), open acc, open gain."""
    a = section.get("analysis") or {}
    overall = a.get("all", {})
    visible = a.get(VISIBLE, {})
    return [
        accuracy_cell(overall.get("closed", {})),
        blind_cell(overall.get("closed", {})),
        gain_cell(overall.get("closed", {})),
        baseline_cell(section, CLOSED),
        short_gain(visible.get("closed", {})),
        short_gain(visible.get("open", {})),
        accuracy_cell(overall.get("open", {})),
        gain_cell(overall.get("open", {})),
        probe_cell(section.get("organ_probe")),
    ]


VQA_HEADER = [
    "closed acc [95% CI]",
    "closed blind",
    "closed image gain [95% CI: items; images]",
    "majority (closed)",
    "gain, visible types, closed",
    "gain, visible types, open",
    "open acc [95% CI]",
    "open image gain [95% CI: items; images]",
    "organ probe: acc / blind (positive control)",
]


def type_order(analyses: Sequence[dict[str, Any]]) -> list[str]:
    """Visible types first, then the rest by frequency; 'all' left out."""
    seen: dict[str, int] = {}
    for a in analyses:
        for group, stats in a.items():
            n = stats.get("closed", {}).get("n", 0) + stats.get("open", {}).get("n", 0)
            seen[group] = max(seen.get(group, 0), n)
    head = [VISIBLE, *VISIBLE_TYPES, OTHER_TYPES]
    rest = sorted((g for g in seen if g not in head and g != "all"), key=lambda g: -seen[g])
    return [g for g in head if g in seen] + rest


def per_type_table(cells: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Rows (cell label, question type): closed and open n, accuracy / blind, image gain."""
    header = [
        "cell", "question type", "closed n", "closed acc / blind", "closed gain [95% CI]",
        "open n", "open acc / blind", "open gain [95% CI]",
    ]  # fmt: skip
    analyses = {k: v.get("analysis") or {} for k, v in cells.items()}
    rows = []
    for label, a in analyses.items():
        for group in type_order(list(analyses.values())):
            stats = a.get(group)
            if not stats:
                continue
            row = [label, group]
            for kind in ("closed", "open"):
                s = stats.get(kind, {})
                if not s.get("n"):
                    row += ["0", "–", "–"]
                    continue
                lo, hi = s["image_gain_ci"]
                row += [
                    str(s["n"]),
                    f"{s['accuracy']:.2f} / {s['blind_accuracy']:.2f}",
                    f"{s['image_gain']:+.2f} {_ci(lo, hi, signed=True)}",
                ]
            rows.append(row)
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_outputs(
    out_dir: Path,
    title: str,
    tables: list[tuple[str, list[str], list[list[str]]]],
    payload: dict[str, Any],
    plot: Callable[[Path], None] | None,
    stem: str = "results",
) -> dict[str, Any]:
    """``<stem>.json``, ``<stem>.md`` (caveat + tables) and ``<stem>.png``, atomically."""
    lines = [f"# {title}", "", f"> {payload['caveat']}", ""]
    for heading, header, rows in tables:
        if heading:
            lines += [f"#### {heading}", ""]
        lines += [markdown_table(header, rows), ""]
    md = "\n".join(lines)
    payload["table_markdown"] = md
    _write_text(out_dir / f"{stem}.md", md)
    _write_text(out_dir / f"{stem}.json", json.dumps(payload, indent=2, default=str))
    if plot is not None:
        plot(out_dir / f"{stem}.png")
    return payload


GAIN_BARS = (("all", "closed"), (VISIBLE, "closed"), (VISIBLE, "open"))
GAIN_LEGEND = (
    ("closed, all", "#4c78a8"),
    ("closed, visible types", "#54a24b"),
    ("open, visible types", "#b279a2"),
    ("organ probe (positive control)", "#f58518"),
)


def plot_vqa(cells: dict[str, dict[str, Any]], path: Path) -> None:
    """Closed accuracy (with image, blind, majority) and the image gain per group, per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels = list(cells)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for x, label in enumerate(labels):
        ev = cells[label]
        s = (ev.get("analysis") or {}).get("all", {}).get("closed", {})
        if s.get("n"):
            lo, hi = s["accuracy_ci"]
            axes[0].bar(x, s["accuracy"], color="#4c78a8")
            axes[0].errorbar(
                x, s["accuracy"], yerr=[[s["accuracy"] - lo], [hi - s["accuracy"]]], color="k"
            )
            axes[0].plot(x, s["blind_accuracy"], "o", color="#f58518")
        base = (ev.get("majority_baseline") or {}).get(CLOSED) or {}
        if base.get("value") is not None:
            axes[0].hlines(base["value"], x - 0.4, x + 0.4, colors="#e45756", linestyles="--")
        analysis = ev.get("analysis") or {}
        gains = [analysis.get(group, {}).get(kind, {}) for group, kind in GAIN_BARS]
        gains.append(ev.get("organ_probe") or {})
        for j, (g, (_, colour)) in enumerate(zip(gains, GAIN_LEGEND, strict=True)):
            if not g.get("n") or g.get("image_gain_ci") is None:
                continue
            lo, hi = g["image_gain_ci"]
            pos = x + (j - 1.5) * 0.2
            axes[1].bar(pos, g["image_gain"], width=0.2, color=colour)
            axes[1].errorbar(
                pos,
                g["image_gain"],
                yerr=[[g["image_gain"] - lo], [hi - g["image_gain"]]],
                color="k",
            )
    axes[0].set_ylim(0, 1)
    axes[0].set_title("closed (yes/no) accuracy, 95% CI")
    axes[0].plot([], [], "o", color="#f58518", label="image-blind control")
    axes[0].plot([], [], "--", color="#e45756", label="majority baseline")
    axes[0].legend(fontsize=7)
    axes[1].axhline(0, color="k", linewidth=0.8)
    axes[1].set_title("image gain (with image − blind), 95% CI")
    # proxy patches: an empty bar() keeps no colour for the legend
    handles = [Patch(color=colour, label=name) for name, colour in GAIN_LEGEND]
    axes[1].legend(handles=handles, fontsize=7)
    for ax in axes:
        ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=7, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
