"""Survey experiment 3: which training stage helps? base vs CPT vs IFT vs SFT vs CPT→IFT→SFT (→DPO)
vs SFT on MTS-Dialog.

Every stage is a LoRA run of the same base model with the shipped recipes; every resulting model
is evaluated on rows that no stage trained on:

- MedMCQA / MedQA: the held-apart 20% of the developer MCQA files (the ``mcqa`` data builder's
  hash split; SFT and DPO train on the other 80%);
- PubMedQA: the held-apart 20% of ``pqal_dev`` (CPT on PubMedQA is not used here);
- MTS-Dialog validation (dialogue + section header → note section; ROUGE-L / BLEU / METEOR),
  generated for the ``mts_stages`` (cpu preset: base and ``sft_mts``), next to two
  constant-answer baselines chosen on training rows (:mod:`medmllm.experiments.mts_dialog`).
  The ``sft_mts`` stage trains on the training dialogues minus a 10% tune split (on which its
  settings were chosen) and minus training rows that copy a validation dialogue.

Output in ``out_dir``: ``results.json`` (per stage and task: metric, 95% CI, baseline,
prediction distribution, paired ROUGE-L differences, training summary, wall and CPU seconds),
``table.md`` and ``stages.png``. Training runs and evaluations are resumable (rerunning the
command reuses finished stages).

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

from medmllm.provenance import cpu_seconds, environment
from medmllm.train.core import LoraOptions

Preset = Literal["cpu", "gpu"]
MC_TASKS = ("medmcqa", "medqa", "pubmedqa")
# "bleu" in a task expands to bleu1-4 + sacrebleu; the table shows corpus-level sacreBLEU (0-1)
GEN_METRICS = ("rouge_l", "sacrebleu", "meteor")
HELD_FILES = {
    "medmcqa": "mcqa/medmcqa_dev.jsonl",
    "medqa": "mcqa/medqa_dev.jsonl",
    "pubmedqa": "pubmedqa/pqal_dev.jsonl",
}
MTS_STAGE = "sft_mts"


class StagesPreset(BaseModel):
    """Settings of one preset of the experiment (every field can be overridden by options)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Base model (None: the embedded SmolLM2-135M).")
    steps: dict[str, int] = Field(
        description="Optimizer steps per recipe (cpt, ift, sft, dpo, sft_mts)."
    )
    max_length: int = Field(256, description="Training sequence length (MCQA/MedQuAD stages).")
    batch_size: int = Field(2, description="Examples per step.")
    learning_rate: float = Field(2e-4, description="LoRA learning rate (DPO uses a quarter).")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Training precision.")
    data_limit: int = Field(2000, description="Rows per training dataset.")
    eval_limit: int | None = Field(None, description="Items per MC task (None: all held apart).")
    mc_tasks: list[str] = Field(
        default_factory=lambda: list(MC_TASKS),
        description="Multiple-choice tasks evaluated (empty: MTS-Dialog only, e.g. while tuning "
        "the MTS stage on the tune split).",
    )
    mts_split: Literal["validation", "tune"] = Field(
        "validation",
        description="MTS-Dialog rows generated for: the held-apart validation rows, or the tune "
        "split carved from training dialogues (for choosing the MTS stage's settings).",
    )
    mts_limit: int | None = Field(
        None, description="MTS-Dialog rows generated (None: all of mts_split)."
    )
    mts_max_tokens: int = Field(
        128,
        description="Cap on tokens generated per note section; below it each section header "
        "gets the 90th percentile of its training notes' lengths.",
    )
    mts_gen_batch_size: int = Field(16, description="Dialogues generated per batch.")
    mts_stages: list[str] | None = Field(
        default_factory=lambda: ["base", MTS_STAGE],
        description="Stages whose model writes the MTS-Dialog sections (None: every stage). "
        "The cpu preset skips the MCQA/MedQuAD stages, which do not train on MTS-Dialog: 100 "
        "generations cost ~3 CPU-minutes per stage.",
    )
    mts_max_length: int = Field(768, description="Training sequence length of the MTS stage.")
    mts_batch_size: int = Field(4, description="Packed sequences per step of the MTS stage.")
    mts_learning_rate: float = Field(1e-3, description="Learning rate of the MTS stage.")
    mts_lora: LoraOptions = Field(
        default_factory=LoraOptions, description="LoRA settings of the MTS stage."
    )
    mts_augmented: bool = Field(
        False, description="MTS stage: also train on the back-translations of its training rows."
    )
    stages: list[str] = Field(
        default_factory=lambda: [
            "base",
            "cpt",
            "ift",
            "sft",
            "cpt+ift+sft",
            "cpt+ift+sft+dpo",
            MTS_STAGE,
        ],
        description="Stages to run, in order.",
    )


