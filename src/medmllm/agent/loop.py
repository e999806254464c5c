"""The tool-calling loop: the model picks a tool, the loop runs it, until an answer or the budget.

Each step the model emits one *action*: ``{"action": "<tool name>", "arguments": {...}}``, or
``{"action": "final_answer", "arguments": {"answer": "..."}}``, or
``{"action": "ask_user", "arguments": {"question": "..."}}``. Three ways to get it:

* ``native`` — OpenAI-compatible servers that support ``tools=[...]`` return tool calls;
* ``json`` with ``constrained=True`` — the action's JSON schema goes to the Generator as
  ``json_schema`` (a llama.cpp grammar, or ``response_format`` on servers), so even the 135M
  embedded model emits parseable calls;
* ``json`` unconstrained — the reply is parsed, and malformed JSON is repaired (``json-repair``)
  or refused with an error the model sees on the next step.

Safety rules the loop enforces rather than trusts the model with: tool inputs are validated (the
error names the range / unit / missing field); numeric arguments must appear in the user's
words (``require_grounded_numbers``), so a value the model invented is refused; when a
calculator refused for missing values and nothing succeeded after, the answer asks for them;
past ``max_steps`` or ``max_total_tokens`` the loop stops with a partial answer. The answer
carries the full trace (tool, arguments, result or error, time per step).

Example:
    >>> agent = Agent(load_generator("llamacpp"), builtin_tools())  # doctest: +SKIP
    >>> agent.run("BMI of a 70 kg man, 175 cm tall?").answer  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.agent.tools.base import Tool
from medmllm.errors import AgentError, MedMLLMError, ToolInputError
from medmllm.models.generator import Generator

FINAL = "final_answer"
ASK = "ask_user"
Status = Literal["final", "ask_user", "budget_exhausted"]

SYSTEM = """You are a careful clinical assistant that uses tools for every calculation.
Reply with ONE JSON object per turn and nothing else:
{{"action": "<tool name>", "arguments": {{...}}}} to call a tool,
{{"action": "final_answer", "arguments": {{"answer": "..."}}}} when you can answer,
{{"action": "ask_user", "arguments": {{"question": "..."}}}} if a needed value is missing.
Use only values stated by the user (give their units, e.g. "154 lb"); never invent a value.
Tools:
{tools}"""


class AgentConfig(BaseModel):
    """Budgets and decoding mode of the agent loop."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(4, ge=1, le=50, description="Model calls at most (tool + final).")
    max_total_tokens: int = Field(
        6000, ge=64, description="Prompt + completion tokens over the whole run at most."
    )
    max_tokens_per_step: int = Field(160, ge=16, description="Completion tokens per step.")
    mode: Literal["auto", "native", "json"] = Field(
        "auto", description="native tool calls (OpenAI-compatible), json actions, or auto."
    )
    constrained: bool = Field(
        True, description="Send the action JSON schema to the generator (grammar/format)."
    )
    require_grounded_numbers: bool = Field(
        True, description="Refuse numeric tool arguments that do not appear in the user's text."
    )
    temperature: float = Field(0.0, ge=0, description="Sampling temperature.")


class TraceStep(BaseModel):
    """One step of the loop, as recorded in the answer."""

    step: int = Field(description="1-based step number.")
    action: str = Field(description="Tool name, final_answer, ask_user, or 'invalid'.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments as parsed.")
    result: dict[str, Any] | None = Field(None, description="Tool result, if it ran.")
    error: str | None = Field(None, description="Why the call was refused or failed.")
    raw: str = Field("", description="The model's text for this step.")
    repaired: bool = Field(False, description="Whether malformed JSON was repaired.")
    tokens: int = Field(0, description="Prompt + completion tokens of this step.")
    time_s: float = Field(0.0, description="Wall time of the model call and the tool.")


