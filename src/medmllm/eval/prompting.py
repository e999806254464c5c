"""Turning items into model input: rendered prompts, few-shot prefixes, option rotations.

Prompts are rendered with Jinja2 from the task's template so that a task author can change the
wording without code. The few-shot prefix is the same string for every item of a task, which
lets the backends reuse its computed KV cache across questions (the main speed-up of 5-shot
evaluation), so keep it byte-identical: it is built once per task.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import jinja2

from medmllm.errors import ConfigError
from medmllm.eval.task import LETTERS, Item, Task
from medmllm.prompts.cot import answer_instruction
from medmllm.prompts.rag import neutralise
from medmllm.prompts.rag import with_passages as with_passages

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=64)
def _template(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"prompt.template has a Jinja2 syntax error on line {exc.lineno}: {exc.message}",
            hint="fix the template in the task YAML",
        ) from None


def options_text(options: dict[str, str] | None) -> str:
    """``A. text`` lines, in letter order."""
    return "\n".join(f"{k}. {v}" for k, v in (options or {}).items())


def render(task: Task, item: Item, passages: list[str] | None = None) -> str:
    """The item's prompt from the task template (no few-shot prefix, no instruction).

    A template that places ``passages`` itself gets them neutralised (one line each, no role
    tags), the same defence :func:`medmllm.prompts.rag.with_passages` applies.
    """
    context = item.context if task.include_context else None
    try:
        return _template(task.config.prompt.template).render(
            question=item.question,
            options=list((item.options or {}).items()),
            options_text=options_text(item.options),
            context=context,
            passages=[neutralise(p) for p in passages or []],
            meta=item.meta,
        )
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"task {task.name!r}: prompt.template uses an unknown variable ({exc.message})",
            hint="available: question, options, options_text, context, passages, meta",
        ) from None


def continuation(task: Task, item: Item, letter: str) -> str:
    """What the model must continue with to choose ``letter`` (``" B"`` or ``" no"``)."""
    if task.config.prompt.choices == "text":
        return " " + (item.options or {})[letter]
    return " " + letter


def fewshot_prefix(task: Task, exemplars: list[Item]) -> str:
    """All exemplars with their answers, joined by the task separator (or '' for zero-shot)."""
    if not exemplars:
        return ""
    sep = task.config.fewshot.separator
    shots = [render(task, ex) + continuation(task, ex, ex.answer) for ex in exemplars]
    return sep.join(shots) + sep


def rotate(item: Item, shift: int) -> tuple[Item, dict[str, str]]:
    """The item with its options cyclically shifted by ``shift`` positions.

    Returns the rotated item and a map new letter → original letter, used to put the scores of
    each rotation back on the original options (option-order debiasing).
    """
    letters = list((item.options or {}).keys())
    n = len(letters)
    if not n or shift % n == 0:
        return item, {k: k for k in letters}
    new_options: dict[str, str] = {}
    back: dict[str, str] = {}
    for i, old in enumerate(letters):
        new = LETTERS[(i + shift) % n]
        back[new] = old
    for new in LETTERS[:n]:
        new_options[new] = (item.options or {})[back[new]]
    inverse = {v: k for k, v in back.items()}
    return replace(item, options=new_options, answer=inverse.get(item.answer, item.answer)), back


def chat_prompt(
    task: Task,
    item: Item,
    exemplars: list[Item],
    *,
    cot: bool,
    passages: list[str] | None = None,
) -> str:
    """The user message for generative modes: exemplars, prompt, then the answer instruction."""
    body = render(task, item, passages).rstrip()
    if body.endswith("Answer:"):  # the log-likelihood cue reads oddly in a chat turn
        body = body[: -len("Answer:")].rstrip()
    body = with_passages(body, passages if "passages" not in task.config.prompt.template else None)
    prefix = fewshot_prefix(task, exemplars)
    prompt = task.config.prompt
    instruction = answer_instruction(prompt.instruction, prompt.cot_instruction, cot=cot)
    return f"{prefix}{body}\n\n{instruction}".strip()
