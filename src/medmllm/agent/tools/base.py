"""What the agent can call: a :class:`Tool` is a name, a description, a JSON schema and a function.

Tools return JSON-serialisable dicts. A bad argument raises
:class:`~medmllm.errors.ToolInputError` (the loop shows the message to the model, so it can fix
the call or ask the user). Built-in tools register in :data:`TOOLS`; tools bound to a resource
(retrieval over one index) are built by factories and passed to the agent directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medmllm.registry import Registry


@dataclass(frozen=True)
class Tool:
    """A callable tool with a JSON-schema signature.

    Attributes:
        name: function name the model calls (``[A-Za-z0-9_-]+``).
        description: one or two sentences telling the model when to use it.
        parameters: JSON schema (``type: object``) of the arguments.
        fn: the implementation, ``fn(arguments) -> dict``.
        group: what kind of tool it is ("calculator", "lookup", "retrieval", "conversion").
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[[dict[str, Any]], dict[str, Any]]
    group: str = "lookup"

    def __call__(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.fn(arguments)

    def openai_schema(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools=[...]`` format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def brief(self) -> str:
        """One short line for a prompt: name(arg, …): first sentence of the description.

        Prompts stay short for small local models; the full schema goes to the decoder.
        """
        props = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        args = ", ".join(p if p in required else f"{p}?" for p in props)
        return f"{self.name}({args}): {self.description.split('. ')[0]}"


TOOLS: Registry[Tool] = Registry("tool")


def calculator_tools() -> list[Tool]:
    """Every registered calculator as a tool (name = calculator name)."""
    from medmllm.agent.tools.calculators import CALCULATORS

    tools = []
    for name in CALCULATORS.names():
        calc = CALCULATORS.get(name)

        def run(arguments: dict[str, Any], _calc: Any = calc) -> dict[str, Any]:
            return _calc(arguments).model_dump(mode="json")

        desc = f"{calc.title}. {calc.description}"
        tools.append(Tool(name, desc, calc.parameters_schema(), run, group="calculator"))
    return tools