class AgentAnswer(BaseModel):
    """What :meth:`Agent.run` returns."""

    answer: str = Field(description="Final text for the user (or the question back to them).")
    status: Status = Field(description="final, ask_user, or budget_exhausted (partial).")
    value: float | int | str | None = Field(
        None, description="Main value of the last successful calculator call, if any."
    )
    tool_results: list[dict[str, Any]] = Field(
        default_factory=list, description="Successful tool results, in order."
    )
    missing: list[str] = Field(default_factory=list, description="Inputs the user must give.")
    trace: list[TraceStep] = Field(default_factory=list, description="Every step.")
    steps: int = Field(0, description="Model calls made.")
    tokens: int = Field(0, description="Tokens used in total.")
    latency_s: float = Field(0.0, description="Wall time of the run.")
    mode: str = Field("json", description="How actions were obtained (native or json).")


# -- parsing ----------------------------------------------------------------------------------
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_action(text: str) -> tuple[dict[str, Any], bool]:
    """The action object in ``text``; (action, repaired). Raises ToolInputError if none."""
    body = text.strip()
    fence = _FENCE.search(body)
    if fence:
        body = fence.group(1).strip()
    start = body.find("{")
    if start == -1:
        raise ToolInputError(
            f"the reply is not a JSON action: {text[:120]!r}",
            hint='reply with {"action": ..., "arguments": {...}}',
        )
    body = body[start:]
    try:
        obj, _ = json.JSONDecoder().raw_decode(body)
        repaired = False
    except json.JSONDecodeError:
        from json_repair import loads as repair_loads

        obj = repair_loads(body)
        repaired = True
    if not isinstance(obj, dict):
        raise ToolInputError(f"the reply is not a JSON object: {text[:120]!r}")
    action = obj.get("action") or obj.get("tool") or obj.get("name")
    if not isinstance(action, str) or not action:
        if isinstance(obj.get("answer"), str):  # {"answer": "..."} -> final answer
            return {"action": FINAL, "arguments": {"answer": obj["answer"]}}, True
        raise ToolInputError(f"the JSON has no 'action' naming a tool: {text[:120]!r}")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        from json_repair import loads as repair_loads

        args = repair_loads(args) if args.strip() else {}
        repaired = True
    if not isinstance(args, dict):
        raise ToolInputError(f"'arguments' must be an object, got {args!r}")
    return {"action": action, "arguments": args}, repaired


