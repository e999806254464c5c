"""Agent evaluation pieces: vignettes, the ±5 % / exact rule, scripted patient, dialogue."""

from __future__ import annotations

import json

import pytest

from medmllm.agent.evaluate import (
    DIALOGUE_CASES,
    calculator_vignettes,
    extract_answer,
    patient_reply,
    run_calculator_item,
    run_dialogue_case,
    score_value,
    summarise,
    wilson,
)
from medmllm.agent.loop import AgentConfig
from medmllm.agent.tools import TOOLS, builtin_tools
from medmllm.agent.tools.calculators import CALCULATORS


def test_vignettes_state_their_values_in_prose() -> None:
    items = calculator_vignettes(12, seed=1)
    assert len(items) == 12 and items == calculator_vignettes(12, seed=1)
    for v in items:
        assert CALCULATORS.get(v.calculator)(v.inputs).value == v.expected
        for value in v.inputs.values():
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert f"{value:g}" in v.text, (v.calculator, value)


def test_scoring_rule() -> None:
    assert score_value(104.9, 100.0, "numeric") and not score_value(105.1, 100.0, "numeric")
    assert score_value(3, 3, "score") and not score_value(3.2, 3, "score")
    assert score_value("2026-10-17", "2026-10-17", "date")
    assert not score_value(None, 1.0, "numeric")
    assert extract_answer("The BMI is 24.7 kg/m2", "numeric") == 24.7
    assert extract_answer("Due 2026-10-17.", "date") == "2026-10-17"


def test_wilson_and_summary() -> None:
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert summarise([{"c": True}, {"c": False}], "c")["rate"] == 0.5


def test_run_item_with_and_without_tools(scripted_generator) -> None:
    builtin_tools()
    item = calculator_vignettes(1)[0]  # bmi
    call = json.dumps({"action": "bmi", "arguments": item.inputs})
    final = json.dumps({"action": "final_answer", "arguments": {"answer": "done"}})
    rec = run_calculator_item(
        item, scripted_generator([call, final]), [TOOLS.get("bmi")], AgentConfig()
    )
    assert rec["correct"] and rec["tool_choice_correct"] and rec["n_schema_valid"] == 2
    rec = run_calculator_item(item, scripted_generator(["About 20."]), None, AgentConfig())
    assert rec["predicted"] == 20.0 and rec["correct"] is (
        abs(20 - item.expected) <= 0.05 * item.expected
    )


def test_scripted_patient_and_dialogue(scripted_generator) -> None:
    mi = DIALOGUE_CASES[0]
    assert "left arm" in patient_reply(mi, "Does the pain spread anywhere?")
    assert patient_reply(mi, "Any pets?") == "I'm not sure."
    gen = scripted_generator(
        [json.dumps({"question": "Does it radiate to your arm?"})] * 2
        + [json.dumps({"diagnoses": ["angina", "heart attack"]})]
    )
    out = run_dialogue_case(mi, gen, questions=2)
    assert not out["top1"] and out["top3"] and out["facts_revealed"] == 2


def test_budget_text_is_not_read_as_an_answer(scripted_generator) -> None:
    builtin_tools()
    item = calculator_vignettes(9)[8]  # gcs, expected 8
    rec = run_calculator_item(
        item, scripted_generator(["not json"]), [TOOLS.get("gcs")], AgentConfig(max_steps=2)
    )
    assert rec["status"] == "budget_exhausted" and rec["predicted"] is None
