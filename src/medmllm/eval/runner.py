"""The evaluation runner: tasks → cached model calls → metrics → ``results.json`` (+ report).

Modes:

* ``mc`` — log-likelihood multiple choice: every option's continuation (" A" or " yes") is
  scored after the prompt; reports accuracy, length-normalised accuracy, option probabilities
  (→ calibration) and, with ``debias``, the same after scoring every cyclic rotation of the
  options (position-bias correction, at ``n_options``× the calls).
* ``gen`` — a chat answer, parsed by robust extraction (no extractable answer = *invalid*,
  scored wrong and counted).
* ``cot`` — chain-of-thought answer; with ``samples > 1``, self-consistency (k sampled chains,
  majority vote, vote share as confidence).

Every model call goes through :class:`~medmllm.eval.cache.CachedGenerator`, batch by batch,
so a killed run resumes where it stopped and a finished run re-runs for free. Results are a
pure function of (task data, options, cached model outputs): a resumed run writes the same
numbers as an uninterrupted one.

Example:
    >>> from medmllm.eval.runner import EvalOptions, run_eval  # doctest: +SKIP
    >>> results = run_eval(["medmcqa"], generator, EvalOptions(limit=100), out_dir="runs/a")
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from medmllm.errors import InvalidRequestError, OutputExistsError, UnsupportedInputError
from medmllm.eval import metrics as M
from medmllm.eval.cache import CachedGenerator, CallCache, model_key
from medmllm.eval.calibration import calibration_report, softmax
from medmllm.eval.extract import extract
from medmllm.eval.predictions import SAMPLES_FILE, Prediction, sample_record, write_samples
from medmllm.eval.prompting import (
    chat_prompt,
    continuation,
    fewshot_prefix,
    render,
    rotate,
    with_passages,
)
from medmllm.eval.split import SplitMismatchError, TrainedSplit, read_split
from medmllm.eval.task import Item, Task, load_task
from medmllm.models.generator import Generator, LoglikelihoodRequest
from medmllm.provenance import config_hash, environment
from medmllm.rag.retriever import Retriever

Mode = Literal["mc", "gen", "cot"]
# Items per loglikelihood call: large enough that a backend fills its padded batches and sorts
# by length, small enough that a progress update and a cache commit come every few seconds.
DEFAULT_BATCH_SIZE = 64
Progress = Callable[[str, int, int], None]  # (task name, done items, total items)
DEFAULT_TEMPERATURE = 0.7  # self-consistency sampling (Wang et al. use 0.5-0.7)


@dataclass
class EvalOptions:
    """How to run (the same for every task of a run; recorded in results.json).

    Attributes:
        mode: ``mc``, ``gen`` or ``cot`` (see the module docstring).
        limit: evaluate the first N items of each task (after few-shot exemplars are set aside).
        seed: seeds sampling (self-consistency) and the bootstrap.
        fewshot: override each task's number of exemplars (None keeps the YAML's).
        debias: score all cyclic option rotations (mc mode) and report the debiased accuracy.
        samples: self-consistency samples per item (cot/gen; 1 = greedy).
        temperature: sampling temperature of self-consistency (``samples > 1``; default 0.7).
        batch_size: items per call to the model in ``mc`` mode (all their option requests go
            to ``loglikelihood`` at once, so the backend can batch and reuse prefixes; one cache
            commit each, so a killed run loses at most one batch).
        bias: run counterfactual demographic swaps on tasks marked ``bias_swaps``.
        include_context: override the tasks' ``prompt.include_context`` (e.g. PubMedQA
            without its abstract).
        rag_k: passages retrieved per question when a retriever is given.
        max_tokens: override the tasks' generation length.
        concurrency: chat requests in flight at once in ``gen``/``cot`` mode. Only for
            thread-safe backends that serve many requests (``openai`` against vLLM or a
            llama.cpp server); local in-process backends run one at a time.
        shard: ``(i, n)`` evaluates only shard i of n (1-based; :func:`in_shard`); merge the
            shards with :func:`medmllm.eval.shard.merge_shards`.
        exclude_split: a training run's ``split.json`` (or its run folder): the items it
            trained on are dropped from every task (:mod:`medmllm.eval.split`).
        exclude_split_strict: refuse a task the split names no item of (an explicit split);
            ``False`` (a split found next to the model) evaluates such a task in full, noted.

    Options that cannot apply to the mode are refused here rather than ignored: ``samples``,
    ``temperature`` and ``max_tokens`` in ``mc`` mode, ``debias`` in ``gen``/``cot``.
    """

    mode: Mode = "mc"
    limit: int | None = None
    seed: int = 1234
    fewshot: int | None = None
    debias: bool = False
    samples: int = 1
    temperature: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    bias: bool = False
    include_context: bool | None = None
    rag_k: int = 3
    max_tokens: int | None = None
    concurrency: int = 1
    shard: tuple[int, int] | None = None
    exclude_split: str | None = None
    exclude_split_strict: bool = True

    def __post_init__(self) -> None:
        if self.shard is not None:
            i, n = self.shard
            if not 1 <= i <= n:
                raise InvalidRequestError(f"--shard must be i/n with 1 <= i <= n, got {i}/{n}")
        if self.mode not in ("mc", "gen", "cot"):
            raise InvalidRequestError(
                f"unknown eval mode {self.mode!r}", hint="use --mode mc, gen or cot"
            )
        if self.limit is not None and self.limit <= 0:
            raise InvalidRequestError(f"--limit must be >= 1, got {self.limit}")
        if self.samples < 1:
            raise InvalidRequestError(f"--samples must be >= 1, got {self.samples}")
        if self.batch_size < 1:
            raise InvalidRequestError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.concurrency < 1:
            raise InvalidRequestError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.temperature is not None and self.temperature < 0:
            raise InvalidRequestError(f"--temperature must be >= 0, got {self.temperature}")
        for flag, value, low in (
            ("--fewshot", self.fewshot, 0),
            ("--seed", self.seed, 0),
            ("--max-tokens", self.max_tokens, 1),
            ("--rag-k", self.rag_k, 1),
        ):
            if value is not None and value < low:
                raise InvalidRequestError(f"{flag} must be >= {low}, got {value}")
        self._check_mode_options()

    def _check_mode_options(self) -> None:
        """An option the mode would ignore is an error (issue 19): the user meant something."""
        if self.mode == "mc":
            scored = "--mode mc scores options by log-likelihood"
            if self.samples != 1:
                raise InvalidRequestError(
                    f"--samples {self.samples} does not apply: {scored}, nothing is sampled",
                    hint="use --mode cot (or gen) for self-consistency, or drop --samples",
                )
            if self.max_tokens is not None:
                raise InvalidRequestError(
                    f"--max-tokens does not apply: {scored}, nothing is generated",
                    hint="use --mode gen or cot, or drop --max-tokens",
                )
        elif self.debias:
            raise InvalidRequestError(
                f"--debias does not apply to --mode {self.mode}: it rotates the options of "
                "log-likelihood scoring",
                hint="use --mode mc with --debias, or drop --debias",
            )
        if self.temperature is not None and self.samples == 1:
            raise InvalidRequestError(
                "--temperature does not apply without sampling: one answer per item is decoded "
                "greedily",
                hint="add --samples K (K > 1, --mode gen or cot), or drop --temperature",
            )


class Evaluator:
    """Runs one task's items through a cached model in the chosen mode.

    Args:
        model: a :class:`CachedGenerator` (any Generator wrapped in the call cache).
        options: run options.
        retriever: a :class:`~medmllm.rag.retriever.Retriever` (e.g. an opened index); the
            question alone is the query (MIRAGE protocol), never the options or the answer.
        progress: called after every batch with (task, done, total).
    """

    def __init__(
        self,
        model: CachedGenerator,
        options: EvalOptions,
        *,
        retriever: Retriever | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.model = model
        self.options = options
        self.retriever = retriever
        self.progress = progress

    # -- retrieval ---------------------------------------------------------------------------
    def passages(self, item: Item) -> list[str] | None:
        if self.retriever is None:
            return None
        hits = self.retriever.search(item.question, self.options.rag_k)
        return [h.chunk.text for h in hits]

    # -- multiple choice by log-likelihood ---------------------------------------------------
    def _mc_batch(
        self, task: Task, items: Sequence[Item], prefix: str, shifts: Sequence[int]
    ) -> list[Prediction]:
        requests: list[LoglikelihoodRequest] = []
        slots: list[tuple[int, int, str, str]] = []  # (item index, shift, original letter, cont)
        for idx, item in enumerate(items):
            if not item.options:  # a VQA task in mc mode: every item needs its options
                raise InvalidRequestError(
                    f"task {task.name!r} item {item.id!r} has no options to score (--mode mc)",
                    hint="use --mode gen, or give every row options (e.g. yes/no)",
                )
            passages = self.passages(item)
            images = (item.image,) if item.image else ()  # VQA: options scored with the image
            for shift in shifts:
                rotated, back = rotate(item, shift)
                ctx = prefix + with_passages(render(task, rotated, passages), passages)
                for letter in rotated.options or {}:
                    cont = continuation(task, rotated, letter)
                    requests.append(LoglikelihoodRequest(ctx, cont, images))
                    slots.append((idx, shift, back[letter], cont))
        scores = self.model.loglikelihood(requests)
        per: list[dict[int, dict[str, tuple[float, str]]]] = [{} for _ in items]
        for (idx, shift, letter, cont), value in zip(slots, scores, strict=True):
            per[idx].setdefault(shift, {})[letter] = (value, cont)
        out = []
        for item, by_shift in zip(items, per, strict=True):
            base = by_shift[0]
            logliks = {k: v for k, (v, _) in base.items()}
            # acc_norm as lm-eval defines it: log-likelihood per byte of the continuation
            normed = {k: v / max(1, len(c.encode("utf-8"))) for k, (v, c) in base.items()}
            probs = softmax(logliks)
            pred = max(logliks, key=lambda k: logliks[k])
            pred_norm = max(normed, key=lambda k: normed[k])
            debiased_probs = None
            if len(shifts) > 1:
                avg: dict[str, float] = dict.fromkeys(logliks, 0.0)
                for rot in by_shift.values():
                    for k, p in softmax({k: v for k, (v, _) in rot.items()}).items():
                        avg[k] += p / len(by_shift)
                debiased_probs = {k: float(avg[k]) for k in logliks}
            out.append(
                Prediction(
                    id=item.id,
                    gold=item.answer,
                    pred=pred,
                    probs=probs,
                    pred_norm=pred_norm,
                    debiased_pred=_argmax(debiased_probs) if debiased_probs else None,
                    debiased_probs=debiased_probs,
                )
            )
        return out

    # -- generative ----------------------------------------------------------------------------
    def _gen_one(self, task: Task, item: Item, exemplars: list[Item]) -> Prediction:
        cot = self.options.mode == "cot"
        gen = task.config.generation
        max_tokens = self.options.max_tokens or (gen.cot_max_tokens if cot else gen.max_tokens)
        prompt = chat_prompt(task, item, exemplars, cot=cot, passages=self.passages(item))
        messages = [{"role": "user", "content": prompt}]
        images = [item.image] if item.image else None
        k = self.options.samples
        outputs: list[str] = []
        for j in range(k):
            sampling: dict[str, Any] = {"max_tokens": max_tokens}
            if gen.stop and not cot:
                sampling["stop"] = list(gen.stop)
            if k > 1:
                temperature = self.options.temperature
                sampling.update(
                    temperature=DEFAULT_TEMPERATURE if temperature is None else temperature,
                    seed=self.options.seed + j,
                )
            outputs.append(self.model.chat(messages, images, **sampling).text)
        answers = [extract(task.config.answer_type, o, item.options) for o in outputs]
        valid = [a for a in answers if a is not None]
        pred = Counter(valid).most_common(1)[0][0] if valid else None
        probs = None
        if k > 1 and item.options and valid:
            votes = Counter(valid)
            probs = {letter: votes[letter] / len(answers) for letter in item.options}
        return Prediction(
            id=item.id,
            gold=item.answer,
            pred=pred,
            probs=probs,
            output=outputs[0] if k == 1 else None,
            samples=answers if k > 1 else [],
        )

    # -- driver --------------------------------------------------------------------------------
    def predict(
        self, task: Task, items: Sequence[Item], exemplars: list[Item], label: str | None = None
    ) -> list[Prediction]:
        """Predictions for ``items`` in the run's mode, batch by batch (each batch cached)."""
        label = label or task.name
        mc = self.options.mode == "mc"
        n_opts = max((len(i.options or {}) for i in items), default=0)
        letters = task.config.prompt.choices == "letters"
        shifts = list(range(n_opts)) if (mc and self.options.debias and letters) else [0]
        prefix = fewshot_prefix(task, exemplars) if mc else ""
        out: list[Prediction] = []
        workers = self.options.concurrency
        # chat calls: progress after each item (or each round of concurrent items)
        size = self.options.batch_size if mc else workers
        pool = ThreadPoolExecutor(workers) if workers > 1 and not mc else None
        # mc: longest items first, so each call's padded batches hold rows of similar length
        # (~15% less padding than file order on MedMCQA); predictions go back in file order.
        order = sorted(range(len(items)), key=lambda i: -_text_length(items[i])) if mc else None
        try:
            for start in range(0, len(items), size):
                if order is not None:
                    chosen = [items[i] for i in order[start : start + size]]
                    out += self._mc_batch(task, chosen, prefix, shifts)
                elif pool is not None:
                    batch = items[start : start + size]
                    out += list(pool.map(lambda it: self._gen_one(task, it, exemplars), batch))
                else:
                    out += [
                        self._gen_one(task, it, exemplars) for it in items[start : start + size]
                    ]
                if self.progress is not None:
                    self.progress(label, len(out), len(items))
        finally:
            if pool is not None:
                pool.shutdown()
        if order is not None:  # back to file order
            by_index = dict(zip(order, out, strict=True))
            out = [by_index[i] for i in range(len(items))]
        return out


