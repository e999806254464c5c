"""Prompt text and templates: system prompts, chain-of-thought and RAG prompts."""

from medmllm.prompts.cot import COT_INSTRUCTION, DIRECT_INSTRUCTION
from medmllm.prompts.rag import build_rag_messages, passages_block, with_passages
from medmllm.prompts.system import MEDICAL_SYSTEM_PROMPT, build_messages

__all__ = [
    "COT_INSTRUCTION",
    "DIRECT_INSTRUCTION",
    "MEDICAL_SYSTEM_PROMPT",
    "build_messages",
    "build_rag_messages",
    "passages_block",
    "with_passages",
]
