"""Medical education: multiple-choice questions written from a corpus passage, and quiz scoring.

``mode="generate"``: the model writes items (stem, four options, the key, an explanation) from
one passage — given, or retrieved for ``topic`` — and every item cites that passage. Generated
items are checked: four distinct options, exactly one key, and keys are rotated so answer
positions are balanced across items (LLMs over-use one letter). ``mode="score"``: a learner's
answers are scored against the items' keys, with the explanations.
"""

from __future__ import annotations

import collections
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medmllm.apps.base import APPS, AppSpec, Citation, generate_json, retrieve_citations
from medmllm.errors import AppError
from medmllm.models.generator import Generator
from medmllm.rag.retriever import Retriever

LETTERS = "ABCD"


class MCQ(BaseModel):
    """One item: a stem, four options, the key and why."""

    question: str = Field(min_length=5, description="The stem.")
    options: list[str] = Field(min_length=4, max_length=4, description="Options A-D.")
    answer: Literal["A", "B", "C", "D"] = Field(description="Letter of the one correct option.")
    explanation: str = Field("", description="Why the key is right, citing [1].")


class _ModelItems(BaseModel):
    items: list[MCQ] = Field(min_length=1, max_length=3)


class EducationRequest(BaseModel):
    """Generate items from a passage/topic, or score a learner's answers."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["generate", "score"] = Field("generate", description="What to do.")
    topic: str | None = Field(None, max_length=300, description="Topic to retrieve a passage for.")
    passage: str | None = Field(None, max_length=6000, description="Passage to write items from.")
    n_questions: int = Field(2, ge=1, le=3, description="Items to write.")
    items: list[MCQ] = Field(default_factory=list, description="Items to score (score mode).")
    answers: list[str] = Field(default_factory=list, description="Learner's letters (score mode).")

    @model_validator(mode="after")
    def _inputs(self) -> EducationRequest:
        if self.mode == "generate" and not (self.topic or self.passage):
            raise ValueError("generate mode needs 'passage' or 'topic'")
        if self.mode == "score" and len(self.items) != len(self.answers):
            raise ValueError(
                f"score mode needs one answer per item: {len(self.items)} items, "
                f"{len(self.answers)} answers"
            )
        return self


class ItemCheck(BaseModel):
    index: int = Field(description="Item number (0-based).")
    problems: list[str] = Field(description="Quality problems found (empty = passed).")


class ScoredItem(BaseModel):
    index: int = Field(description="Item number (0-based).")
    given: str = Field(description="Learner's answer.")
    key: str = Field(description="Correct letter.")
    correct: bool = Field(description="Whether the answer is right.")
    explanation: str = Field(description="Explanation of the key.")


class EducationResponse(BaseModel):
    """Generated items with checks, or a quiz score."""

    mode: str = Field(description="generate or score.")
    items: list[MCQ] = Field(default_factory=list, description="Items (keys balanced).")
    checks: list[ItemCheck] = Field(default_factory=list, description="Per-item quality checks.")
    key_positions: dict[str, int] = Field(default_factory=dict, description="Keys per letter.")
    citations: list[Citation] = Field(default_factory=list, description="The source passage.")
    scored: list[ScoredItem] = Field(default_factory=list, description="Score mode results.")
    score: float | None = Field(None, description="Fraction correct (score mode).")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def check_item(item: MCQ) -> list[str]:
    """Problems with one item: duplicate or empty options, key text repeated, 'all of the above'."""
    problems = []
    opts = [_norm(o) for o in item.options]
    if any(not o for o in opts):
        problems.append("an option is empty")
    if len(set(opts)) != len(opts):
        problems.append("options are not distinct (more than one could be correct)")
    if any(o in ("all of the above", "none of the above", "both a and b") for o in opts):
        problems.append("'all/none of the above' makes more than one option defensible")
    return problems


def balance_keys(items: list[MCQ]) -> list[MCQ]:
    """Move each key to position i mod 4 (swapping two options), so keys spread over A-D."""
    out = []
    for i, item in enumerate(items):
        target = i % 4
        src = LETTERS.index(item.answer)
        opts = list(item.options)
        opts[src], opts[target] = opts[target], opts[src]
        expl = item.explanation
        out.append(
            item.model_copy(
                update={"options": opts, "answer": LETTERS[target], "explanation": expl}
            )
        )
    return out


def run(
    request: EducationRequest, generator: Generator, retriever: Retriever | None = None
) -> EducationResponse:
    """Generate cited MCQs or score a quiz."""
    if request.mode == "score":
        scored = [
            ScoredItem(
                index=i,
                given=a.strip().upper()[:1],
                key=item.answer,
                correct=a.strip().upper()[:1] == item.answer,
                explanation=item.explanation,
            )
            for i, (item, a) in enumerate(zip(request.items, request.answers, strict=True))
        ]
        score = sum(s.correct for s in scored) / len(scored) if scored else None
        return EducationResponse(mode="score", scored=scored, score=score)
    if request.passage:
        citations = [Citation(n=1, source="user passage", doc_id="passage", text=request.passage)]
    else:
        citations = retrieve_citations(retriever, request.topic or "", 1)
        if not citations:
            raise AppError(
                f"no passage for topic {request.topic!r}: no index given or nothing found",
                hint="pass --index NAME (e.g. starter) or give a passage",
            )
    passage = citations[0].text
    messages = [
        {"role": "system", "content": "You write medical exam questions."},
        {
            "role": "user",
            "content": f"Passage [1]:\n{passage}\n\nWrite {request.n_questions} "
            "multiple-choice question(s) answerable from the passage, each with four options, "
            "exactly one correct, the answer letter, and an explanation citing [1]. JSON.",
        },
    ]
    out = generate_json(generator, messages, _ModelItems, max_tokens=220 * request.n_questions)
    items = balance_keys(out.items[: request.n_questions])
    for item in items:
        if "[1]" not in item.explanation:
            item.explanation = item.explanation.rstrip() + " [1]"
    positions: collections.Counter[str] = collections.Counter(i.answer for i in items)
    return EducationResponse(
        mode="generate",
        items=items,
        checks=[ItemCheck(index=i, problems=check_item(it)) for i, it in enumerate(items)],
        key_positions={letter: positions.get(letter, 0) for letter in LETTERS},
        citations=citations[:1],
    )


APP = APPS.register(
    "education",
    AppSpec(
        "education",
        "MCQs with explanations from a cited passage; quiz scoring.",
        EducationRequest,
        EducationResponse,
        run,
        "topic",
    ),
)
