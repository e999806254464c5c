"""``medmllm ask`` and ``medmllm chat``."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from medmllm.assistant import Answer, Assistant, check_question
from medmllm.cli.failures import report
from medmllm.cli.options import (
    DEVICE_OPT,
    DTYPE_OPT,
    MODEL_ARG_OPT,
    TIMEOUT_OPT,
    generator_options,
)
from medmllm.errors import ContextLengthError
from medmllm.models.generator import SamplingParams

BACKEND_OPT = typer.Option(None, "--backend", "-b", help="hf, llamacpp or openai (default: auto).")
MODEL_OPT = typer.Option(
    None, "--model", "-m", help="Hub id, model folder, GGUF file; default: the embedded model."
)
MAX_TOKENS_OPT = typer.Option(256, "--max-tokens", help="Most tokens to generate (>= 1).")
BASE_URL_OPT = typer.Option(
    None, "--base-url", help="OpenAI-compatible server URL (openai backend), e.g. http://host/v1."
)


def ask(
    question: str = typer.Argument(..., help="The medical question."),
    backend: str | None = BACKEND_OPT,
    model: str | None = MODEL_OPT,
    max_tokens: int = MAX_TOKENS_OPT,
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
    base_url: str | None = BASE_URL_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    index: str | None = typer.Option(
        None, "--index", "-i", help="Ground the answer in this index (see medmllm index)."
    ),
    top_k: int = typer.Option(3, "-k", "--top-k", help="Passages retrieved with --index (>= 1)."),
    device: str | None = DEVICE_OPT,
    dtype: str | None = DTYPE_OPT,
    model_arg: list[str] = MODEL_ARG_OPT,
    timeout: float | None = TIMEOUT_OPT,
    image: str | None = typer.Option(
        None, "--image", help="PNG/JPEG/DICOM image for a multimodal model (MedMLLM folder)."
    ),
) -> None:
    """Answer a medical question (streams the answer as it is generated)."""
    check_question(question)
    if image is not None:  # fail on a bad image before loading a model
        from medmllm.models.imaging import load_image

        load_image(image)
    SamplingParams(max_tokens=max_tokens, temperature=temperature)  # fail before loading a model
    options = generator_options(
        base_url=base_url, device=device, dtype=dtype, model_args=model_arg, timeout=timeout
    )
    from medmllm.models.generator import load_generator

    retriever = _open_index(index, top_k) if index else None
    generator = load_generator(backend, model, **options)
    bot = Assistant(generator, retriever=retriever, k=top_k)
    console = Console(highlight=False)
    final: Answer | None = None
    try:
        images = [image] if image is not None else None
        for item in bot.stream(
            question, max_tokens=max_tokens, temperature=temperature, images=images
        ):
            if isinstance(item, Answer):
                final = item
            elif not as_json:
                console.print(item, end="", soft_wrap=True, markup=False)
    finally:
        generator.close()
    assert final is not None
    if as_json:
        typer.echo(json.dumps(final.to_dict(), ensure_ascii=False))
    else:
        console.print()
        _print_sources(console, final)
        _print_notes(console, final)
        console.print(
            f"[dim]{final.backend} · {final.model} · {final.usage.completion_tokens} tokens · "
            f"{final.latency_s:.1f} s · not a substitute for a clinician[/]"
        )


def _open_index(name: str, k: int):
    """Open ``name`` (the starter pack is built on first use: the quick start needs no data)."""
    from medmllm.errors import InvalidRequestError
    from medmllm.rag.index import indexes_root, open_index
    from medmllm.rag.starter import STARTER_INDEX, build_starter_index

    if k < 1:
        raise InvalidRequestError(f"-k must be >= 1, got {k}", hint="pass -k 3")
    if name == STARTER_INDEX and not (indexes_root() / name).exists():
        Console(stderr=True).print("[dim]building the starter index (first use)…[/]")
        build_starter_index(progress=False)
    return open_index(name)


def _print_sources(console: Console, final: Answer) -> None:
    """Sources under a grounded answer: cited passages, then unsupported sentences."""
    if "passages" not in final.extra:
        return
    cited = {c["n"] for c in final.extra["citations"]}
    console.print("[bold]Sources[/]" + ("" if cited else " [dim](none supported; retrieved:)[/]"))
    for p in final.extra["passages"]:
        if cited and p["n"] not in cited:
            continue
        console.print(
            f"  [{p['n']}] {p['title'] or p['doc_id']} — {p['url'] or p['source']}",
            markup=False,
            soft_wrap=True,
        )
    grounding = final.extra["grounding"]
    console.print(f"[dim]grounding {grounding['score']:.2f}[/]")
    for sentence in grounding["unsupported"]:
        console.print(f"  unsupported: {sentence}", style="yellow", markup=False, soft_wrap=True)


def _print_notes(console: Console, final: Answer) -> None:
    """What was left out to fit the context window, and the unsafe-advice warning."""
    if final.extra.get("passages_dropped"):
        console.print(
            f"[dim]note: {final.extra['passages_dropped']} retrieved passage(s) dropped to fit "
            "the model's context window[/]"
        )
    if final.extra.get("history_dropped"):
        console.print(
            f"[dim]note: {final.extra['history_dropped']} older message(s) dropped to fit the "
            "model's context window[/]"
        )
    warning = (final.extra.get("advice_check") or {}).get("warning")
    if warning:
        console.print(warning, style="bold yellow", markup=False, soft_wrap=True)


def chat(
    backend: str | None = BACKEND_OPT,
    model: str | None = MODEL_OPT,
    max_tokens: int = MAX_TOKENS_OPT,
    base_url: str | None = BASE_URL_OPT,
    index: str | None = typer.Option(
        None, "--index", "-i", help="Ground every answer in this index (see medmllm index)."
    ),
    top_k: int = typer.Option(3, "-k", "--top-k", help="Passages retrieved with --index (>= 1)."),
    device: str | None = DEVICE_OPT,
    dtype: str | None = DTYPE_OPT,
    model_arg: list[str] = MODEL_ARG_OPT,
    timeout: float | None = TIMEOUT_OPT,
) -> None:
    """Interactive multi-turn chat; type /exit to leave, /reset to forget the conversation.

    When the conversation outgrows the model's context window, the oldest turns are dropped
    (a note says how many); a single message too long to fit is refused and the chat goes on.
    """
    SamplingParams(max_tokens=max_tokens)
    options = generator_options(
        base_url=base_url, device=device, dtype=dtype, model_args=model_arg, timeout=timeout
    )
    from medmllm.models.generator import load_generator

    console = Console(highlight=False)
    retriever = _open_index(index, top_k) if index else None
    generator = load_generator(backend, model, **options)
    bot = Assistant(generator, keep_history=True, retriever=retriever, k=top_k)
    console.print(
        f"[bold]medmllm chat[/] · {generator.backend} · {generator.model_id} "
        "· /exit to quit, /reset to start over"
    )
    try:
        while True:
            try:
                line = console.input("[bold cyan]you> [/]")
            except EOFError:
                break
            command = line.strip()
            if command in ("/exit", "/quit"):
                break
            if command == "/reset":
                bot.reset()
                console.print("[dim](conversation cleared)[/]")
                continue
            if not command:
                continue
            console.print("[bold green]assistant> [/]", end="")
            try:
                for item in bot.stream(command, max_tokens=max_tokens):
                    if isinstance(item, Answer):
                        console.print()
                        _print_sources(console, item)
                        _print_notes(console, item)
                    else:
                        console.print(item, end="", soft_wrap=True, markup=False)
            except ContextLengthError as exc:  # one too-long message must not end the chat
                console.print()
                report(Console(stderr=True, highlight=False), exc.message, exc.hint)
    finally:
        generator.close()


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
    app.command("chat")(chat)