def _text_length(item: Item) -> int:
    """Characters an item adds to its prompt: a cheap proxy for its token count."""
    options = sum(len(o) for o in (item.options or {}).values())
    return len(item.question) + options + len(item.context or "")


def _argmax(scores: dict[str, float]) -> str:
    return max(scores, key=lambda k: scores[k])


def _debias_applies(task: Task) -> bool:
    """Rotating options needs lettered options: texts (yes/no/maybe) have no positions."""
    return task.config.output_type == "multiple_choice" and task.config.prompt.choices == "letters"


def check_applicable(tasks: Sequence[Task], options: EvalOptions) -> None:
    """Refuse, before any model loads, a mode or option that no task of the run can use.

    An option that applies to some tasks only is run where it applies and noted in the
    others' results (``notes``); one that applies to none is an error, never a silent no-op.
    """
    for task in tasks:
        kind = task.config.output_type
        if options.mode == "mc" and kind not in ("multiple_choice", "vqa"):
            raise InvalidRequestError(
                f"task {task.name!r} is a {kind} task; log-likelihood scoring (--mode mc) needs "
                "multiple-choice options",
                hint="use --mode gen for this task",
            )
    names = ", ".join(t.name for t in tasks)
    if options.debias and tasks and not any(_debias_applies(t) for t in tasks):
        raise InvalidRequestError(
            f"--debias does not apply to {names}: it rotates lettered options, and these "
            "answer with option texts (e.g. yes/no/maybe)",
            hint="drop --debias for these tasks",
        )
    if options.bias and tasks and not any(t.config.bias_swaps for t in tasks):
        raise InvalidRequestError(
            f"--bias does not apply to {names}: no task is marked bias_swaps (patient "
            "vignettes whose sex/race/age can be swapped)",
            hint="drop --bias, or add a vignette task such as medqa",
        )