PRESETS: dict[str, StagesPreset] = {
    "cpu": StagesPreset(
        steps={"cpt": 60, "ift": 60, "sft": 60, "dpo": 30, MTS_STAGE: 40}, max_length=256
    ),
    "gpu": StagesPreset(
        model="HuggingFaceTB/SmolLM2-1.7B-Instruct",
        steps={"cpt": 500, "ift": 500, "sft": 500, "dpo": 200, MTS_STAGE: 500},
        max_length=1024,
        batch_size=8,
        precision="bf16",
        data_limit=10000,
        mts_max_tokens=256,
        mts_max_length=2048,
        mts_batch_size=8,
        mts_learning_rate=2e-4,
        mts_augmented=True,
        mts_stages=None,
    ),
}

# stage → list of recipes trained in sequence, each on the previous adapter
PIPELINES: dict[str, list[str]] = {
    "base": [],
    "cpt": ["cpt"],
    "ift": ["ift"],
    "sft": ["sft"],
    "cpt+ift+sft": ["cpt", "ift", "sft"],
    "cpt+ift+sft+dpo": ["cpt", "ift", "sft", "dpo"],
    MTS_STAGE: [MTS_STAGE],
}
# recipe → the medmllm.train module that trains it
RECIPE_MODULES = {"cpt": "cpt", "ift": "ift", "sft": "sft", "dpo": "dpo", MTS_STAGE: "sft"}


def mts_data(preset: StagesPreset, split: str) -> dict[str, Any]:
    """The ``mts_dialog`` data config of the MTS stage (train) and its evaluation (tune/val)."""
    augmented = preset.mts_augmented and split == "train"
    return {"builder": "mts_dialog", "split": split, "augmented": augmented}


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
    if recipe == MTS_STAGE:
        # the harness's chat prompt (dialogue + section header, no instruction) is what the
        # stage is measured with, so it trains in the chat template; every training row
        # (no data_limit: the steps bound what it sees)
        common.update(
            max_length=preset.mts_max_length,
            batch_size=preset.mts_batch_size,
            learning_rate=preset.mts_learning_rate,
            lora=preset.mts_lora,
        )
        return sft.SFTRunConfig(**common, chat=True, data=mts_data(preset, "train"))
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
    return importlib.import_module(f"medmllm.train.{RECIPE_MODULES[recipe]}").train(config)


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
    from medmllm.experiments import mts_dialog
    from medmllm.train.data import DataConfig, held_apart_rows

    folder = out_dir / "heldout"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for task, file in HELD_FILES.items():
        rows = held_apart_rows(DataConfig(), file)
        path = folder / f"{task}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths[task] = path
    paths["mts_dialog"] = mts_dialog.write_task(
        folder, preset.mts_split, preset.mts_limit, preset.mts_max_tokens
    )
    return paths


def evaluate_stage(
    adapter: str | None,
    preset: StagesPreset,
    heldout: dict[str, Path],
    out: Path,
    budgets: dict[str, int] | None = None,
    *,
    mts: bool = True,
) -> tuple[dict[str, Any], dict[str, int] | None]:
    """Evaluate one stage's model: the harness on the held-apart MC rows, batched generation
    on the MTS-Dialog rows; returns (task → section, the MTS token budgets used)."""
    from medmllm.eval import EvalOptions, run_eval
    from medmllm.eval.task import load_task
    from medmllm.experiments import mts_dialog
    from medmllm.models.backends.hf import HFGenerator

    generator: HFGenerator = HFGenerator(adapter or preset.model)
    options = EvalOptions(limit=preset.eval_limit)
    sections: dict[str, Any] = {}
    if preset.mc_tasks:
        tasks = []
        for name in preset.mc_tasks:
            task = load_task(name)
            task.data_override = [heldout[name]]
            tasks.append(task)
        mc = run_eval(
            tasks,
            generator,
            options,
            out_dir=out / "mc",
            cache_path=out / "cache.sqlite",
            report=False,
        )
        sections.update(mc["tasks"])
    if mts:
        if budgets is None:  # the same budgets for every stage: from the base tokenizer
            budgets = mts_dialog.token_budgets(generator.tokenizer, preset.mts_max_tokens)
        sections["mts_dialog"] = mts_dialog.evaluate(
            generator,
            heldout["mts_dialog"],
            budgets,
            out / "gen",
            default_budget=preset.mts_max_tokens,
            batch_size=preset.mts_gen_batch_size,
            seed=options.seed,
        )
    generator.close()
    return sections, budgets


