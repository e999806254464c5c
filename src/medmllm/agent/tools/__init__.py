"""Agent tools: clinical calculators, ICD-10-CM, drug interactions, units, retrieval.

Each tool module registers itself in :data:`~medmllm.agent.tools.base.TOOLS`;
:func:`builtin_tools` imports them all (here, in the package, so that the tool modules and the
registry they import never import each other).
"""

from __future__ import annotations

from medmllm.agent.tools.base import TOOLS, Tool, calculator_tools

__all__ = ["TOOLS", "Tool", "builtin_tools"]


def builtin_tools() -> list[Tool]:
    """All registered tools: calculators, ICD-10-CM, drug interactions, unit conversion."""
    import medmllm.agent.tools.ddi
    import medmllm.agent.tools.icd10
    import medmllm.agent.tools.units_tool  # noqa: F401 - register

    for tool in calculator_tools():
        if tool.name not in TOOLS:
            TOOLS.register(tool.name, tool)
    return [TOOLS.get(n) for n in TOOLS.names()]
