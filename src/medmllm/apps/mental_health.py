"""Supportive, non-diagnostic conversation with crisis detection always on.

Every user turn goes through :class:`~medmllm.safety.crisis.CrisisDetector` *before* the model:
a flagged message gets the safe-messaging reply with crisis resources, and the model is not
asked. Model replies are checked for diagnostic labelling ("you have depression") and replaced by
a non-diagnostic reply when they diagnose.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.apps.base import APPS, AppSpec
from medmllm.models.generator import Generator
from medmllm.rag.retriever import Retriever
from medmllm.safety.crisis import CrisisDetector, resources_for

SYSTEM = (
    "You are a warm, supportive listener. Reflect the person's feelings, ask gently about what "
    "helps, and suggest talking to a professional when appropriate. Never diagnose, never "
    "name a disorder the person has, never give medication advice. Two to four sentences."
)

_DIAGNOSING = re.compile(
    r"\byou (?:have|are suffering from|suffer from|are showing signs of|meet the criteria for)\b"
    r"[^.]{0,40}\b(?:depression|anxiety disorder|bipolar|ptsd|ocd|schizophrenia|adhd|"
    r"personality disorder|disorder)\b",
    re.I,
)
NON_DIAGNOSTIC = (
    "Thank you for sharing this with me; it sounds really hard. I can't tell what is going on "
    "medically, but a doctor or mental-health professional can help you make sense of it. "
    "Would you like to talk about what has been weighing on you most?"
)


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"] = Field(description="Who spoke.")
    content: str = Field(max_length=4000, description="What was said.")


class MentalHealthRequest(BaseModel):
    """One message in a supportive conversation."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=4000, description="The person's message.")
    history: list[Turn] = Field(default_factory=list, description="Earlier turns.")


class MentalHealthResponse(BaseModel):
    """A supportive reply, or the crisis reply with resources."""

    reply: str = Field(description="What to show the person.")
    crisis: dict[str, object] = Field(description="Crisis detector verdict (PHI-free).")
    resources: list[dict[str, str]] = Field(
        default_factory=list, description="Crisis resources (always given when flagged)."
    )
    source: Literal["model", "crisis_protocol", "non_diagnostic_filter"] = Field(
        description="Where the reply came from."
    )


def run(
    request: MentalHealthRequest, generator: Generator, retriever: Retriever | None = None
) -> MentalHealthResponse:
    """Reply supportively; crisis messages get the safe-messaging protocol, never the model."""
    detector = CrisisDetector()
    turns = [t.model_dump() for t in request.history] + [
        {"role": "user", "content": request.message}
    ]
    # Every user turn is checked, latest first: a crisis said earlier still counts.
    verdict = detector.detect(request.message)
    for turn in reversed(request.history):
        if verdict.flagged:
            break
        if turn.role == "user":
            verdict = detector.detect(turn.content)
    if verdict.flagged:
        return MentalHealthResponse(
            reply=detector.reply(verdict),
            crisis=verdict.to_dict(),
            resources=[
                {k: str(v) for k, v in r.model_dump().items()}
                for r in resources_for(detector.config)
            ],
            source="crisis_protocol",
        )
    comp = generator.chat(
        [{"role": "system", "content": SYSTEM}, *turns], max_tokens=120, temperature=0.0
    )
    reply = comp.text.strip()
    source: Literal["model", "non_diagnostic_filter"] = "model"
    if not reply or _DIAGNOSING.search(reply):
        reply, source = NON_DIAGNOSTIC, "non_diagnostic_filter"
    return MentalHealthResponse(reply=reply, crisis=verdict.to_dict(), source=source)


APP = APPS.register(
    "mental_health",
    AppSpec(
        "mental_health",
        "Supportive, non-diagnostic conversation; crisis detection always on.",
        MentalHealthRequest,
        MentalHealthResponse,
        run,
        "message",
    ),
)
