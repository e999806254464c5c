"""``medmllm app NAME …``: run a clinical application (one sub-command per registered app)."""

from __future__ import annotations

import json
from typing import Any

import typer

from medmllm.cli.ask import BACKEND_OPT, BASE_URL_OPT, MODEL_OPT, _open_index
from medmllm.cli.options import generator_options
from medmllm.errors import InvalidRequestError


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, lists), else text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidRequestError(
                f"expected key=value, got {pair!r}", hint="e.g. --set max_diagnoses=3"
            )
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


SET_OPT = typer.Option([], "--set", "-s", help="Request field as key=value (repeatable).")


def _make_command(name: str) -> Any:
    from medmllm.apps import APPS

    def command(
        text: str | None = typer.Argument(None, help="Main input (the app's primary field)."),
        settings: list[str] = SET_OPT,
        request_json: str | None = typer.Option(None, "--json", help="Whole request as JSON."),
        index: str | None = typer.Option(None, "--index", "-i", help="Retrieval index to use."),
        backend: str | None = BACKEND_OPT,
        model: str | None = MODEL_OPT,
        base_url: str | None = BASE_URL_OPT,
    ) -> None:
        from medmllm.apps import run_app
        from medmllm.models.generator import load_generator

        spec = APPS.get(name)
        request: dict[str, Any] = {}
        if request_json:
            try:
                request = json.loads(request_json)
            except json.JSONDecodeError as exc:
                raise InvalidRequestError(f"--json is not valid JSON: {exc}") from None
        request.update(parse_settings(settings))
        if text is not None:
            request[spec.primary] = text
        retriever = _open_index(index, 3) if index else None
        generator = load_generator(backend, model, **generator_options(base_url=base_url))
        try:
            response = run_app(name, request, generator, retriever)
        finally:
            generator.close()
        typer.echo(response.model_dump_json(indent=2))

    return command


def register(app: typer.Typer) -> None:
    """Add ``medmllm app`` with one sub-command per registered app."""
    from medmllm.apps import APPS

    group = typer.Typer(
        help="Clinical applications (structured JSON answers).", no_args_is_help=True
    )
    for name in APPS.names():
        group.command(name, help=f"Run the {name} app; prints its JSON response.")(
            _make_command(name)
        )
    app.add_typer(group, name="app")
