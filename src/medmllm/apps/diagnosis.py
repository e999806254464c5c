"""Diagnosis support: case text (+ optional image) → ranked differential, red flags, next tests.

The model fills a JSON schema (constrained decoding); passages retrieved for the case are numbered
in the prompt and the answer's ``citations`` list the ones the model referred to. Output is
decision support with a disclaimer, never a diagnosis.

Example:
    >>> from medmllm.apps.diagnosis import DiagnosisRequest, run
    >>> run(DiagnosisRequest(case="58-year-old man, crushing chest pain..."), gen)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.apps.base import (
    APPS,
    DISCLAIMER,
    AppSpec,
    Citation,
    generate_json,
    passages_block,
    retrieve_citations,
)
from medmllm.errors import AppError
from medmllm.models.generator import Generator
from medmllm.rag.retriever import Retriever

Likelihood = Literal["most likely", "likely", "possible", "less likely"]


class DiagnosisRequest(BaseModel):
    """A case to reason about."""

    model_config = ConfigDict(extra="forbid")
    case: str = Field(min_length=10, max_length=8000, description="Case presentation (free text).")
    image: str | None = Field(None, description="Path to an image (needs a multimodal model).")
    max_diagnoses: int = Field(5, ge=1, le=10, description="Differential entries at most.")
    k: int = Field(3, ge=0, le=10, description="Passages retrieved for grounding (0 = none).")


class Differential(BaseModel):
    diagnosis: str = Field(description="Condition name.")
    likelihood: Likelihood = Field(description="Likelihood wording, most likely first.")
    reasoning: str = Field("", description="Findings for and against.")


class _ModelOutput(BaseModel):
    """What the model is asked to produce (the schema sent as the grammar).

    Later fields have defaults so that an answer cut off at max_tokens, once its JSON is
    repaired, still validates with what was written.
    """

    differential: list[Differential] = Field(min_length=1, max_length=5)
    red_flags: list[str] = Field(
        default_factory=list, max_length=4, description="Findings needing urgent action."
    )
    next_tests: list[str] = Field(
        default_factory=list, max_length=4, description="Investigations to order next."
    )
    cited: list[int] = Field(default_factory=list, max_length=5, description="Passage numbers.")


class DiagnosisResponse(BaseModel):
    """A ranked differential with red flags, next tests and cited passages."""

    differential: list[Differential] = Field(description="Ranked, most likely first.")
    red_flags: list[str] = Field(description="Findings needing urgent action.")
    next_tests: list[str] = Field(description="Suggested investigations.")
    citations: list[Citation] = Field(description="Passages the answer relied on.")
    disclaimer: str = Field(DISCLAIMER, description="Decision-support notice.")


_ORDER = {"most likely": 0, "likely": 1, "possible": 2, "less likely": 3}

PROMPT = """Case:
{case}

{passages}Give a differential diagnosis (most likely first, with likelihood wording), red flags
that need urgent action, and the next tests. Cite passage numbers you used in "cited".
Answer in JSON."""


def run(
    request: DiagnosisRequest, generator: Generator, retriever: Retriever | None = None
) -> DiagnosisResponse:
    """Differential diagnosis for ``request.case``."""
    images = None
    if request.image:
        from pathlib import Path

        if not Path(request.image).is_file():
            raise AppError(f"image {request.image!r} not found", hint="pass an existing file")
        images = [request.image]
    citations = retrieve_citations(retriever, request.case, request.k)
    passages = f"Reference passages:\n{passages_block(citations)}\n\n" if citations else ""
    messages = [
        {"role": "system", "content": "You are a clinical decision-support assistant."},
        {"role": "user", "content": PROMPT.format(case=request.case, passages=passages)},
    ]
    out = generate_json(generator, messages, _ModelOutput, max_tokens=320, images=images)
    ranked = sorted(out.differential, key=lambda d: _ORDER[d.likelihood])
    cited = [c for c in citations if c.n in set(out.cited)] or citations
    return DiagnosisResponse(
        differential=ranked[: request.max_diagnoses],
        red_flags=out.red_flags,
        next_tests=out.next_tests,
        citations=cited,
    )


APP = APPS.register(
    "diagnosis",
    AppSpec(
        "diagnosis",
        "Case text (+ image) -> ranked differential, red flags, next tests, citations.",
        DiagnosisRequest,
        DiagnosisResponse,
        run,
        "case",
    ),
)
