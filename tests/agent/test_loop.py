"""The agent loop with a scripted model: trace, budgets, and every bad-input path."""

from __future__ import annotations

import json

import httpx
import pytest

from medmllm.agent.loop import Agent, AgentConfig, action_schema, parse_action
from medmllm.agent.tools import builtin_tools
from medmllm.errors import AgentError, ToolInputError


def act(action: str, **arguments: object) -> str:
    return json.dumps({"action": action, "arguments": arguments})


FINAL = act("final_answer", answer="Done.")


@pytest.fixture(scope="module")
def tools():
    return builtin_tools()


def test_tool_call_then_final_answer_with_trace(scripted_generator, tools) -> None:
    gen = scripted_generator([act("bmi", weight="154 lb", height="69 in"), FINAL])
    out = Agent(gen, tools).run("He weighs 154 lb and is 69 in tall. BMI?")
    assert out.status == "final" and out.value == pytest.approx(22.74)
    assert [s.action for s in out.trace] == ["bmi", "final_answer"]
    step = out.trace[0]
    assert step.arguments == {"weight": "154 lb", "height": "69 in"} and step.result
    assert step.time_s >= 0 and step.error is None
    assert "Body mass index: 22.74 kg/m2" in out.answer and "WHO" in out.answer
    # constrained decoding: the action schema went to the generator
    assert "json_schema" in gen.calls[0][2] and gen.calls[0][2]["json_schema"]["anyOf"]


def test_unconstrained_sends_no_schema(scripted_generator, tools) -> None:
    gen = scripted_generator([FINAL])
    Agent(gen, tools, AgentConfig(constrained=False)).run("hello")
    assert gen.calls[0][2].get("json_schema") is None


def test_out_of_range_is_reported_and_corrected(scripted_generator, tools) -> None:
    q = "Man, 60 years, 72 kg, creatinine 88.4 µmol/L. Creatinine clearance?"
    gen = scripted_generator(
        [
            act("cockcroft_gault", age=60, weight=72, sex="male", creatinine=88.4),
            act("cockcroft_gault", age=60, weight=72, sex="male", creatinine="88.4 umol/L"),
            FINAL,
        ]
    )
    out = Agent(gen, tools).run(q)
    assert "outside the valid range 0.1–20 mg/dL" in out.trace[0].error
    assert out.value == pytest.approx(80.0) and out.status == "final"
    # the error went back to the model
    assert any("Tool cockcroft_gault failed" in m["content"] for m in gen.calls[1][1])


def test_missing_value_asks_instead_of_inventing(scripted_generator, tools) -> None:
    q = "Man, 60 years, creatinine 1.0 mg/dL. Creatinine clearance?"
    gen = scripted_generator(
        [
            act("cockcroft_gault", age=60, sex="male", creatinine=1.0),
            act("final_answer", answer="The clearance is 80 mL/min."),
        ]
    )
    out = Agent(gen, tools).run(q)
    assert out.status == "ask_user" and out.missing == ["weight"]
    assert "weight" in out.answer and "80" not in out.answer and out.value is None


def test_invented_number_is_refused(scripted_generator, tools) -> None:
    gen = scripted_generator(
        [
            act("cockcroft_gault", age=60, weight=70, sex="male", creatinine=1.0),
            act("ask_user", question="What is his weight?"),
        ]
    )
    out = Agent(gen, tools).run("Man, 60 years, creatinine 1.0 mg/dL. Creatinine clearance?")
    assert "weight=70" in out.trace[0].error and out.trace[0].result is None
    assert out.status == "ask_user" and out.answer == "What is his weight?"


def test_malformed_json_is_repaired_or_refused_and_loop_goes_on(scripted_generator, tools):
    gen = scripted_generator(
        [
            "I will compute it now",  # no JSON: refused, loop continues
            "{'action': 'bmi', 'arguments': {'weight': 70, 'height': 175,}",  # repaired
            FINAL,
        ]
    )
    out = Agent(gen, tools, AgentConfig(max_steps=3)).run("70 kg, 175 cm: BMI?")
    assert out.trace[0].action == "invalid" and "not a JSON action" in out.trace[0].error
    assert out.trace[1].repaired and out.trace[1].result["value"] == pytest.approx(22.86)
    assert out.status == "final"


def test_unknown_tool_is_named(scripted_generator, tools) -> None:
    gen = scripted_generator([act("bmii", weight=70, height=175), FINAL])
    out = Agent(gen, tools).run("70 kg 175 cm")
    assert "unknown tool 'bmii'" in out.trace[0].error and "bmi" in out.trace[0].error


def test_step_budget_stops_with_partial_answer(scripted_generator, tools) -> None:
    gen = scripted_generator([act("bmi", weight=70, height=175)])  # never finishes
    out = Agent(gen, tools, AgentConfig(max_steps=2)).run("70 kg, 175 cm: BMI?")
    assert out.status == "budget_exhausted" and len(out.trace) == 2
    assert "Partial result" in out.answer and out.value == pytest.approx(22.86)


def test_token_budget_stops(scripted_generator, tools) -> None:
    gen = scripted_generator([act("bmi", weight=70, height=175)])
    out = Agent(gen, tools, AgentConfig(max_steps=50, max_total_tokens=64)).run("70 kg 175 cm")
    assert out.status == "budget_exhausted" and out.steps < 50 and out.tokens >= 64


def test_parse_action_variants() -> None:
    assert parse_action('```json\n{"tool": "gcs", "arguments": {"eye": 4}}\n```')[0] == {
        "action": "gcs",
        "arguments": {"eye": 4},
    }
    assert parse_action('{"answer": "yes"}')[0]["action"] == "final_answer"
    with pytest.raises(ToolInputError):
        parse_action("[1, 2]")


def test_action_schema_lists_every_tool(tools) -> None:
    schema = action_schema(tools)
    names = [o["properties"]["action"]["const"] for o in schema["anyOf"]]
    assert names[-2:] == ["final_answer", "ask_user"] and "bmi" in names


def test_agent_needs_tools(scripted_generator) -> None:
    with pytest.raises(AgentError):
        Agent(scripted_generator(), [])


def test_native_tool_calls_on_openai_compatible_server(tools) -> None:
    """The openai backend sends tools=[...] and runs the returned tool call."""
    import openai

    from medmllm.models.backends.openai import OpenAIGenerator

    replies = [
        {
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "bmi",
                        "arguments": json.dumps({"weight": 70, "height": 175}),
                    },
                }
            ],
            "content": None,
        },
        {"content": "BMI is 22.9.", "tool_calls": None},
    ]
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        msg = {"role": "assistant", **replies[len(seen) - 1]}
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )

    gen = OpenAIGenerator("m", base_url="http://127.0.0.1:9/v1")
    gen.client = openai.OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    out = Agent(gen, tools).run("70 kg and 175 cm: BMI?")
    assert out.mode == "native" and out.status == "final"
    assert seen[0]["tools"][0]["type"] == "function"
    assert out.trace[0].action == "bmi" and out.value == pytest.approx(22.86)
    assert "BMI is 22.9." in out.answer
