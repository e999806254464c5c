"""Prompt text and templates: system prompts, chain-of-thought and RAG prompts."""

from medmllm.prompts.system import MEDICAL_SYSTEM_PROMPT, build_messages

__all__ = ["MEDICAL_SYSTEM_PROMPT", "build_messages"]