def _notes(task: Task, options: EvalOptions) -> list[str]:
    """Run options that did not apply to this task (they applied to another of the run)."""
    notes = []
    if options.debias and not _debias_applies(task):
        notes.append("--debias not applied: the options are texts, not rotatable letters")
    if options.bias and not task.config.bias_swaps:
        notes.append("--bias not applied: the task has no demographic swaps (bias_swaps)")
    return notes


def _check_mode(task: Task, options: EvalOptions, model: CachedGenerator) -> None:
    kind = task.config.output_type
    if kind in ("vqa", "report") and not model.supports_images:
        raise UnsupportedInputError(
            f"task {task.name!r} needs image input, but backend {model.backend!r} with model "
            f"{model.model_id!r} is text-only",
            hint="evaluate a multimodal model (MedMLLM) on VQA and report tasks",
        )


def score_predictions(
    task: Task, items: Sequence[Item], preds: Sequence[Prediction], *, seed: int
) -> dict[str, Any]:
    """Metrics with CIs, the trivial baselines and the prediction distribution."""
    names = M.expand(task.config.metrics)
    refs = [p.gold for p in preds]
    answers = [p.pred for p in preds]
    scores = {name: M.score(name, answers, refs, items, seed=seed) for name in names}
    out: dict[str, Any] = {
        "metrics": scores,
        "majority_baseline": _baselines(names, refs, items, seed=seed),
        "prediction_distribution": M.distribution(answers),
        "gold_distribution": M.distribution(refs),
        "invalid": sum(a is None for a in answers),
    }
    if task.config.output_type == "multiple_choice":
        out["majority_baseline"]["accuracy"] = M.majority_baseline(refs, seed=seed)
    if any(p.pred_norm is not None for p in preds):
        out["metrics"]["acc_norm"] = M.score(
            "accuracy", [p.pred_norm for p in preds], refs, items, seed=seed
        )
    with_probs = [(p.probs, p.gold) for p in preds if p.probs]
    if with_probs:
        out["calibration"] = calibration_report(
            [p for p, _ in with_probs], [g for _, g in with_probs]
        )
    if task.config.output_type in ("report", "generate") or "hallucination" in names:
        from medmllm.eval.hallucination import method

        out["hallucination_method"] = method()
    return out