def _row(task_result: dict[str, Any], metric: str, baseline: float | None = None) -> dict[str, Any]:
    m = task_result["metrics"].get(metric) or {}
    if baseline is None:
        base = task_result.get("majority_baseline", {}).get(metric)
        baseline = base.get("value") if isinstance(base, dict) else base
    return {"value": m.get("value"), "ci": m.get("ci"), "n": m.get("n"), "majority": baseline}


def summarise(
    per_stage: dict[str, dict[str, Any]],
    constants: dict[str, Any],
    mc_tasks: list[str],
    *,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """stage → task → {value, ci, n, majority, prediction_distribution}; MTS cells carry the
    train-chosen constant as their baseline and the paired ROUGE-L difference to the base
    model and to each constant."""
    from medmllm.experiments.mts_dialog import paired_difference

    table: dict[str, dict[str, Any]] = {}
    const = constants["constant"]
    base_scores = per_stage.get("base", {}).get("mts_dialog", {}).get("per_item", {})
    for stage, tasks in per_stage.items():
        table[stage] = {}
        for name in mc_tasks:
            table[stage][name] = {
                **_row(tasks[name], "accuracy"),
                "prediction_distribution": tasks[name].get("prediction_distribution"),
            }
        gen = tasks.get("mts_dialog")
        if gen is None:  # not generated for this stage (mts_stages)
            continue
        cells: dict[str, Any] = {m: _row(gen, m, const["metrics"][m]["value"]) for m in GEN_METRICS}
        mine = gen["per_item"]["rouge_l"]
        cells["rouge_l_minus_constant"] = paired_difference(
            mine, const["per_item"]["rouge_l"], seed=seed
        )
        cells["rouge_l_minus_constant_per_section"] = paired_difference(
            mine, constants["constant per section"]["per_item"]["rouge_l"], seed=seed
        )
        if base_scores and stage != "base":
            cells["rouge_l_minus_base"] = paired_difference(mine, base_scores["rouge_l"], seed=seed)
        cells["harness_constant"] = {
            m: (gen.get("majority_baseline", {}).get(m) or {}).get("value") for m in GEN_METRICS
        }
        table[stage]["mts_dialog"] = cells
    return table


def _fmt(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    if cell.get("value") is None:
        return "n/a"
    ci = cell.get("ci")
    return f"{cell['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{cell['value']:.3f}"


def write_table(
    table: dict[str, dict[str, Any]], baselines: dict[str, Any], mc_tasks: list[str], path: Path
) -> str:
    """A Markdown table: accuracy [95% CI] per MC task (majority baseline in the header),
    ROUGE-L / sacreBLEU / METEOR on MTS-Dialog with the paired ROUGE-L difference to the base
    model, the most frequent predicted letter; then the two constant baselines as rows."""
    first = next(iter(table.values()))
    header = ["stage"]
    for name in mc_tasks:
        maj = first[name]["majority"]
        header.append(f"{name} acc (majority {maj:.3f})" if maj is not None else name)
    header += ["MTS ROUGE-L", "MTS sacreBLEU", "MTS METEOR", "ROUGE-L − base (paired)"]
    if mc_tasks:
        header.append(f"top {mc_tasks[0]} prediction")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage, row in table.items():
        cells = [stage, *(_fmt(row[n]) for n in mc_tasks)]
        mts = row.get("mts_dialog", {})
        cells += [_fmt(mts.get(m)) for m in GEN_METRICS] + [_fmt(mts.get("rouge_l_minus_base"))]
        if mc_tasks:
            dist = row[mc_tasks[0]].get("prediction_distribution") or {}
            total = sum(dist.values()) or 1
            top = max(dist, key=lambda k: dist[k]) if dist else None
            cells.append(f"{top} ({dist[top] / total:.0%})" if top else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    for name, section in baselines.items():
        cells = [f"*{name}*", *("—" for _ in mc_tasks)]
        cells += [_fmt(section["metrics"][m]) for m in GEN_METRICS] + ["—"]
        if mc_tasks:
            cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def plot(
    table: dict[str, dict[str, Any]], baselines: dict[str, Any], mc_tasks: list[str], path: Path
) -> None:
    """Accuracy / ROUGE-L with 95% CIs per stage and task; dashed lines: majority and the
    constant-answer baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(table)
    panels = [*mc_tasks, "mts_dialog"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        if name == "mts_dialog":
            cells = [table[s].get(name, {}).get("rouge_l", {"value": None}) for s in stages]
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
        if name == "mts_dialog":
            for (label, section), style in zip(baselines.items(), ("--", ":"), strict=False):
                value = section["metrics"]["rouge_l"]["value"]
                ax.axhline(value, ls=style, color="grey", label=f"{label} {value:.3f}")
            ax.legend(fontsize=7)
        elif cells[0].get("majority") is not None:
            ax.axhline(cells[0]["majority"], ls="--", color="grey", label="majority")
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
            ``eval_limit=50``, ``stages=["base", "sft_mts"]``, ``mts_split="tune"``).
    """
    from medmllm.experiments import mts_dialog
    from medmllm.train.core import _atomic_write_json, validate_config

    base = PRESETS[preset].model_dump()
    if "steps" in options:  # steps={"sft": 5} changes that recipe, keeps the preset's others
        options = {**options, "steps": {**base["steps"], **options["steps"]}}
    settings = validate_config(StagesPreset, {**base, **options}, f"preset {preset} + options")
    unknown = sorted(set(settings.stages) - set(PIPELINES)) + sorted(
        set(settings.mc_tasks) - set(MC_TASKS)
    )
    from medmllm.errors import ConfigError

    if unknown:
        raise ConfigError(
            f"unknown stage or task {', '.join(unknown)}",
            hint=f"stages: {', '.join(PIPELINES)}; mc_tasks: {', '.join(MC_TASKS)}",
        )
    idle = sorted(set(settings.mts_stages or []) - set(settings.stages))
    if idle and "mts_stages" in options:  # given, but it would not apply: an error
        raise ConfigError(
            f"mts_stages names {', '.join(idle)}, which this run does not run",
            hint=f"stages run: {', '.join(settings.stages)}",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heldout = write_heldout(out, settings)
    seed = 1234  # the harness's default bootstrap seed
    constants_file = out / "heldout" / "mts_constants.json"
    if constants_file.is_file():
        chosen = json.loads(constants_file.read_text(encoding="utf-8"))
    else:
        chosen = mts_dialog.choose_constants()
        _atomic_write_json(constants_file, chosen)
    baselines = mts_dialog.score_constants(chosen, heldout["mts_dialog"], seed=seed)
    per_stage: dict[str, dict[str, Any]] = {}
    training: dict[str, list[dict]] = {}
    timing: dict[str, dict[str, float]] = {}
    budgets: dict[str, int] | None = None
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    for i, stage in enumerate(settings.stages, 1):
        label = f"[{i}/{len(settings.stages)}] {stage}"
        console.print(f"{label}: training {' → '.join(PIPELINES[stage]) or 'nothing (base)'}")
        t0, c0 = time.perf_counter(), cpu_seconds()
        adapter, training[stage] = train_stage(stage, settings, out / "runs")
        t1, c1 = time.perf_counter(), cpu_seconds()
        console.print(f"{label}: evaluating on the held-apart rows ({_elapsed(started)})")
        per_stage[stage], budgets = evaluate_stage(
            adapter,
            settings,
            heldout,
            out / "eval" / stage,
            budgets,
            mts=settings.mts_stages is None or stage in settings.mts_stages,
        )
        t2, c2 = time.perf_counter(), cpu_seconds()
        timing[stage] = {
            "train_s": round(t1 - t0, 1),
            "train_cpu_s": round(c1 - c0, 1),
            "eval_s": round(t2 - t1, 1),
            "eval_cpu_s": round(c2 - c1, 1),
        }
        console.print(f"{label}: done ({_elapsed(started)})")
    table = summarise(per_stage, baselines, settings.mc_tasks, seed=seed)
    markdown = write_table(table, baselines, settings.mc_tasks, out / "table.md")
    plot(table, baselines, settings.mc_tasks, out / "stages.png")
    result = {
        "experiment": "training-stages",
        "preset": preset,
        "settings": settings.model_dump(),
        "table": table,
        "mts_baselines": {
            name: {**section["metrics"], "answer": answer}
            for (name, section), answer in zip(
                baselines.items(), (chosen["constant"], chosen["per_section"]), strict=True
            )
        },
        "mts_budgets": budgets,
        "training": training,
        "timing": {
            **timing,
            "total_s": round(time.perf_counter() - started, 1),
            "total_cpu_s": round(cpu_seconds() - cpu_started, 1),
            "note": "this run's work only: stages reused from an earlier run cost ~0 here",
        },
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
