"""Survey experiment 3: which training stage helps? base vs CPT vs IFT vs SFT vs CPT→IFT→SFT (→DPO).

Every stage is a LoRA run of the same base model with the shipped recipes; every resulting model
is evaluated by the evaluation harness on rows that no stage trained on:

- MedMCQA / MedQA: the held-apart 20% of the developer MCQA files (the ``mcqa`` data builder's
  hash split; SFT and DPO train on the other 80%);
- PubMedQA: the held-apart 20% of ``pqal_dev`` (CPT on PubMedQA is not used here);
- MTS-Dialog validation (dialogue → note section, generation; ROUGE-L / BLEU / METEOR).

Output in ``out_dir``: ``results.json`` (per stage and task: metric, 95% CI, majority baseline,
prediction distribution, training summary), ``table.md`` and ``stages.png``. Training runs and
evaluations are resumable (rerunning the command reuses finished stages).

Honest reading: with the CPU preset a 135M model sees a few hundred training tokens per stage;
differences inside the CIs mean "no measurable effect", not "no effect at scale".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from medmllm.provenance import environment

Preset = Literal["cpu", "gpu"]
MC_TASKS = ("medmcqa", "medqa", "pubmedqa")
# "bleu" in a task expands to bleu1-4 + sacrebleu; the table shows corpus-level sacreBLEU (0-1)
GEN_METRICS = ("rouge_l", "sacrebleu", "meteor")
HELD_FILES = {
    "medmcqa": "mcqa/medmcqa_dev.jsonl",
    "medqa": "mcqa/medqa_dev.jsonl",
    "pubmedqa": "pubmedqa/pqal_dev.jsonl",
}


class StagesPreset(BaseModel):
    """Settings of one preset of the experiment (every field can be overridden by options)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Base model (None: the embedded SmolLM2-135M).")
    steps: dict[str, int] = Field(description="Optimizer steps per stage (cpt, ift, sft, dpo).")
    max_length: int = Field(256, description="Training sequence length.")
    batch_size: int = Field(2, description="Examples per step.")
    learning_rate: float = Field(2e-4, description="LoRA learning rate (DPO uses a quarter).")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Training precision.")
    data_limit: int = Field(2000, description="Rows per training dataset.")
    eval_limit: int | None = Field(None, description="Items per MC task (None: all held apart).")
    mts_limit: int = Field(20, description="MTS-Dialog validation dialogues generated.")
    mts_max_tokens: int = Field(64, description="Tokens generated per note section.")
    stages: list[str] = Field(
        default_factory=lambda: ["base", "cpt", "ift", "sft", "cpt+ift+sft", "cpt+ift+sft+dpo"],
        description="Stages to run, in order.",
    )


PRESETS: dict[str, StagesPreset] = {
    "cpu": StagesPreset(steps={"cpt": 60, "ift": 60, "sft": 60, "dpo": 30}, max_length=256),
    "gpu": StagesPreset(
        model="HuggingFaceTB/SmolLM2-1.7B-Instruct",
        steps={"cpt": 500, "ift": 500, "sft": 500, "dpo": 200},
        max_length=1024,
        batch_size=8,
        precision="bf16",
        data_limit=10000,
        mts_limit=100,
        mts_max_tokens=256,
    ),
}

# stage → list of (recipe, config name) trained in sequence, each on the previous adapter
PIPELINES: dict[str, list[str]] = {
    "base": [],
    "cpt": ["cpt"],
    "ift": ["ift"],
    "sft": ["sft"],
    "cpt+ift+sft": ["cpt", "ift", "sft"],
    "cpt+ift+sft+dpo": ["cpt", "ift", "sft", "dpo"],
}


