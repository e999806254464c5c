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

from medmllm.cli.options import (
    CONCURRENCY_OPT,
    DEVICE_OPT,
    DTYPE_OPT,
    MODEL_ARG_OPT,
    TIMEOUT_OPT,
    generator_options,
)
from medmllm.errors import InvalidRequestError

eval_app = typer.Typer(
    help="Evaluate a model on medical benchmarks (resumable; results.json + report.html).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _load_backend(backend: str | None) -> str | None:
    """``module:Class`` registers a plugin backend on the fly (also used by tests).

    The class is imported and checked here, before any work: a missing module or attribute, or
    an object that is not a Generator class, is a user error with the fix.
    """
    if backend and ":" in backend:
        import importlib

        from medmllm.errors import ConfigError
        from medmllm.models.generator import BACKENDS, BaseGenerator

        module, _, attr = backend.partition(":")
        hint = "pass --backend package.module:GeneratorClass (a BaseGenerator subclass)"
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise ConfigError(
                f"--backend {backend!r}: cannot import {module!r} ({exc})", hint=hint
            ) from None
        except AttributeError:
            raise ConfigError(
                f"--backend {backend!r}: {module!r} has no {attr!r}", hint=hint
            ) from None
        if not (isinstance(obj, type) and issubclass(obj, BaseGenerator)):
            raise ConfigError(f"--backend {backend!r} is not a Generator class", hint=hint)
        if backend not in BACKENDS:
            BACKENDS.register(backend, obj)
    return backend


def _check_numbers(**values: int | None) -> None:
    """Numeric options are checked before any work (a negative seed once failed at the end)."""
    minimum = {"limit": 1, "max_tokens": 1, "rag_k": 1, "fewshot": 0, "seed": 0}
    for name, value in values.items():
        if value is not None and value < minimum[name]:
            flag = "--" + name.replace("_", "-")
            raise InvalidRequestError(
                f"{flag} must be >= {minimum[name]}, got {value}",
                hint=f"pass {flag} {max(minimum[name], 1)} or more",
            )


def _check_task_files(paths: list[Path]) -> list:
    """Load --task-file tasks; a file named like a built-in task would silently replace it."""
    from medmllm.eval.task import TASKS, Task

    loaded = []
    for path in paths:
        task = Task.from_file(path)
        if task.name in TASKS:
            raise InvalidRequestError(
                f"task file {path} is named {task.name!r}, like the built-in task",
                hint=f"rename it in the file (name: my-{task.name}); run the built-in one with "
                f"--tasks {task.name}",
            )
        loaded.append(task)
    return loaded


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
    temperature: float | None = typer.Option(
        None, "--temperature", help="Sampling temperature with --samples K > 1 (default 0.7)."
    ),
    bias: bool = typer.Option(False, "--bias", help="Counterfactual sex/race/age swaps."),
    no_context: bool = typer.Option(
        False, "--no-context", help="Leave the context (e.g. PubMedQA abstract) out."
    ),
    rag: str | None = typer.Option(
        None, "--rag", help="Index name: retrieve passages for each question (MIRAGE style)."
    ),
    rag_k: int | None = typer.Option(
        None, "--rag-k", help="Passages per question with --rag (default 3)."
    ),
    data: Path | None = typer.Option(  # noqa: B008
        None, "--data", help="Data file or folder for a single task (overrides dataset.path)."
    ),
    image_root: Path | None = typer.Option(  # noqa: B008
        None, "--image-root", help="Folder of the images (default: next to the data)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder."),  # noqa: B008
    cache: Path | None = typer.Option(  # noqa: B008
        None, "--cache", help="SQLite call cache (default: MEDMLLM_HOME/cache/eval)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the cache."),
    deid_cache: bool = typer.Option(
        False,
        "--deid-cache",
        help="Store generated replies de-identified in the cache (prompts are only hashed).",
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        help="--mode mc: items per scoring call (the backend batches their options; default 64).",
    ),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Generation length."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    device: str | None = DEVICE_OPT,
    dtype: str | None = DTYPE_OPT,
    model_arg: list[str] = MODEL_ARG_OPT,
    timeout: float | None = TIMEOUT_OPT,
    concurrency: int | None = CONCURRENCY_OPT,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an --out folder that holds a different run."
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="Evaluate shard i/n of the items (merge with `eval merge`)."
    ),
    exclude_split: Path | None = typer.Option(  # noqa: B008
        None,
        "--exclude-split",
        help="A training run's split.json (or run folder): drop the items it trained on. "
        "Default: the split.json of the run --model comes from, if any.",
    ),
    no_exclude_split: bool = typer.Option(
        False, "--no-exclude-split", help="Keep trained items even if --model's run has a split."
    ),
) -> None:
    """Run tasks: `medmllm eval --tasks medmcqa --limit 100`."""
    if ctx.invoked_subcommand is not None:
        return
    gen_options = generator_options(
        base_url=base_url,
        device=device,
        dtype=dtype,
        model_args=model_arg,
        timeout=timeout,
        concurrency=concurrency,
    )
    from medmllm.eval.runner import (
        DEFAULT_BATCH_SIZE,
        EvalOptions,
        check_applicable,
        default_run_dir,
        run_eval,
    )
    from medmllm.eval.task import Task, load_task

    names = [t.strip() for t in (tasks or "").split(",") if t.strip()]
    if not names and not task_file:
        raise InvalidRequestError(
            "no task given", hint="pass --tasks medmcqa,pubmedqa (see `medmllm eval list`)"
        )
    _check_numbers(limit=limit, max_tokens=max_tokens, rag_k=rag_k, fewshot=fewshot, seed=seed)
    _check_flags(
        mode=mode, rag=rag, rag_k=rag_k, batch_size=batch_size, cache=cache, no_cache=no_cache
    )
    loaded: list[Task] = [load_task(n) for n in names] + _check_task_files(task_file)
    backend = _load_backend(backend)
    split_path, strict = _exclude_split(exclude_split, no_exclude_split, model)
    if data is not None:
        if len(loaded) != 1:
            raise InvalidRequestError(
                f"--data applies to one task, got {len(loaded)}", hint="run one task per --data"
            )
        loaded[0].data_override = [data]
    if image_root is not None:
        if len(loaded) != 1:
            raise InvalidRequestError("--image-root applies to one task", hint="run one task")
        if loaded[0].config.output_type not in ("vqa", "report"):
            raise InvalidRequestError(
                f"--image-root does not apply: task {loaded[0].name!r} has no images",
                hint="drop --image-root (it is for vqa and report tasks)",
            )
        loaded[0].image_root_override = image_root
    options = EvalOptions(
        mode=mode,  # type: ignore[arg-type]
        limit=limit,
        seed=seed,
        fewshot=fewshot,
        debias=debias,
        samples=samples,
        temperature=temperature,
        bias=bias,
        include_context=False if no_context else None,
        rag_k=3 if rag_k is None else rag_k,
        batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
        max_tokens=max_tokens,
        concurrency=concurrency or 1,
        shard=_parse_shard(shard),
        exclude_split=str(split_path) if split_path else None,
        exclude_split_strict=strict,
    )
    check_applicable(loaded, options)  # before any model loads
    retriever = None
    if rag:
        from medmllm.rag.index import open_index

        retriever = open_index(rag)
    from medmllm.models.generator import Purpose, load_generator

    call_cache = _call_cache(cache, no_cache=no_cache, deid=deid_cache, sharded=bool(shard))
    purpose: Purpose = "score" if mode == "mc" else "chat"  # the fastest default for the job
    generator = load_generator(_load_backend(backend), model, purpose=purpose, **gen_options)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = out or default_run_dir(f"{stamp}-{'-'.join(t.name for t in loaded)}")
    if out_dir.exists() and not out_dir.is_dir():
        from medmllm.errors import OutputExistsError

        raise OutputExistsError(f"--out {out_dir} is a file", hint="pass a folder to --out")
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    try:
        results = _run_with_progress(
            _shard_runner() if shard else run_eval,
            loaded,
            generator,
            options,
            out_dir,
            call_cache,
            retriever,
            console,
            quiet,
            overwrite,
        )
    finally:
        generator.close()
    print_summary(results, Console(highlight=False))
    print_notes(results, Console(highlight=False, soft_wrap=True))
    Console(highlight=False).print(
        f"[dim]{time.perf_counter() - started:.1f} s · cache {results['run']['cache']['hits']} hits"
        f" / {results['run']['cache']['misses']} misses · wrote {out_dir}/results.json, "
        "samples.jsonl and report.html[/]"
    )