def _baselines(
    names: Sequence[str], refs: Sequence[str], items: Sequence[Any], *, seed: int
) -> dict[str, Any]:
    """Each metric for a constant answer: the most common reference where the metric applies."""
    out: dict[str, Any] = {}
    for name in names:
        metric = M.METRICS.get(name)
        pool = list(refs)
        if metric.per_item:
            try:
                applicable = metric.fn(list(refs), refs, items)
            except M.MetricUnavailableError:
                continue
            pool = [r for r, a in zip(refs, applicable, strict=True) if a == a]  # drop NaN
        if not pool:
            continue
        counts = Counter(M.normalize(r) if metric.name != "accuracy" else r for r in pool)
        constant_norm = counts.most_common(1)[0][0]
        constant = next(
            r for r in pool if (M.normalize(r) if name != "accuracy" else r) == constant_norm
        )
        preds = [constant] * len(refs)
        if metric.per_item:
            result = M.score(name, preds, refs, items, seed=seed)
        else:  # a constant's corpus score needs no interval (and bootstrapping it is slow)
            result = {"value": float(metric.fn(preds, refs, items)), "ci": None, "n": len(refs)}
        out[name] = {**result, "label": constant}
    return out


def _debiased(
    task: Task, items: Sequence[Item], preds: Sequence[Prediction], seed: int
) -> dict[str, Any] | None:
    if not any(p.debiased_pred for p in preds):
        return None
    refs = [p.gold for p in preds]
    answers = [p.debiased_pred for p in preds]
    n_opts = max(len(i.options or {}) for i in items)
    return {
        "method": "cyclic rotations of the options; option probabilities averaged",
        "rotations": n_opts,
        "cost_factor": n_opts,
        "metrics": {"accuracy": M.score("accuracy", answers, refs, items, seed=seed)},
        "prediction_distribution": M.distribution(answers),
        "changed_predictions": sum(p.pred != p.debiased_pred for p in preds),
        "calibration": calibration_report([p.debiased_probs or {} for p in preds], refs),
    }


