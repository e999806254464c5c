"""Answer instructions for generative evaluation: direct answers and chain of thought.

The chain-of-thought instruction asks for a closing "The answer is X" because that is the
phrase :mod:`medmllm.eval.extract` looks for first; change both together. Tasks may override
either text in their YAML (``prompt.instruction`` / ``prompt.cot_instruction``).
"""

from __future__ import annotations

ANSWER_CUE = "The answer is"
DIRECT_INSTRUCTION = "Answer with the letter of the correct option only."
COT_INSTRUCTION = f"Think step by step, then finish with '{ANSWER_CUE} X'."


def answer_instruction(instruction: str, cot_instruction: str, *, cot: bool) -> str:
    """The instruction appended to a generative prompt in the chosen mode."""
    return cot_instruction if cot else instruction
