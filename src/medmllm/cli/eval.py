"""``medmllm eval``: run benchmarks, list tasks and metrics, render reports.

Thin over :mod:`medmllm.eval`: options are parsed and checked here (before any model loads), the
work happens in :func:`medmllm.eval.runner.run_eval`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from medmllm.errors import InvalidRequestError

eval_app = typer.Typer(
    help="Evaluate a model on medical benchmarks (resumable; results.json + report.html).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _load_backend(backend: str | None) -> str | None:
    """``module:Class`` registers a plugin backend on the fly (also used by tests)."""
    if backend and ":" in backend:
        from medmllm.models.generator import BACKENDS

        if backend not in BACKENDS:
            BACKENDS.register_lazy(backend, backend)
    return backend


@eval_app.callback()
def run(
    ctx: typer.Context,
    tasks: str | None = typer.Option(
        None, "--tasks", "-t", help="Comma-separated task names (see `medmllm eval list`)."
    ),
    task_file: list[Path] = typer.Option(  # noqa: B008
        [], "--task-file", help="Your own task.yaml (repeatable)."
    ),
    backend: str | None = typer.Option(
        None, "--backend", "-b", help="hf, llamacpp, openai or module:Class (default: auto)."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Hub id, model folder, GGUF file; default: the embedded model."
    ),
    base_url: str | None = typer.Option(None, "--base-url", help="openai backend server URL."),
    mode: str = typer.Option("mc", "--mode", help="mc (log-likelihood), gen or cot."),
    fewshot: int | None = typer.Option(None, "--fewshot", help="Exemplars (default: task's)."),
    limit: int | None = typer.Option(None, "--limit", help="First N items of each task."),
    seed: int = typer.Option(1234, "--seed", help="Seed for sampling and bootstrap."),
    debias: bool = typer.Option(
        False, "--debias", help="Also score every cyclic option rotation (n_options× calls)."
    ),
    samples: int = typer.Option(1, "--samples", help="Self-consistency samples (gen/cot)."),
    bias: bool = typer.Option(False, "--bias", help="Counterfactual sex/race/age swaps."),
    no_context: bool = typer.Option(
        False, "--no-context", help="Leave the context (e.g. PubMedQA abstract) out."
    ),
    rag: str | None = typer.Option(
        None, "--rag", help="Index name: retrieve passages for each question (MIRAGE style)."
    ),
    rag_k: int = typer.Option(3, "--rag-k", help="Passages per question with --rag."),
    data: Path | None = typer.Option(  # noqa: B008
        None, "--data", help="Data file for a single task (overrides its dataset.path)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder."),  # noqa: B008
    cache: Path | None = typer.Option(  # noqa: B008
        None, "--cache", help="SQLite call cache (default: MEDMLLM_HOME/cache/eval)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the cache."),
    batch_size: int = typer.Option(16, "--batch-size", help="Items per batch of model calls."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Generation length."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    shard: str | None = typer.Option(
        None, "--shard", help="Evaluate shard i/n of the items (merge with `eval merge`)."
    ),
) -> None:
    """Run tasks: `medmllm eval --tasks medmcqa --limit 100`."""
    if ctx.invoked_subcommand is not None:
        return
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.eval.task import Task, load_task

    names = [t.strip() for t in (tasks or "").split(",") if t.strip()]
    if not names and not task_file:
        raise InvalidRequestError(
            "no task given", hint="pass --tasks medmcqa,pubmedqa (see `medmllm eval list`)"
        )
    loaded: list[Task] = [load_task(n) for n in names] + [Task.from_file(f) for f in task_file]
    if data is not None:
        if len(loaded) != 1:
            raise InvalidRequestError(
                f"--data applies to one task, got {len(loaded)}", hint="run one task per --data"
            )
        loaded[0].data_override = [data]
    options = EvalOptions(
        mode=mode,  # type: ignore[arg-type]
        limit=limit,
        seed=seed,
        fewshot=fewshot,
        debias=debias,
        samples=samples,
        bias=bias,
        include_context=False if no_context else None,
        rag_k=rag_k,
        batch_size=batch_size,
        max_tokens=max_tokens,
        shard=_parse_shard(shard),
    )
    retriever = None
    if rag:
        from medmllm.rag.index import open_index

        retriever = open_index(rag)
    from medmllm.models.generator import load_generator

    generator = load_generator(
        _load_backend(backend), model, **({"base_url": base_url} if base_url else {})
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = out or Path("eval-runs") / f"{stamp}-{'-'.join(t.name for t in loaded)}"
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    try:
        results = _run_with_progress(
            _shard_runner() if shard else run_eval,
            loaded,
            generator,
            options,
            out_dir,
            ":memory:" if no_cache else cache,
            retriever,
            console,
            quiet,
        )
    finally:
        generator.close()
    print_summary(results, Console(highlight=False))
    Console(highlight=False).print(
        f"[dim]{time.perf_counter() - started:.1f} s · cache {results['run']['cache']['hits']} hits"
        f" / {results['run']['cache']['misses']} misses · wrote {out_dir}/results.json and "
        "report.html[/]"
    )


def _parse_shard(spec: str | None) -> tuple[int, int] | None:
    from medmllm.eval.shard import parse_shard

    return parse_shard(spec) if spec else None


def _shard_runner():
    from medmllm.eval.shard import run_shard

    return run_shard


@eval_app.command("merge")
def merge_cmd(
    shards: list[Path] = typer.Argument(..., help="Shard folders (from eval --shard i/n -o DIR)."),  # noqa: B008
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the merged run."),  # noqa: B008
    rag: str | None = typer.Option(None, "--rag", help="The index the shards used with --rag."),
) -> None:
    """Merge evaluation shards into one results.json + report (as one unsharded run)."""
    from medmllm.eval.shard import merge_shards

    retriever = None
    if rag:
        from medmllm.rag.index import open_index

        retriever = open_index(rag)
    results = merge_shards(shards, out_dir=out, retriever=retriever)
    print_summary(results, Console(highlight=False))
    Console(highlight=False).print(f"[dim]merged {len(shards)} shards → {out}/results.json[/]")


def _run_with_progress(
    run_eval, tasks, generator, options, out_dir, cache, retriever, console, quiet
):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if quiet:
        return run_eval(
            tasks, generator, options, out_dir=out_dir, cache_path=cache, retriever=retriever
        )
    bars: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:

        def update(label: str, done: int, total: int) -> None:
            if label not in bars:
                bars[label] = progress.add_task(label, total=total)
            progress.update(bars[label], completed=done)

        return run_eval(
            tasks,
            generator,
            options,
            out_dir=out_dir,
            cache_path=cache,
            retriever=retriever,
            progress=update,
        )


def print_summary(results: dict, console: Console) -> None:
    """The short table printed after a run."""
    table = Table(title=f"{results['model']['backend']} · {results['model']['model']}")
    for col in (
        "task",
        "n",
        "metric",
        "value [95% CI]",
        "majority baseline",
        "predictions",
        "invalid",
        "debiased",
    ):
        table.add_column(col)
    for s in results["tasks"].values():
        name = next(iter(s["metrics"]), "")
        m = s["metrics"].get(name, {})
        base = (s.get("majority_baseline") or {}).get(name) or {}
        value = (
            "–"
            if m.get("value") is None
            else (f"{m['value']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]")
        )
        deb = (s.get("debiased") or {}).get("metrics", {}).get("accuracy", {})
        dist = s.get("prediction_distribution", {})
        table.add_row(
            s["task"],
            str(s["n"]),
            name,
            value,
            "–"
            if base.get("value") is None
            else f"{base['value']:.3f} ({str(base['label'])[:12]})",
            " ".join(f"{k}:{v}" for k, v in dist.items())
            if s.get("output_type") == "multiple_choice"
            else "(text)",
            str(s.get("invalid", 0)),
            "–" if not deb else f"{deb['value']:.3f}",
        )
    console.print(table)


@eval_app.command("list")
def list_cmd(
    metrics: bool = typer.Option(False, "--metrics", help="List metrics instead of tasks."),
) -> None:
    """List the registered tasks (or metrics)."""
    console = Console(highlight=False)
    if metrics:
        from medmllm.eval.metrics import GROUPS, METRICS

        table = Table("metric", "kind", "description")
        for name in METRICS.names():
            m = METRICS.get(name)
            table.add_row(name, "per item" if m.per_item else "corpus", m.description)
        for name, members in GROUPS.items():
            table.add_row(name, "group", " + ".join(members))
        console.print(table)
        return
    from medmllm.eval.task import list_tasks

    table = Table("task", "type", "metrics", "description")
    for cfg in list_tasks():
        table.add_row(cfg.name, cfg.output_type, ", ".join(cfg.metrics), cfg.description)
    console.print(table)


@eval_app.command("report")
def report_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folder(s) with results.json."),  # noqa: B008
    out: Path | None = typer.Option(  # noqa: B008
        None, "--out", "-o", help="HTML file (default: report.html in the first folder)."
    ),
) -> None:
    """Re-render report.html (several folders: side by side, e.g. RAG vs no RAG)."""
    from medmllm.eval.report import load_results, write_report

    data = [load_results(r) for r in runs]
    target = out or (runs[0] if runs[0].is_dir() else runs[0].parent) / "report.html"
    write_report(data, target)
    Console(highlight=False).print(f"wrote {target}")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


@eval_app.command("judge")
def judge_cmd(
    run_dir: Path = typer.Argument(..., help="Folder of a gen/cot run (results.json)."),  # noqa: B008
    task: str = typer.Option(..., "--task", help="Which task of the run to judge."),
    backend: str | None = typer.Option(None, "--backend", "-b", help="Judge backend."),
    model: str | None = typer.Option(None, "--model", "-m", help="Judge model."),
    base_url: str | None = typer.Option(None, "--base-url", help="openai backend server URL."),
    limit: int | None = typer.Option(None, "--limit", help="Judge the first N answers."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Default: RUN_DIR/judge.json."),  # noqa: B008
) -> None:
    """Rubric-score a run's free-text answers with an LLM judge (position-swapped)."""
    import json

    from medmllm.eval.cache import CachedGenerator, CallCache
    from medmllm.eval.judge import judge_questions, judge_run
    from medmllm.eval.report import load_results
    from medmllm.eval.runner import default_cache_path
    from medmllm.eval.task import load_task
    from medmllm.models.generator import load_generator

    results = load_results(run_dir)
    if task not in results["tasks"]:
        raise InvalidRequestError(
            f"run {run_dir} has no task {task!r}", hint=f"one of: {', '.join(results['tasks'])}"
        )
    ids = [r["id"] for r in results["tasks"][task]["items"]]
    questions = judge_questions(load_task(task), ids)
    generator = load_generator(
        _load_backend(backend), model, **({"base_url": base_url} if base_url else {})
    )
    cache = CallCache(default_cache_path())
    try:
        summary = judge_run(
            CachedGenerator(generator, cache), results, questions, task=task, limit=limit
        )
    finally:
        cache.close()
        generator.close()
    summary.update(
        system=run_dir.name,
        task=task,
        judge={"backend": generator.backend, "model": generator.model_id},
    )
    target = out or run_dir / "judge.json"
    target.write_text(json.dumps(summary, indent=2))
    table = Table("criterion", "mean [95% CI]", "n")
    for c, v in summary["criteria"].items():
        ci = v["ci"]
        mean = "–" if v["mean"] is None else f"{v['mean']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
        table.add_row(c, mean, str(v["n"]))
    console = Console(highlight=False)
    console.print(table)
    console.print(f"position gap {summary['position_gap']} · wrote {target}")


