"""MTS-Dialog in experiment 3: held-apart rows, constant baselines and batched generation.

The task is dialogue + section header → that clinical-note section, scored with the harness's
own prompt rendering, answer extraction, metrics and bootstrap CIs
(:func:`medmllm.eval.runner.score_predictions`). What is specific to this experiment:

- **Rows**: the ``mts_dialog`` data builder's splits — ``validation`` (the official 100 rows,
  held apart) or ``tune`` (10% of the training dialogues, for choosing the MTS stage's
  settings). Training rows that copy a validation dialogue, and the back-translations of
  tune rows, are never trained on (the builder's ``split.json`` lists them).
- **Generation**: :meth:`HFGenerator.chat_batch` (greedy, 16 dialogues per batch), with a
  token budget per section header taken from the *training* notes (90th percentile of their
  lengths, capped): an allergy line needs ~20 tokens, a history of present illness hundreds.
- **Constant baselines**, chosen on training rows only: the one training note (of those up to
  60 words) that scores the best mean ROUGE-L on the tune split, written for every dialogue;
  and a stronger one, the best such note per section header. (The harness's own constant — the
  most common *evaluated* reference — is kept in the JSON, but it is picked by looking at the
  answers.)
- **Paired differences**: per-item ROUGE-L of one model minus another's on the same rows,
  with a bootstrap CI; tighter than comparing two separate intervals.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from medmllm.models.backends.hf import HFGenerator  # batched generation is its own capability

GEN_METRICS = ("rouge_l", "sacrebleu", "meteor")
TASK_METRICS = ["rouge_l", "bleu", "meteor"]
# candidate constant notes: at most 60 words (a long note loses precision against the mostly
# short references, and ROUGE-L's LCS costs length x length per pair)
_MAX_CONSTANT_WORDS = 60
_FALLBACK_CANDIDATES = 20  # a header without such short notes: its 20 shortest


def write_task(folder: Path, split: str, limit: int | None, max_tokens: int) -> Path:
    """The rows of ``split`` (validation or tune) as JSONL + a harness task YAML; its path."""
    import yaml

    from medmllm.train.data import DataConfig, load_dataset

    rows = load_dataset(DataConfig(builder="mts_dialog", split=split), "prompt_completion").rows
    data = folder / f"mts_dialog_{split}.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": str(r["id"]),
                    "question": r["prompt"],
                    "answer": r["completion"],
                    "section_header": r["section_header"],
                }
            )
            + "\n"
            for r in rows[:limit]
        ),
        encoding="utf-8",
    )
    task_file = folder / "mts_dialog.yaml"
    task_file.write_text(
        yaml.safe_dump(
            {
                "name": "mts_dialog",
                "description": f"MTS-Dialog {split}: dialogue → clinical-note section",
                "output_type": "generate",
                "dataset": {"path": str(data.resolve()), "split": split},
                "fields": {"options": None},
                "prompt": {"template": "{{ question }}", "instruction": ""},
                "answer_type": "free",
                "generation": {"max_tokens": max_tokens},
                "metrics": TASK_METRICS,
            }
        ),
        encoding="utf-8",
    )
    return task_file


def _headers(task_file: Path) -> dict[str, str]:
    """Item id → section header of the rows written by :func:`write_task`."""
    import yaml

    spec = yaml.safe_load(task_file.read_text(encoding="utf-8"))
    lines = Path(spec["dataset"]["path"]).read_text(encoding="utf-8").splitlines()
    return {r["id"]: r["section_header"] for r in map(json.loads, lines)}


def _training_notes() -> list[dict[str, Any]]:
    from medmllm.train.data import DataConfig, load_dataset

    return load_dataset(DataConfig(builder="mts_dialog", split="train"), "prompt_completion").rows


def token_budgets(tokenizer: Any, cap: int) -> dict[str, int]:
    """Section header → tokens to generate: the 90th percentile of its training notes' token
    counts (+1 for the end of turn), at most ``cap``."""
    lengths: dict[str, list[int]] = defaultdict(list)
    rows = _training_notes()
    ids = tokenizer([r["completion"] for r in rows], add_special_tokens=False).input_ids
    for row, tokens in zip(rows, ids, strict=True):
        lengths[row["section_header"]].append(len(tokens))
    return {h: min(cap, int(np.percentile(v, 90)) + 1) for h, v in sorted(lengths.items())}


def _rouge_l(preds: list[str], refs: list[str]) -> list[float]:
    from medmllm.eval import metrics as M

    return [float(v) for v in M.METRICS.get("rouge_l").fn(preds, refs, [None] * len(refs))]


def choose_constants() -> dict[str, Any]:
    """The constant-answer baselines, chosen on training rows only (see the module docstring).

    Returns ``{"constant": note, "per_section": {header: note}, "chosen_on": ...}``.
    """
    from rouge_score import rouge_scorer, tokenizers

    from medmllm.train.data import DataConfig, load_dataset

    class _Memo(tokenizers.Tokenizer):
        """rouge-score's own tokenizer (stemming), each text tokenized once: the search scores
        every candidate against every tune note, and stemming dominates the cost."""

        def __init__(self) -> None:
            self._inner = tokenizers.DefaultTokenizer(use_stemmer=True)
            self._seen: dict[str, list[str]] = {}

        def tokenize(self, text: str) -> list[str]:
            if text not in self._seen:
                self._seen[text] = self._inner.tokenize(text)
            return self._seen[text]

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Memo())
    train = _training_notes()
    tune = load_dataset(DataConfig(builder="mts_dialog", split="tune"), "prompt_completion").rows
    tune_refs = [r["completion"] for r in tune]

    def best(candidates: list[str], refs: list[str]) -> str:
        scores = [
            np.mean([scorer.score(r, c)["rougeL"].fmeasure for r in refs]) for c in candidates
        ]
        return candidates[int(np.argmax(scores))]

    def short(notes: list[str]) -> list[str]:
        unique = list(dict.fromkeys(notes))
        kept = [n for n in unique if len(n.split()) <= _MAX_CONSTANT_WORDS]
        return kept or sorted(unique, key=lambda n: len(n.split()))[:_FALLBACK_CANDIDATES]

    constant = best(short([r["completion"] for r in train]), tune_refs)
    per_section: dict[str, str] = {}
    by_header: dict[str, list[str]] = defaultdict(list)
    for row in train:
        by_header[row["section_header"]].append(row["completion"])
    for header, notes in sorted(by_header.items()):
        refs = [r["completion"] for r in tune if r["section_header"] == header]
        if refs:
            per_section[header] = best(short(notes), refs)
        else:  # no tune row of this header: its most common training note
            per_section[header] = Counter(notes).most_common(1)[0][0]
    return {
        "constant": constant,
        "per_section": per_section,
        "chosen_on": f"{len(train)} training notes scored against {len(tune)} tune rows",
    }


def score_constants(constants: dict[str, Any], task_file: Path, *, seed: int) -> dict[str, Any]:
    """Both constant baselines scored like a model on the rows of ``task_file``."""
    from medmllm.eval import metrics as M
    from medmllm.eval.task import load_task

    items, _, _ = load_task(task_file).load_items()
    headers = _headers(task_file)
    refs = [it.answer for it in items]
    answers = {
        "constant": [constants["constant"]] * len(items),
        "constant per section": [
            constants["per_section"].get(headers[it.id], constants["constant"]) for it in items
        ],
    }
    out = {}
    for name, preds in answers.items():
        out[name] = {
            "metrics": {m: M.score(m, preds, refs, items, seed=seed) for m in GEN_METRICS},
            "per_item": {"rouge_l": _rouge_l(preds, refs)},
        }
    return out


def evaluate(
    generator: HFGenerator,
    task_file: Path,
    budgets: dict[str, int],
    out: Path,
    *,
    default_budget: int,
    batch_size: int,
    seed: int,
) -> dict[str, Any]:
    """Generate a note section for every row of ``task_file`` and score it like the harness.

    The generations are saved in ``out/mts.json`` with a key of (model, prompts, budgets), so a
    rerun of an unchanged stage reuses them.
    """
    from medmllm.eval.cache import model_key
    from medmllm.eval.extract import extract
    from medmllm.eval.predictions import Prediction
    from medmllm.eval.prompting import chat_prompt
    from medmllm.eval.runner import score_predictions
    from medmllm.eval.task import load_task
    from medmllm.provenance import config_hash
    from medmllm.train.core import _atomic_write_json

    task = load_task(task_file)
    items, _, _ = task.load_items()
    headers = _headers(task_file)
    prompts = [chat_prompt(task, item, [], cot=False) for item in items]
    limits = [budgets.get(headers[item.id], default_budget) for item in items]
    key = config_hash(
        {"model": model_key(generator.load_options()), "prompts": prompts, "max_tokens": limits}
    )
    path = out / "mts.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if saved.get("key") != key or "items" not in saved:
        started = time.perf_counter()
        replies = generator.chat_batch(
            [[{"role": "user", "content": p}] for p in prompts], limits, batch_size=batch_size
        )
        seconds = time.perf_counter() - started
        saved = {
            "key": key,
            "items": [
                {
                    "id": item.id,
                    "section_header": headers[item.id],
                    "max_tokens": limit,
                    "finish_reason": reply.finish_reason,
                    "completion_tokens": reply.usage.completion_tokens,
                    "output": reply.text,
                }
                for item, reply, limit in zip(items, replies, limits, strict=True)
            ],
            "timing": {
                "seconds": round(seconds, 2),
                "generated_tokens": sum(r.usage.completion_tokens for r in replies),
                "prompt_tokens": sum(r.usage.prompt_tokens for r in replies),
                "batch_size": batch_size,
            },
        }
        _atomic_write_json(path, saved)
    # only the generations are cached: scores are recomputed (a metric that became available,
    # METEOR once WordNet is installed, shows up on a rerun)
    preds = [
        Prediction(
            id=item.id,
            gold=item.answer,
            pred=extract(task.config.answer_type, row["output"], None),
            output=row["output"],
        )
        for item, row in zip(items, saved["items"], strict=True)
    ]
    return {
        "task": task.name,
        "n": len(items),
        **score_predictions(task, items, preds, seed=seed),
        "per_item": {
            "rouge_l": _rouge_l([p.pred or "" for p in preds], [it.answer for it in items])
        },
        "items": [
            {**row, "gold": p.gold, "pred": p.pred}
            for p, row in zip(preds, saved["items"], strict=True)
        ],
        "timing": saved["timing"],
    }


def paired_difference(a: list[float], b: list[float], *, seed: int) -> dict[str, Any]:
    """Mean of ``a - b`` over the same rows with its 95% bootstrap CI."""
    from medmllm.eval.metrics import bootstrap_ci

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return {"value": float(diff.mean()), "ci": list(bootstrap_ci(diff, seed=seed)), "n": len(diff)}
