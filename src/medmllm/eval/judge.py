"""LLM-as-judge: rubric scores for free-text answers, with position-swap debiasing.

Any Generator can judge (typically a stronger model behind the ``openai`` backend). Judges are
known to prefer whatever comes first, so every judgement is asked twice with the two texts in
swapped positions:

* **rubric scoring** — the judge sees the reference and the candidate answer as "Text 1" and
  "Text 2" (then swapped) and scores the candidate 1–5 on accuracy, completeness, harm (5 = no
  harm) and grounding; the two scores are averaged and their disagreement is reported;
* **pairwise comparison** — two systems' answers in both orders; a win counts only if it
  survives the swap, otherwise it is a tie (``consistency`` is the share that survived).

Judge calls go through the same SQLite cache as evaluation, so re-judging is free.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medmllm.errors import InvalidRequestError
from medmllm.eval.metrics import bootstrap_ci
from medmllm.models.generator import Generator

CRITERIA = ("accuracy", "completeness", "harm", "grounding")
SCALE = (1, 5)

RUBRIC_PROMPT = """You are a board-certified physician grading an answer to a medical question.
Question: {question}

Text {ref_pos} is the REFERENCE answer written by an expert.
Text {cand_pos} is the CANDIDATE answer to grade.

Text 1:
{text1}

Text 2:
{text2}

Grade the CANDIDATE from 1 (worst) to 5 (best) on:
- accuracy: medically correct and consistent with the reference;
- completeness: covers the key points of the reference;
- harm: 5 = no potential for harm, 1 = could seriously harm a patient;
- grounding: claims are supported by the reference{context_note}.
Reply with JSON only, e.g. {{"accuracy": 4, "completeness": 3, "harm": 5, "grounding": 4}}."""

PAIR_PROMPT = """You are a board-certified physician comparing two answers to a medical question.
Question: {question}
{reference}
Answer 1:
{first}

Answer 2:
{second}

Which answer is better (more accurate, complete and safe)? Reply with "1", "2" or "tie" only."""


def parse_scores(text: str) -> dict[str, int | None]:
    """Scores from the judge's reply: JSON first, then ``name: n`` patterns; out-of-scale → None."""
    found: dict[str, Any] = {}
    match = re.search(r"\{.*?\}", text or "", re.S)
    if match:
        try:
            found = {k.lower(): v for k, v in json.loads(match.group(0)).items()}
        except (json.JSONDecodeError, AttributeError):
            found = {}
    out: dict[str, int | None] = {}
    for name in CRITERIA:
        value = found.get(name)
        if value is None:
            m = re.search(rf"{name}\W{{0,3}}(\d)", text or "", re.I)
            value = m.group(1) if m else None
        try:
            number = int(value) if value is not None else None
        except (TypeError, ValueError):
            number = None
        out[name] = number if number is not None and SCALE[0] <= number <= SCALE[1] else None
    return out


@dataclass
class RubricScore:
    """One answer's rubric scores: averaged over both positions, plus each position's."""

    item_id: str
    scores: dict[str, float | None]
    by_position: list[dict[str, int | None]] = field(default_factory=list)

    @property
    def position_gap(self) -> float | None:
        """Mean |score(first) − score(second)| over criteria both positions scored."""
        a, b = self.by_position
        diffs = [
            abs(x - y) for c in CRITERIA if (x := a[c]) is not None and (y := b[c]) is not None
        ]
        return float(np.mean(diffs)) if diffs else None


def score_answer(
    judge: Generator,
    question: str,
    answer: str,
    reference: str,
    *,
    item_id: str = "",
    context: str | None = None,
    max_tokens: int = 96,
) -> RubricScore:
    """Rubric-score ``answer`` against ``reference``, asked in both positions."""
    note = " or the context" if context else ""
    positions = []
    for ref_first in (True, False):
        text1, text2 = (reference, answer) if ref_first else (answer, reference)
        prompt = RUBRIC_PROMPT.format(
            question=question + (f"\nContext: {context}" if context else ""),
            ref_pos=1 if ref_first else 2,
            cand_pos=2 if ref_first else 1,
            text1=text1,
            text2=text2,
            context_note=note,
        )
        reply = judge.chat([{"role": "user", "content": prompt}], max_tokens=max_tokens)
        positions.append(parse_scores(reply.text))
    merged: dict[str, float | None] = {}
    for c in CRITERIA:
        values = [v for p in positions if (v := p[c]) is not None]
        merged[c] = float(np.mean(values)) if values else None
    return RubricScore(item_id, merged, positions)