def _recipe_config(recipe: str, preset: StagesPreset, out: Path, adapter: str | None) -> Any:
    from medmllm.train import cpt, dpo, ift, sft

    common: dict[str, Any] = {
        "model": preset.model,
        "adapter": adapter,
        "output_dir": out,
        "max_steps": preset.steps[recipe],
        "save_steps": max(1, preset.steps[recipe] // 2),
        "max_length": preset.max_length,
        "batch_size": preset.batch_size,
        "learning_rate": preset.learning_rate / (4 if recipe == "dpo" else 1),
        "precision": preset.precision,
        "progress": True,  # a bar with loss and samples/s per training run
    }
    limit = {"limit": preset.data_limit}
    if recipe == "cpt":
        return cpt.CPTRunConfig(**common, data={"builder": "medquad_cpt", **limit})
    if recipe == "ift":
        return ift.IFTRunConfig(**common, data={"builder": "medquad_ift", **limit})
    # MCQA rows in the harness's own prompt format, without a chat template: the harness scores
    # options by log-likelihood of the raw prompt, so this is what the stage is measured on.
    if recipe == "sft":
        return sft.SFTRunConfig(**common, chat=False, data={"builder": "mcqa", **limit})
    return dpo.DPORunConfig(**common, chat=False, data={"builder": "mcqa_pairs", **limit})


def _train_recipe(recipe: str, config: Any) -> dict[str, Any]:
    import importlib

    from medmllm.train.recipe import RESULT_FILE, read_result

    if (Path(config.output_dir) / RESULT_FILE).is_file():
        return read_result(config.output_dir)  # finished earlier: reuse
    return importlib.import_module(f"medmllm.train.{recipe}").train(config)


def train_stage(stage: str, preset: StagesPreset, runs: Path) -> tuple[str | None, list[dict]]:
    """Train a stage's pipeline (reusing shared prefixes); returns its adapter and summaries."""
    adapter: str | None = None
    summaries = []
    for i, recipe in enumerate(PIPELINES[stage]):
        name = "+".join(PIPELINES[stage][: i + 1])  # cpt, cpt+ift, … shared between stages
        result = _train_recipe(recipe, _recipe_config(recipe, preset, runs / name, adapter))
        adapter = result["output"]
        summaries.append({"run": name, **{k: result.get(k) for k in _SUMMARY_KEYS}})
    return adapter, summaries


_SUMMARY_KEYS = ("global_step", "final_loss", "train_runtime_s", "num_input_tokens_seen")


def write_heldout(out_dir: Path, preset: StagesPreset) -> dict[str, Path]:
    """Held-apart rows (never trained on) as JSONL files + the MTS-Dialog task YAML."""
    import yaml

    from medmllm.train.data import DataConfig, held_apart_rows, load_dataset

    folder = out_dir / "heldout"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for task, file in HELD_FILES.items():
        rows = held_apart_rows(DataConfig(), file)
        path = folder / f"{task}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths[task] = path
    val = load_dataset(DataConfig(builder="mts_dialog", split="validation"), "prompt_completion")
    mts = folder / "mts_dialog_validation.jsonl"
    mts.write_text(
        "".join(
            json.dumps({"id": str(r.get("id")), "question": r["prompt"], "answer": r["completion"]})
            + "\n"
            for r in val.rows[: preset.mts_limit]
        ),
        encoding="utf-8",
    )
    task_file = folder / "mts_dialog.yaml"
    task_file.write_text(
        yaml.safe_dump(
            {
                "name": "mts_dialog",
                "description": "MTS-Dialog validation: dialogue → clinical-note section",
                "output_type": "generate",
                "dataset": {"path": str(mts.resolve()), "split": "validation"},
                "fields": {"options": None},
                "prompt": {"template": "{{ question }}", "instruction": ""},
                "answer_type": "free",
                "generation": {"max_tokens": preset.mts_max_tokens},
                "metrics": ["rouge_l", "bleu", "meteor"],
            }
        ),
        encoding="utf-8",
    )
    paths["mts_dialog"] = task_file
    return paths


def evaluate_stage(
    adapter: str | None, preset: StagesPreset, heldout: dict[str, Path], out: Path
) -> dict[str, Any]:
    """Evaluate one stage's model with the harness on the held-apart rows + MTS generation."""
    from medmllm.eval import EvalOptions, run_eval
    from medmllm.eval.task import load_task
    from medmllm.models.generator import load_generator

    generator = load_generator("hf", adapter or preset.model)
    tasks = []
    for name in MC_TASKS:
        task = load_task(name)
        task.data_override = [heldout[name]]
        tasks.append(task)
    mc = run_eval(
        tasks,
        generator,
        EvalOptions(limit=preset.eval_limit),
        out_dir=out / "mc",
        cache_path=out / "cache.sqlite",
        report=False,
    )
    gen = run_eval(
        [load_task(heldout["mts_dialog"])],
        generator,
        EvalOptions(mode="gen"),
        out_dir=out / "gen",
        cache_path=out / "cache.sqlite",
        report=False,
    )
    return {**mc["tasks"], **gen["tasks"]}


def _row(task_result: dict[str, Any], metric: str) -> dict[str, Any]:
    m = task_result["metrics"].get(metric) or {}
    base = task_result.get("majority_baseline", {}).get(metric)
    base_value = base.get("value") if isinstance(base, dict) else base
    return {"value": m.get("value"), "ci": m.get("ci"), "n": m.get("n"), "majority": base_value}


def summarise(per_stage: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """stage → task → {value, ci, n, majority, prediction_distribution} (+ generation metrics)."""
    table: dict[str, dict[str, Any]] = {}
    for stage, tasks in per_stage.items():
        table[stage] = {}
        for name in MC_TASKS:
            table[stage][name] = {
                **_row(tasks[name], "accuracy"),
                "prediction_distribution": tasks[name].get("prediction_distribution"),
            }
        gen = tasks["mts_dialog"]
        table[stage]["mts_dialog"] = {m: _row(gen, m) for m in GEN_METRICS}
    return table


def _fmt(cell: dict[str, Any]) -> str:
    if cell.get("value") is None:
        return "n/a"
    ci = cell.get("ci")
    return f"{cell['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{cell['value']:.3f}"


def write_table(table: dict[str, dict[str, Any]], path: Path) -> str:
    """A Markdown table: accuracy [95% CI] per MC task (majority baseline in the header),
    ROUGE-L / sacreBLEU / METEOR on MTS-Dialog (constant-answer baseline in the header), and
    the most frequent predicted letter."""
    first = next(iter(table.values()))
    header = ["stage"]
    for name in MC_TASKS:
        maj = first[name]["majority"]
        header.append(f"{name} acc (majority {maj:.3f})" if maj is not None else name)
    for metric, title in zip(GEN_METRICS, ("ROUGE-L", "sacreBLEU", "METEOR"), strict=True):
        # the trivial baseline of a generation task: one reference note written for every dialogue
        const = first["mts_dialog"][metric]["majority"]
        header.append(f"MTS {title} (constant {const:.3f})" if const is not None else title)
    header.append("top MedMCQA prediction")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage, row in table.items():
        dist = row["medmcqa"].get("prediction_distribution") or {}
        total = sum(dist.values()) or 1
        top = max(dist, key=lambda k: dist[k]) if dist else None
        top_s = f"{top} ({dist[top] / total:.0%})" if top else "n/a"
        cells = [stage, *(_fmt(row[n]) for n in MC_TASKS)]
        cells += [_fmt(row["mts_dialog"][m]) for m in GEN_METRICS] + [top_s]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def plot(table: dict[str, dict[str, Any]], path: Path) -> None:
    """Accuracy with 95% CIs per stage and task; dashed lines: majority / constant baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(table)
    fig, axes = plt.subplots(1, len(MC_TASKS) + 1, figsize=(4 * (len(MC_TASKS) + 1), 3.6))
    for ax, name in zip(axes, [*MC_TASKS, "mts_dialog"], strict=True):
        if name == "mts_dialog":
            cells = [table[s][name]["rouge_l"] for s in stages]
            ax.set_title("MTS-Dialog ROUGE-L")
        else:
            cells = [table[s][name] for s in stages]
            ax.set_title(f"{name} accuracy")
        values = [c["value"] or 0.0 for c in cells]
        err = [
            [
                max(0.0, v - c["ci"][0]) if c.get("ci") else 0
                for v, c in zip(values, cells, strict=True)
            ],
            [
                max(0.0, c["ci"][1] - v) if c.get("ci") else 0
                for v, c in zip(values, cells, strict=True)
            ],
        ]
        ax.bar(range(len(stages)), values, yerr=err, capsize=3, color="#4c72b0")
        if cells[0].get("majority") is not None:
            label = "constant answer" if name == "mts_dialog" else "majority"
            ax.axhline(cells[0]["majority"], ls="--", color="grey", label=label)
            ax.legend(fontsize=7)
        ax.set_xticks(range(len(stages)), stages, rotation=35, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(preset: Preset, out_dir: Path, **options: Any) -> dict[str, Any]:
    """Train every stage, evaluate each on held-apart rows, write results.json/table.md/stages.png.

    Args:
        preset: ``cpu`` (embedded model, minutes) or ``gpu`` (SmolLM2-1.7B from the hub).
        out_dir: output folder (resumable).
        **options: overrides of :class:`StagesPreset` fields (e.g. ``steps={...}``,
            ``eval_limit=50``, ``stages=["base", "sft"]``).
    """
    from medmllm.train.core import _atomic_write_json, validate_config

    base = PRESETS[preset].model_dump()
    settings = validate_config(StagesPreset, {**base, **options}, f"preset {preset} + options")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heldout = write_heldout(out, settings)
    per_stage: dict[str, dict[str, Any]] = {}
    training: dict[str, list[dict]] = {}
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    for i, stage in enumerate(settings.stages, 1):
        label = f"[{i}/{len(settings.stages)}] {stage}"
        console.print(f"{label}: training {' → '.join(PIPELINES[stage]) or 'nothing (base)'}")
        adapter, training[stage] = train_stage(stage, settings, out / "runs")
        console.print(f"{label}: evaluating on the held-apart rows ({_elapsed(started)})")
        per_stage[stage] = evaluate_stage(adapter, settings, heldout, out / "eval" / stage)
        console.print(f"{label}: done ({_elapsed(started)})")
    table = summarise(per_stage)
    markdown = write_table(table, out / "table.md")
    plot(table, out / "stages.png")
    result = {
        "experiment": "training-stages",
        "preset": preset,
        "settings": settings.model_dump(),
        "table": table,
        "training": training,
        "heldout_rows": {k: str(v) for k, v in heldout.items()},
        "environment": environment(),
    }
    _atomic_write_json(out / "results.json", result)
    print(markdown)
    console.print(f"wrote {out}/results.json, table.md, stages.png in {_elapsed(started)}")
    return result


def _elapsed(started: float) -> str:
    minutes, seconds = divmod(int(time.perf_counter() - started), 60)
    return f"{minutes} min {seconds:02d} s"