def _check_flags(
    *,
    mode: str,
    rag: str | None,
    rag_k: int | None,
    batch_size: int | None,
    cache: Path | None,
    no_cache: bool,
) -> None:
    """Flags that the rest of the command line makes meaningless are errors, not no-ops."""
    if rag_k is not None and not rag:
        raise InvalidRequestError(
            "--rag-k does not apply without --rag (no passages are retrieved)",
            hint="add --rag INDEX, or drop --rag-k",
        )
    if batch_size is not None and mode != "mc":
        raise InvalidRequestError(
            f"--batch-size does not apply to --mode {mode}: it sizes log-likelihood scoring "
            "calls; chat answers go one at a time (or --concurrency at once, openai backend)",
            hint="drop --batch-size, or use --mode mc",
        )
    if cache is not None and no_cache:
        raise InvalidRequestError(
            "--cache and --no-cache together: the cache file would be ignored",
            hint="drop one of them",
        )


def _exclude_split(given: Path | None, keep: bool, model: str | None) -> tuple[Path | None, bool]:
    """(the split.json whose trained items to drop, whether it was named explicitly).

    Without ``--exclude-split``, a local ``--model`` inside a training run folder brings that
    run's split along (said on the console), unless ``--no-exclude-split``.
    """
    from medmllm.eval.split import find_run_split, read_split

    if given is not None and keep:
        raise InvalidRequestError(
            "--exclude-split and --no-exclude-split together", hint="drop one of them"
        )
    if given is not None:
        return read_split(given).path, True
    found = None if keep else find_run_split(model)
    if found is not None:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"held apart: dropping the items {found} says the model was trained on "
            "(--no-exclude-split keeps them)"
        )
    return found, False