@eval_app.command("export-sheet")
def export_sheet_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders; each folder name is a system."),  # noqa: B008
    task: str = typer.Option(..., "--task", help="Which task's answers to rate."),
    out: Path = typer.Option(Path("sheet.csv"), "--out", "-o", help=".csv or .jsonl sheet."),  # noqa: B008
    limit: int | None = typer.Option(None, "--limit", help="First N answers per system."),
    seed: int = typer.Option(0, "--seed", help="Row shuffle seed."),
) -> None:
    """Write a blinded human-annotation sheet (+ a separate key file)."""
    from medmllm.eval.human import export_sheet
    from medmllm.eval.judge import judge_questions
    from medmllm.eval.report import load_results
    from medmllm.eval.task import load_task

    runs = {d.name: load_results(d) for d in run_dirs}
    ids = [r["id"] for res in runs.values() for r in res["tasks"].get(task, {}).get("items", [])]
    sheet, key = export_sheet(
        runs, judge_questions(load_task(task), ids), out, task=task, seed=seed, limit=limit
    )
    Console(highlight=False).print(f"wrote {sheet} (give to raters) and {key} (keep private)")


@eval_app.command("import-sheets")
def import_sheets_cmd(
    sheets: list[Path] = typer.Argument(..., help="Filled sheets, one per rater."),  # noqa: B008
    key: Path = typer.Option(..., "--key", help="The key file written with the sheet."),  # noqa: B008
    judge: list[Path] = typer.Option([], "--judge", help="judge.json files to compare with."),  # noqa: B008
    out: Path = typer.Option(Path("agreement.json"), "--out", "-o", help="Output JSON."),  # noqa: B008
) -> None:
    """Inter-rater (Cohen, Fleiss) and judge–human agreement from filled sheets."""
    import json

    from medmllm.errors import DataNotFoundError
    from medmllm.eval.human import agreement, import_sheets

    if not key.is_file():
        raise DataNotFoundError(f"key file not found: {key}", hint="pass the *.key.json")
    mapping = json.loads(key.read_text())["key"]
    judged: dict[str, dict] = {}
    for path in judge:
        data = json.loads(path.read_text())
        by_item = {row["id"]: row for row in data["items"]}
        for sheet_id, where in mapping.items():
            if where["system"] == data.get("system") and where["item_id"] in by_item:
                judged[sheet_id] = by_item[where["item_id"]]
    stats = agreement(import_sheets(sheets), judged or None)
    out.write_text(json.dumps(stats, indent=2))
    table = Table("criterion", "Fleiss kappa", "Cohen kappa (pairs)", "judge-human kappa")
    for c, v in stats["criteria"].items():
        cohen = ", ".join(f"{k}: {_fmt(x['kappa_quadratic'])}" for k, x in v["cohen"].items())
        fk = v.get("fleiss_kappa")
        jh = (v.get("judge_human") or {}).get("kappa_quadratic")
        table.add_row(c, _fmt(fk), cohen or "–", _fmt(jh))
    Console(highlight=False).print(table)


def register(app: typer.Typer) -> None:
    """Attach ``eval`` to the root app."""
    app.add_typer(eval_app, name="eval")