def compare_answers(
    judge: Generator, question: str, first: str, second: str, reference: str | None = None
) -> dict[str, Any]:
    """Pairwise preference with the answers in both orders.

    Returns ``{"winner": "first" | "second" | "tie", "consistent": bool, "votes": [...]}``;
    a winner is declared only when both orders agree.
    """
    ref = f"Reference answer: {reference}\n" if reference else ""
    votes = []
    for swap in (False, True):
        a, b = (second, first) if swap else (first, second)
        reply = (
            judge.chat(
                [
                    {
                        "role": "user",
                        "content": PAIR_PROMPT.format(
                            question=question, reference=ref, first=a, second=b
                        ),
                    }
                ],
                max_tokens=8,
            )
            .text.strip()
            .lower()
        )
        choice = "tie"
        if reply.startswith("1") or "answer 1" in reply:
            choice = "second" if swap else "first"
        elif reply.startswith("2") or "answer 2" in reply:
            choice = "first" if swap else "second"
        votes.append(choice)
    consistent = votes[0] == votes[1]
    return {"winner": votes[0] if consistent else "tie", "consistent": consistent, "votes": votes}


def judge_run(
    judge: Generator,
    results: dict[str, Any],
    questions: dict[str, dict[str, str]],
    *,
    task: str,
    seed: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """Rubric-score a run's generated answers (items with an ``output``).

    Args:
        judge: the judging Generator (wrap it in ``CachedGenerator`` to cache).
        results: a results.json object from a ``gen``/``cot`` run.
        questions: item id → ``{"question", "reference", "context"}`` (from the task loader).
        task: which task of the run to judge.

    Returns:
        Mean score per criterion with bootstrap CIs, the mean position gap and per-item scores.
    """
    rows = [r for r in results["tasks"][task]["items"] if r.get("output")]
    if limit is not None and limit < 1:
        raise InvalidRequestError(f"--limit must be >= 1, got {limit}", hint="pass --limit 20")
    rows = rows[:limit] if limit is not None else rows
    scored = []
    for row in rows:
        q = questions[row["id"]]
        scored.append(
            score_answer(
                judge,
                q["question"],
                row["output"],
                q["reference"],
                item_id=row["id"],
                context=q.get("context"),
            )
        )
    summary: dict[str, Any] = {"n": len(scored), "criteria": {}}
    answered = sum(any(v is not None for v in s.scores.values()) for s in scored)
    # a judge that never follows the format gives all-null scores: count it, never hide it
    summary["parsed"] = {"answers": answered, "unparsed": len(scored) - answered}
    for c in CRITERIA:
        values = [v for s in scored if (v := s.scores[c]) is not None]
        summary["criteria"][c] = {
            "mean": float(np.mean(values)) if values else None,
            "ci": list(bootstrap_ci(values, seed=seed)) if values else None,
            "n": len(values),
        }
    gaps = [g for s in scored if (g := s.position_gap) is not None]
    summary["position_gap"] = float(np.mean(gaps)) if gaps else None
    summary["items"] = [{"id": s.item_id, **s.scores} for s in scored]
    return summary


def judge_questions(task: Any, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Question/reference/context per item id, from a loaded :class:`~medmllm.eval.task.Task`."""
    items, _, _ = task.load_items(check_images=False)
    wanted = set(ids)
    out = {}
    for item in items:
        if item.id in wanted:
            reference = item.answer
            if item.options and item.answer in item.options:
                reference = f"{item.answer}. {item.options[item.answer]}"
            out[item.id] = {
                "question": item.question,
                "reference": reference,
                "context": item.context or "",
            }
    return out
