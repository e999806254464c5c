"""``medmllm agent ask|tools|calc``: the tool-using medical agent and its calculators."""

from __future__ import annotations

import json

import typer

from medmllm.cli.app import parse_settings
from medmllm.cli.ask import BACKEND_OPT, BASE_URL_OPT, MODEL_OPT, _open_index
from medmllm.cli.options import generator_options


def ask(
    question: str = typer.Argument(..., help="The question (values in prose)."),
    tools: str | None = typer.Option(
        None, "--tools", "-t", help="Comma-separated tool names (default: all built-in tools)."
    ),
    index: str | None = typer.Option(None, "--index", "-i", help="Add search over this index."),
    max_steps: int = typer.Option(4, "--max-steps", help="Model calls at most."),
    max_total_tokens: int = typer.Option(6000, "--max-total-tokens", help="Token budget."),
    constrained: bool = typer.Option(
        True, "--constrained/--no-constrained", help="Grammar-constrained JSON actions."
    ),
    backend: str | None = BACKEND_OPT,
    model: str | None = MODEL_OPT,
    base_url: str | None = BASE_URL_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print the full answer with its trace."),
) -> None:
    """Answer with tools; prints the answer and the trace of tool calls."""
    from medmllm.agent.loop import Agent, AgentConfig
    from medmllm.agent.tools import TOOLS, builtin_tools
    from medmllm.agent.tools.retrieve import retrieval_tool
    from medmllm.models.generator import load_generator

    config = AgentConfig(
        max_steps=max_steps, max_total_tokens=max_total_tokens, constrained=constrained
    )
    chosen = builtin_tools()
    if tools:
        chosen = [TOOLS.get(n.strip()) for n in tools.split(",") if n.strip()]
    if index:
        chosen.append(retrieval_tool(_open_index(index, 3)))
    generator = load_generator(backend, model, **generator_options(base_url=base_url))
    try:
        out = Agent(generator, chosen, config).run(question)
    finally:
        generator.close()
    if as_json:
        typer.echo(out.model_dump_json(indent=2))
        return
    typer.echo(out.answer)
    for step in out.trace:
        status = "error: " + step.error if step.error else "ok"
        typer.echo(f"  [{step.step}] {step.action}({json.dumps(step.arguments)}) -> {status}")
    typer.echo(f"  status={out.status} steps={out.steps} tokens={out.tokens} {out.latency_s:.1f}s")


def list_tools() -> None:
    """List the built-in tools (calculators, ICD-10-CM, interactions, units)."""
    from medmllm.agent.tools import builtin_tools

    for tool in builtin_tools():
        typer.echo(f"{tool.name:26} {tool.group:11} {tool.description[:80]}")


INPUTS_ARG = typer.Argument(None, help='Inputs as key=value, e.g. weight="154 lb".')


def calc(
    name: str = typer.Argument(..., help="Calculator name (see medmllm agent tools)."),
    inputs: list[str] | None = INPUTS_ARG,
) -> None:
    """Run one calculator directly; prints its JSON result with the citation."""
    from medmllm.agent.tools.calculators import CALCULATORS

    result = CALCULATORS.get(name)(parse_settings(inputs or []))
    typer.echo(result.model_dump_json(indent=2))


def register(app: typer.Typer) -> None:
    """Add ``medmllm agent``."""
    group = typer.Typer(
        help="Tool-using medical agent and clinical calculators.", no_args_is_help=True
    )
    group.command("ask")(ask)
    group.command("tools")(list_tools)
    group.command("calc")(calc)
    app.add_typer(group, name="agent")