def action_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """JSON schema of one action: any tool with its arguments, a final answer, or a question."""
    options = [
        {
            "type": "object",
            "properties": {"action": {"const": t.name}, "arguments": t.parameters},
            "required": ["action", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    for name, key in ((FINAL, "answer"), (ASK, "question")):
        options.append(
            {
                "type": "object",
                "properties": {
                    "action": {"const": name},
                    "arguments": {
                        "type": "object",
                        "properties": {key: {"type": "string"}},
                        "required": [key],
                        "additionalProperties": False,
                    },
                },
                "required": ["action", "arguments"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": options}


_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def _numbers(text: str) -> set[float]:
    return {float(m) for m in _NUM.findall(text.replace(",", ""))}


def ungrounded_numbers(arguments: dict[str, Any], context: str) -> list[str]:
    """Argument paths whose numbers are not written anywhere in ``context``."""
    seen = _numbers(context)
    bad: list[str] = []

    def visit(path: str, value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int | float):
            if not any(abs(float(value) - s) <= 1e-9 * max(1.0, abs(s)) for s in seen):
                bad.append(f"{path}={value:g}")
        elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+(?:\.\d+)?\s*[^\d\s-].*", value):
            visit(path, float(_NUM.findall(value)[0]))
        elif isinstance(value, dict) and "value" in value:
            visit(path, value["value"])

    for key, value in arguments.items():
        visit(key, value)
    return bad


_MISSING = re.compile(r"(\w+): required value is missing")


class Agent:
    """A tool-using agent over any :class:`~medmllm.models.generator.Generator`.

    Args:
        generator: the model.
        tools: tools it may call (names must be unique).
        config: budgets and decoding mode.
    """

    def __init__(
        self, generator: Generator, tools: Sequence[Tool], config: AgentConfig | None = None
    ) -> None:
        if not tools:
            raise AgentError("the agent needs at least one tool", hint="pass builtin_tools()")
        self.generator = generator
        self.tools = {t.name: t for t in tools}
        if len(self.tools) != len(tools):
            raise AgentError("tool names must be unique")
        self.config = config or AgentConfig()

    # -- public -------------------------------------------------------------------------------
    def run(self, question: str, history: Sequence[dict[str, str]] = ()) -> AgentAnswer:
        """Answer ``question`` (with earlier user/assistant turns in ``history``)."""
        from medmllm.models.backends.openai import OpenAIGenerator

        cfg = self.config
        native = cfg.mode == "native" or (
            cfg.mode == "auto" and isinstance(self.generator, OpenAIGenerator)
        )
        if cfg.mode == "native" and not isinstance(self.generator, OpenAIGenerator):
            raise AgentError(
                f"native tool calls need the openai backend, got {self.generator.backend!r}",
                hint="use mode='json' (constrained JSON actions) for local backends",
            )
        user_text = " ".join([m["content"] for m in history if m["role"] == "user"] + [question])
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM.format(tools=self._tool_list())},
            *history,
            {"role": "user", "content": question},
        ]
        schema = action_schema(list(self.tools.values())) if cfg.constrained else None
        trace: list[TraceStep] = []
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        tokens = 0
        start = time.perf_counter()
        for step in range(1, cfg.max_steps + 1):
            if tokens >= cfg.max_total_tokens:
                break
            t0 = time.perf_counter()
            if native:
                assert isinstance(self.generator, OpenAIGenerator)
                raw, parsed, used = self._native_step(self.generator, messages)
                repaired = False
                error = None
            else:
                comp = self.generator.chat(
                    messages,
                    max_tokens=min(cfg.max_tokens_per_step, max(cfg.max_total_tokens - tokens, 1)),
                    temperature=cfg.temperature,
                    json_schema=schema,
                )
                raw, used = comp.text, comp.usage.total_tokens
                try:
                    parsed, repaired = parse_action(raw)
                    error = None
                except ToolInputError as exc:
                    parsed, repaired, error = None, False, exc.message
            tokens += used
            rec = TraceStep(step=step, action="invalid", raw=raw, repaired=repaired, tokens=used)
            if parsed is None:
                rec.error = error or "no action in the reply"
                self._feedback(messages, raw, f"Error: {rec.error}. Reply with one JSON action.")
            else:
                rec.action, rec.arguments = parsed["action"], parsed["arguments"]
                done = self._act(rec, user_text, results, missing, messages, raw)
                if done is not None:
                    rec.time_s = round(time.perf_counter() - t0, 4)
                    trace.append(rec)
                    return self._finish(done, rec, trace, results, missing, tokens, start, native)
            rec.time_s = round(time.perf_counter() - t0, 4)
            trace.append(rec)
        return self._partial(trace, results, missing, tokens, start, native)

    # -- steps --------------------------------------------------------------------------------
    def _act(
        self,
        rec: TraceStep,
        user_text: str,
        results: list[dict[str, Any]],
        missing: list[str],
        messages: list[dict[str, Any]],
        raw: str,
    ) -> str | None:
        """Run one action; returns "final"/"ask_user" when the run ends, else None."""
        if rec.action == FINAL:
            return "final"
        if rec.action == ASK:
            return "ask_user"
        tool = self.tools.get(rec.action)
        if tool is None:
            rec.error = f"unknown tool {rec.action!r}; available: {', '.join(sorted(self.tools))}"
        else:
            bad = (
                ungrounded_numbers(rec.arguments, user_text)
                if self.config.require_grounded_numbers and tool.group == "calculator"
                else []
            )
            if bad:
                rec.error = (
                    f"value(s) {', '.join(bad)} do not appear in the user's message; use only "
                    "values the user gave (with their units) or ask_user for the missing ones"
                )
            else:
                try:
                    rec.result = tool(rec.arguments)
                    results.append({"tool": tool.name, **rec.result})
                    missing.clear()
                except ToolInputError as exc:
                    rec.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
                    missing[:] = _MISSING.findall(exc.message) or missing
                except MedMLLMError as exc:
                    rec.error = exc.message
        note = (
            f"Tool {rec.action} returned: {json.dumps(_short(rec.result))}"
            if rec.result is not None
            else f"Tool {rec.action} failed: {rec.error}"
        )
        self._feedback(messages, raw, note + "\nNext action (JSON):")
        return None

    def _native_step(
        self, gen: Any, messages: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any] | None, int]:
        """One call with ``tools=[...]``; the first tool call becomes the action."""
        response = gen._call(
            "POST /chat/completions (tools)",
            gen.client.chat.completions.create,
            model=gen.model_id,
            messages=messages,
            tools=[t.openai_schema() for t in self.tools.values()],
            tool_choice="auto",
            max_tokens=self.config.max_tokens_per_step,
            temperature=self.config.temperature,
        )
        used = response.usage.total_tokens if response.usage else 0
        msg = response.choices[0].message
        calls = msg.tool_calls or []
        if calls:
            call = calls[0]
            try:
                args = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                from json_repair import loads as repair_loads

                args = repair_loads(call.function.arguments)
            raw = json.dumps({"action": call.function.name, "arguments": args})
            return raw, {"action": call.function.name, "arguments": args or {}}, used
        text = msg.content or ""
        try:
            parsed, _ = parse_action(text)
        except ToolInputError:
            parsed = {"action": FINAL, "arguments": {"answer": text}}
        return text, parsed, used

    # -- endings ------------------------------------------------------------------------------
    def _finish(
        self,
        kind: str,
        rec: TraceStep,
        trace: list[TraceStep],
        results: list[dict[str, Any]],
        missing: list[str],
        tokens: int,
        start: float,
        native: bool,
    ) -> AgentAnswer:
        args = rec.arguments
        text = str(args.get("answer") or args.get("question") or "").strip()
        status: Status = "ask_user" if kind == "ask_user" else "final"
        if missing:  # a calculator refused for missing inputs and nothing succeeded since
            status = "ask_user"
            text = f"I need {', '.join(missing)} to calculate this; please provide them."
        elif status == "final" and results:
            text = (text + "\n\n" if text else "") + _summary(results[-1])
        return self._answer(text, status, trace, results, missing, tokens, start, native)

    def _partial(
        self,
        trace: list[TraceStep],
        results: list[dict[str, Any]],
        missing: list[str],
        tokens: int,
        start: float,
        native: bool,
    ) -> AgentAnswer:
        text = f"Stopped: the step/token budget ran out after {len(trace)} step(s)."
        if missing:
            text += f" Missing inputs: {', '.join(missing)}."
        if results:
            text += " Partial result: " + _summary(results[-1])
        return self._answer(
            text, "budget_exhausted", trace, results, missing, tokens, start, native
        )

    def _answer(
        self,
        text: str,
        status: Status,
        trace: list[TraceStep],
        results: list[dict[str, Any]],
        missing: list[str],
        tokens: int,
        start: float,
        native: bool,
    ) -> AgentAnswer:
        value = next((r.get("value") for r in reversed(results) if "value" in r), None)
        return AgentAnswer(
            answer=text,
            status=status,
            value=value,
            tool_results=results,
            missing=list(missing),
            trace=trace,
            steps=len(trace),
            tokens=tokens,
            latency_s=round(time.perf_counter() - start, 4),
            mode="native" if native else "json",
        )

    def _tool_list(self) -> str:
        return "\n".join(f"- {t.brief()}" for t in self.tools.values())

    @staticmethod
    def _feedback(messages: list[dict[str, Any]], raw: str, note: str) -> None:
        messages.append({"role": "assistant", "content": raw or "(empty)"})
        messages.append({"role": "user", "content": note})


def _short(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a tool result the model needs to read (keeps prompts short)."""
    if result is None:
        return None
    keep = (
        "value",
        "unit",
        "interpretation",
        "results",
        "interactions",
        "note",
        "passages",
        "text",
        "code",
        "description",
    )
    return {k: v for k, v in result.items() if k in keep} or result


def _summary(result: dict[str, Any]) -> str:
    """One sentence from a tool result: value, unit, reading, and the citation."""
    if "calculator" in result:
        unit = f" {result['unit']}" if result.get("unit") and result["unit"] != "date" else ""
        text = f"{result['title']}: {result['value']}{unit} — {result['interpretation']}."
        return text + f" Source: {result['citation']}"
    if "note" in result:  # drug interactions
        found = "; ".join(
            f"{'+'.join(i['drugs'])}: {i['severity']}, {i['effect']}"
            for i in result["interactions"]
        )
        return (found or "No interaction found in the table.") + " " + result["note"]
    return json.dumps(_short(result))[:400]