def run_task(
    evaluator: Evaluator, task: Task, options: EvalOptions, split: TrainedSplit | None = None
) -> dict[str, Any]:
    """Evaluate one task; returns its section of results.json.

    ``split``: a training run's split; the items it trained on are dropped (and counted).
    """
    _check_mode(task, options, evaluator.model)
    if options.fewshot is not None:
        task.config.fewshot.n = options.fewshot
    if options.include_context is not None:
        task.include_context = options.include_context
    items, exemplars, load = task.load_items(limit=options.limit, exclude=split)
    notes = _notes(task, options)
    if split is not None and not load.split_matches:
        if options.exclude_split_strict:
            raise SplitMismatchError(
                f"task {task.name!r}: the split {split.path} (source {split.source or '?'}, "
                f"key {split.key}) names none of its {load.n_rows} rows, so it cannot say what "
                "was trained on (another run's or another dataset's split?)",
                hint="pass the split.json of the run that trained this model on this task's "
                "data, or evaluate the other tasks without --exclude-split",
            )
        notes.append(f"{split.path} names none of this task's rows: evaluated in full")
    _check_loaded(task, items, exemplars, load.n_rows)
    if options.shard is not None:
        items = [item for item in items if in_shard(item.id, *options.shard)]
    calls_before = evaluator.model.model_calls
    started = time.perf_counter()
    preds = evaluator.predict(task, items, exemplars)
    result: dict[str, Any] = {
        "task": task.name,
        "description": task.config.description,
        "output_type": task.config.output_type,
        "mode": options.mode,
        "n": len(items),
        "n_rows": load.n_rows,
        "filtered": load.filtered,
        "skipped": load.skipped,
        "skipped_ids": load.skipped_ids,
        "fewshot": len(exemplars),
        "fewshot_ids": [e.id for e in exemplars],
        "include_context": task.include_context,
        "rag": evaluator.retriever is not None,
    }
    if split is not None:
        result["excluded_trained"] = load.excluded  # items of the training split, dropped
    if notes:
        result["notes"] = notes
    result.update(score_predictions(task, items, preds, seed=options.seed))
    debiased = _debiased(task, items, preds, options.seed)
    if debiased is not None:
        result["debiased"] = debiased
    if task.config.output_type == "vqa" and evaluator.model.supports_images:
        from medmllm.eval.blind import blind_control  # image-blind control: the image's gain

        result["blind_control"] = blind_control(
            evaluator, task, items, exemplars, preds, seed=options.seed
        )
    if options.bias and task.config.bias_swaps:
        from medmllm.eval.bias import run_bias

        result["bias"] = run_bias(evaluator, task, items, exemplars, preds, seed=options.seed)
    result["items"] = [_item_row(p) for p in preds]
    result["_samples"] = [sample_record(task.name, i, p) for i, p in zip(items, preds, strict=True)]
    # run-dependent numbers (differ between a fresh and a resumed run) live apart from scores
    result["timing"] = {
        "seconds": round(time.perf_counter() - started, 3),
        "model_calls": evaluator.model.model_calls - calls_before,
    }
    return result