def print_notes(results: dict, console: Console) -> None:
    """Trained items each task dropped (and which split said so); options a task did not use."""
    held = results.get("held_apart")
    for s in results["tasks"].values():
        if held:
            console.print(
                f"{s['task']}: {s.get('excluded_trained', 0)} trained items excluded "
                f"({held['path']}, {held['source'] or 'split'}), {s['n']} evaluated"
            )
        for note in s.get("notes", []):
            console.print(f"[yellow]note:[/] {s['task']}: {note}")


def _parse_shard(spec: str | None) -> tuple[int, int] | None:
    from medmllm.eval.shard import parse_shard

    return parse_shard(spec) if spec else None


def _call_cache(cache: Path | None, *, no_cache: bool, deid: bool, sharded: bool):
    """What ``run_eval`` gets: a cache path, ``":memory:"``, or a de-identifying cache."""
    if not deid:
        return ":memory:" if no_cache else cache
    if no_cache:
        raise InvalidRequestError(
            "--deid-cache and --no-cache together store nothing", hint="drop one of them"
        )
    if sharded:
        raise InvalidRequestError(
            "--deid-cache is not supported with --shard (merge replays the shard caches)",
            hint="run the shards without --deid-cache, or evaluate unsharded",
        )
    from medmllm.eval.runner import default_cache_path
    from medmllm.safety.guard import DeidCallCache, Guard, GuardConfig

    return DeidCallCache(cache or default_cache_path(), Guard(GuardConfig(crisis_check=False)))


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
    run_eval, tasks, generator, options, out_dir, cache, retriever, console, quiet, overwrite
):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from medmllm.eval.cache import CallCache

    # a ready cache object (--deid-cache) or a path / ":memory:"
    cache_kw = {"cache": cache} if isinstance(cache, CallCache) else {"cache_path": cache}
    if quiet:
        return run_eval(
            tasks,
            generator,
            options,
            out_dir=out_dir,
            retriever=retriever,
            overwrite=overwrite,
            **cache_kw,
        )
    bars: dict[str, TaskID] = {}
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
            retriever=retriever,
            progress=update,
            overwrite=overwrite,
            **cache_kw,
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

    target = out or (runs[0] if runs[0].is_dir() else runs[0].parent) / "report.html"
    if target.is_dir():
        from medmllm.errors import OutputExistsError

        raise OutputExistsError(f"--out {target} is a folder", hint="pass an .html file path")
    data = [load_results(r) for r in runs]
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

    _check_numbers(limit=limit)
    results = load_results(run_dir)
    if task not in results["tasks"]:
        raise InvalidRequestError(
            f"run {run_dir} has no task {task!r}", hint=f"one of: {', '.join(results['tasks'])}"
        )
    ids = [r["id"] for r in results["tasks"][task]["items"]]
    questions = judge_questions(load_task(task), ids)
    generator = load_generator(
        _load_backend(backend), model, **generator_options(base_url=base_url)
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
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(json.dumps(summary, indent=2))
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    parsed = summary.get("parsed", {})
    err = Console(stderr=True, highlight=False)
    if summary["n"] and not parsed.get("answers"):
        from medmllm.errors import DataFormatError

        raise DataFormatError(
            f"the judge's output could not be parsed for any of {summary['n']} answers "
            f"(details in {target})",
            hint="use a stronger judge model (--model) that follows the rubric format",
        )
    if parsed.get("unparsed"):
        err.print(
            f"[yellow]warning:[/] {parsed['unparsed']} of {summary['n']} answers got no "
            "parsable score from the judge (left out of the means)"
        )
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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing sheet/key."),
) -> None:
    """Write a blinded human-annotation sheet (+ a separate key file)."""
    from medmllm.eval.human import check_sheet_targets, export_sheet
    from medmllm.eval.judge import judge_questions
    from medmllm.eval.report import load_results
    from medmllm.eval.task import load_task

    _check_numbers(limit=limit)
    check_sheet_targets(out, overwrite=overwrite)
    names = [d.name for d in run_dirs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise InvalidRequestError(
            f"two run folders share the system name {clash[0]!r} (the folder name)",
            hint="copy or rename one folder so that every system has its own name",
        )
    runs = {d.name: load_results(d) for d in run_dirs}
    missing = [name for name, res in runs.items() if task not in res["tasks"]]
    if missing:
        raise InvalidRequestError(
            f"run(s) {', '.join(missing)} have no task {task!r}",
            hint="pass --task with a task every run evaluated",
        )
    ids = [r["id"] for res in runs.values() for r in res["tasks"].get(task, {}).get("items", [])]
    sheet, key = export_sheet(
        runs,
        judge_questions(load_task(task), ids),
        out,
        task=task,
        seed=seed,
        limit=limit,
        overwrite=overwrite,
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

    from medmllm.errors import DataFormatError
    from medmllm.eval.human import agreement, check_against_key, import_sheets, read_key

    mapping = read_key(key)
    judged: dict[str, dict] = {}
    for path in judge:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            by_item = {row["id"]: row for row in data["items"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(
                f"{path} is not a judge.json ({type(exc).__name__}: {exc})",
                hint="pass the judge.json written by `medmllm eval judge`",
            ) from None
        for sheet_id, where in mapping.items():
            if where["system"] == data.get("system") and where["item_id"] in by_item:
                judged[sheet_id] = by_item[where["item_id"]]
    ratings = import_sheets(sheets)
    err = Console(stderr=True, highlight=False)
    for warning in check_against_key(ratings, mapping):
        err.print(f"[yellow]warning:[/] {warning}")
    stats = agreement(ratings, judged or None)
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
