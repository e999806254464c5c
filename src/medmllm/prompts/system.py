"""The medical assistant's system prompt.

Kept short on purpose: small embedded models follow a few plain sentences better than a long
policy, and every backend (even 135M parameters) sees the same framing.
"""

from __future__ import annotations

from medmllm.models.generator import Message

MEDICAL_SYSTEM_PROMPT = (
    "You are a careful medical information assistant. Answer clearly and accurately in plain "
    "language, and say when you are unsure. You are not a substitute for a clinician: advise "
    "people to consult a doctor for diagnosis and treatment. If a message describes red-flag "
    "symptoms (chest pain, trouble breathing, stroke signs, severe bleeding, thoughts of "
    "self-harm), tell them to call emergency services or go to the nearest emergency department "
    "now."
)


def build_messages(
    question: str,
    history: list[Message] | None = None,
    system_prompt: str = MEDICAL_SYSTEM_PROMPT,
) -> list[Message]:
    """System prompt + earlier turns + the new user question."""
    return [Message("system", system_prompt), *(history or []), Message("user", question)]