def _check_loaded(task: Task, items: list[Item], exemplars: list[Item], n_rows: int) -> None:
    """No items, or fewer exemplars than asked for, would silently score nothing (or less)."""
    wanted = task.config.fewshot.n
    if wanted and len(exemplars) < wanted:
        raise InvalidRequestError(
            f"task {task.name!r}: {wanted} few-shot exemplars asked for, but the pool holds "
            f"{len(exemplars)} (of {n_rows} rows)",
            hint=f"pass --fewshot {max(len(exemplars) - 1, 0)} or fewer, or a larger data file",
        )
    if not items:
        from medmllm.errors import DataFormatError

        raise DataFormatError(
            f"task {task.name!r}: no items to evaluate ({n_rows} rows read, "
            f"{len(exemplars)} used as few-shot exemplars)",
            hint="check --data / dataset.path (an empty file?) and --fewshot",
        )


def in_shard(item_id: str, i: int, n: int) -> bool:
    """Whether an item belongs to shard ``i`` of ``n`` (by a hash of its id: the same on every
    machine and independent of item order)."""
    digest = hashlib.sha256(str(item_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n == i - 1


def _item_row(p: Prediction) -> dict[str, Any]:
    row = {k: v for k, v in asdict(p).items() if v not in (None, [], {})}
    row["correct"] = p.pred is not None and p.pred == p.gold
    if row.get("probs"):
        row["probs"] = {k: round(v, 6) for k, v in row["probs"].items()}
    if row.get("debiased_probs"):
        row["debiased_probs"] = {k: round(v, 6) for k, v in row["debiased_probs"].items()}
    return row


def default_run_dir(name: str) -> Path:
    """Where ``medmllm eval`` writes a run without ``--out``: MEDMLLM_HOME/runs/eval/<name>."""
    from medmllm.config import get_settings

    return get_settings().home.expanduser() / "runs" / "eval" / name


def default_cache_path() -> Path:
    """The shared call cache under MEDMLLM_HOME (reused by every run on this machine)."""
    from medmllm.config import get_settings

    return get_settings().cache_dir("eval") / "calls.sqlite"


def run_eval(
    tasks: Sequence[str | Task],
    generator: Generator,
    options: EvalOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    cache_path: str | Path | None = None,
    cache: CallCache | None = None,
    retriever: Retriever | None = None,
    progress: Progress | None = None,
    report: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate ``generator`` on ``tasks`` and write ``results.json`` (+ ``report.html``).

    Args:
        tasks: registry names, YAML paths or loaded :class:`Task` objects.
        generator: any Generator (wrapped in the call cache here).
        options: run options (defaults: ``mc`` mode, all items).
        out_dir: output folder; None returns results without writing.
        cache_path: SQLite call cache (default under MEDMLLM_HOME; ``":memory:"`` for none).
        cache: a ready call cache instead of ``cache_path`` (e.g.
            :class:`~medmllm.safety.guard.DeidCallCache`, which stores replies de-identified);
            closed when the run ends.
        retriever: for RAG evaluation (question-only queries).
        progress: progress callback (the CLI draws a bar with ETA from it).
        report: also render report.html.
        overwrite: replace an ``out_dir`` holding a different run (else
            :class:`~medmllm.errors.OutputExistsError` before any model call).
    """
    options = options or EvalOptions()
    loaded = [t if isinstance(t, Task) else load_task(t) for t in tasks]
    check_applicable(loaded, options)
    split = read_split(options.exclude_split) if options.exclude_split else None
    model_info = describe_model(generator)
    if out_dir is not None:  # refuse a folder holding another run before any model call
        planned: dict[str, Any] = {"model": model_info}
        planned["config"] = {**asdict(options), "tasks": [t.name for t in loaded]}
        check_out_dir(Path(out_dir), run_config_hash(planned), overwrite=overwrite)
    if cache is None:
        cache = CallCache(
            None if cache_path == ":memory:" else (cache_path or default_cache_path())
        )
    path = cache.path
    model = CachedGenerator(generator, cache)
    evaluator = Evaluator(model, options, retriever=retriever, progress=progress)
    started = time.perf_counter()
    try:
        sections = [run_task(evaluator, task, options, split) for task in loaded]
        samples = [row for s in sections for row in s.pop("_samples")]
    finally:
        stats = cache.stats()
        cache.close()
    results: dict[str, Any] = {
        "schema_version": 1,
        "model": model_info,
        "config": {**asdict(options), "tasks": [t.name for t in loaded]},
        "environment": environment(),
        "tasks": {s["task"]: s for s in sections},
        "run": {
            "seconds": round(time.perf_counter() - started, 3),
            "cache": {**stats, "path": str(path) if path else None},
            "model_calls": model.model_calls,
        },
    }
    if split is not None:
        results["held_apart"] = {
            **split.record(),
            "excluded_trained": {s["task"]: s.get("excluded_trained", 0) for s in sections},
        }
    results["config_hash"] = run_config_hash(results)
    if out_dir is not None:
        write_results(results, Path(out_dir), report=report, samples=samples, overwrite=overwrite)
    return results


def describe_model(generator: Generator) -> dict[str, Any]:
    """results.json's ``model``: backend, model, the cache key and the load options behind it.

    The key is part of the run's config hash, so a re-run in another dtype (or on another
    server) into the same folder is a different run, not a resume.
    """
    load = generator.load_options()
    return {
        "backend": generator.backend,
        "model": generator.model_id,
        "key": model_key(load),
        "load_options": load,
    }


def run_config_hash(results: dict[str, Any]) -> str:
    """What makes two runs "the same run": the model and the options (not timings or versions)."""
    return config_hash({"model": results["model"], "config": results["config"]})


def check_out_dir(out_dir: Path, cfg_hash: str | None, *, overwrite: bool = False) -> None:
    """Refuse an output folder that is a file, or holds a *different* run (unless overwrite).

    A folder holding the same run (same config hash) is fine: the run resumes into it.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(
            f"--out {out_dir} is a file, not a folder", hint="pass a folder path to --out"
        )
    existing = out_dir / "results.json"
    if overwrite or cfg_hash is None or not existing.is_file():
        return
    try:
        old = json.loads(existing.read_text(encoding="utf-8"))
        old_hash = old.get("config_hash") or run_config_hash(old)
        what = f"{old['model'].get('model')} on {', '.join(old['config'].get('tasks', []))}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        old_hash, what = None, "an unreadable results.json"
    if old_hash != cfg_hash:
        raise OutputExistsError(
            f"{out_dir} holds a different run ({what})",
            hint="choose another --out folder, or add --overwrite to replace it",
        )


def write_results(
    results: dict[str, Any],
    out_dir: Path,
    *,
    report: bool = True,
    samples: Sequence[dict[str, Any]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write results.json and report.html as a pair (+ samples.jsonl); returns the JSON path.

    Both are rendered to temporary files first (removed on any failure, e.g. a full disk, so
    the previous pair stays intact). Then the old report is removed, results.json is renamed
    into place and the new report after it: a crash in between leaves a results.json without a
    report, never a stale report beside newer results.
    """
    results.setdefault("config_hash", run_config_hash(results))
    check_out_dir(out_dir, results["config_hash"], overwrite=overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    target, page = out_dir / "results.json", out_dir / "report.html"
    tmp_json = out_dir / ".results.json.tmp"
    tmp_page = out_dir / ".report.html.partial"
    tmp_samples = out_dir / f".{SAMPLES_FILE}.partial"
    try:
        if samples is not None:
            write_samples(tmp_samples, samples)
        tmp_json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        if report:
            from medmllm.eval.report import write_report

            write_report(results, tmp_page)
        page.unlink(missing_ok=True)
        if samples is not None:
            os.replace(tmp_samples, out_dir / SAMPLES_FILE)
        os.replace(tmp_json, target)
        if report:
            os.replace(tmp_page, page)
    finally:
        tmp_json.unlink(missing_ok=True)
        tmp_page.unlink(missing_ok=True)
        tmp_samples.unlink(missing_ok=True)
    return target
