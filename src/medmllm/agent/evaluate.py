"""Agent evaluation: calculator vignettes, the scoring rule, and a diagnostic-dialogue mode.

* :func:`calculator_vignettes` writes patient vignettes with the values in prose (seeded), the
  gold calculator and the gold value (from the verified calculators).
* :func:`score_value` is the dataset rule: numeric answers within ±5 % of the gold value; scores
  and dates exact.
* :func:`run_calculator_item` answers one vignette with the agent (tools) or the same model
  without tools, and records tool choice, call validity, steps and latency.
* :func:`run_dialogue_case` lets the model act as the doctor: it asks questions, a scripted
  patient answers from a case file, then it names its top-3 diagnoses (scored top-1 / top-3).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from medmllm.agent.loop import FINAL, Agent, AgentConfig
from medmllm.agent.tools.base import Tool
from medmllm.agent.tools.calculators import CALCULATORS
from medmllm.models.generator import Generator


@dataclass
class Vignette:
    """One calculator question written as a patient vignette."""

    id: str
    text: str
    calculator: str
    expected: float | int | str
    kind: str  # "numeric", "score" or "date"
    inputs: dict[str, Any] = field(default_factory=dict)


def _vignette_specs(rng: random.Random) -> list[tuple[str, str, dict[str, Any], str]]:
    """(calculator, prose, inputs, kind) with random but plausible values."""
    age = rng.randint(35, 85)
    w = rng.randint(55, 110)
    h = rng.randint(150, 195)
    sbp, dbp = rng.randint(100, 170), rng.randint(55, 95)
    cr = round(rng.uniform(0.7, 2.4), 1)
    sex = rng.choice(["man", "woman"])
    s = "male" if sex == "man" else "female"
    na, cl, hco3 = rng.randint(130, 145), rng.randint(95, 110), rng.randint(12, 28)
    ca, alb = round(rng.uniform(7.0, 9.5), 1), round(rng.uniform(1.8, 4.0), 1)
    qt, hr = rng.randint(360, 480), rng.randint(55, 120)
    lmp = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 200))
    return [
        (
            "bmi",
            f"A {age}-year-old {sex} weighs {w} kg and is {h} cm tall. What is the body "
            "mass index?",
            {"weight": w, "height": h},
            "numeric",
        ),
        (
            "mean_arterial_pressure",
            f"Blood pressure in the clinic is {sbp}/{dbp} mmHg. What is "
            "the mean arterial pressure?",
            {"systolic": sbp, "diastolic": dbp},
            "numeric",
        ),
        (
            "cockcroft_gault",
            f"A {age}-year-old {sex} weighing {w} kg has a serum creatinine of "
            f"{cr} mg/dL. Estimate the creatinine clearance (Cockcroft-Gault).",
            {"age": age, "weight": w, "sex": s, "creatinine": cr},
            "numeric",
        ),
        (
            "egfr_ckd_epi_2021",
            f"A {age}-year-old {sex} has a creatinine of {cr} mg/dL. What is "
            "the eGFR by CKD-EPI 2021?",
            {"age": age, "sex": s, "creatinine": cr},
            "numeric",
        ),
        (
            "anion_gap",
            f"Labs: sodium {na} mmol/L, chloride {cl} mmol/L, bicarbonate {hco3} "
            "mmol/L. Calculate the anion gap.",
            {"sodium": na, "chloride": cl, "bicarbonate": hco3},
            "numeric",
        ),
        (
            "corrected_calcium",
            f"Total calcium is {ca} mg/dL with an albumin of {alb} g/dL. What "
            "is the corrected calcium?",
            {"calcium": ca, "albumin": alb},
            "numeric",
        ),
        (
            "qtc",
            f"The ECG shows a QT interval of {qt} ms at a heart rate of {hr} beats per "
            "minute. What is the QTc (Bazett)?",
            {"qt": qt, "heart_rate": hr},
            "numeric",
        ),
        (
            "cha2ds2_vasc",
            f"A {age}-year-old {sex} with atrial fibrillation has hypertension and "
            "diabetes, no heart failure, stroke or vascular disease. What is the CHA2DS2-VASc "
            "score?",
            {"age": age, "sex": s, "hypertension": True, "diabetes": True},
            "score",
        ),
        (
            "gcs",
            "After a fall the patient opens his eyes to pain, makes incomprehensible sounds "
            "and withdraws from pain (eye 2, verbal 2, motor 4). What is the Glasgow Coma Scale?",
            {"eye": 2, "verbal": 2, "motor": 4},
            "score",
        ),
        (
            "due_date",
            f"Her last menstrual period started on {lmp.isoformat()}. What is the "
            "estimated due date by Naegele's rule?",
            {"last_menstrual_period": lmp.isoformat()},
            "date",
        ),
    ]


def calculator_vignettes(n: int = 10, seed: int = 0) -> list[Vignette]:
    """``n`` vignettes cycling over the calculators, values drawn with ``seed``."""
    rng = random.Random(seed)
    out: list[Vignette] = []
    while len(out) < n:
        for calc, text, inputs, kind in _vignette_specs(rng):
            if len(out) == n:
                break
            expected = CALCULATORS.get(calc)(inputs).value
            out.append(Vignette(f"v{len(out):03d}", text, calc, expected, kind, inputs))
    return out


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def extract_answer(text: str, kind: str) -> str | float | None:
    """The answer in free text: an ISO date for dates, else the first number."""
    if kind == "date":
        m = _DATE.search(text or "")
        return m.group(0) if m else None
    m = _NUMBER.search((text or "").replace(",", ""))
    return float(m.group(0)) if m else None


def score_value(predicted: Any, expected: float | int | str, kind: str) -> bool:
    """Numeric within ±5 % of the gold value; scores and dates exact."""
    if predicted is None:
        return False
    if kind == "date":
        return str(predicted) == str(expected)
    try:
        p, e = float(predicted), float(expected)
    except (TypeError, ValueError):
        return False
    if kind == "score":
        return p == e
    return abs(p - e) <= 0.05 * abs(e) if e != 0 else abs(p) < 1e-9  # ±5 % of the gold value


def run_calculator_item(
    item: Vignette, generator: Generator, tools: list[Tool] | None, config: AgentConfig
) -> dict[str, Any]:
    """Answer one vignette with tools (``tools`` given) or without; returns a scored record."""
    start = time.perf_counter()
    if tools is None:
        comp = generator.chat(
            [{"role": "user", "content": item.text + " Reply with the value only."}],
            max_tokens=24,
            temperature=0.0,
        )
        pred = extract_answer(comp.text, item.kind)
        return {
            "id": item.id,
            "calculator": item.calculator,
            "kind": item.kind,
            "expected": item.expected,
            "predicted": pred,
            "raw": comp.text[:200],
            "correct": score_value(pred, item.expected, item.kind),
            "steps": 1,
            "latency_s": round(time.perf_counter() - start, 3),
        }
    out = Agent(generator, tools, config).run(item.text)
    # The value of a tool call, else a number in a *final* answer (a budget-exhausted or
    # ask-user text holds step counts, not answers).
    pred = out.value
    if pred is None and out.status == "final":
        pred = extract_answer(out.answer, item.kind)
    tool_steps = [s for s in out.trace if s.action not in (FINAL, "ask_user")]
    first_tool = next((s.action for s in tool_steps if s.action != "invalid"), None)
    parsed = [s for s in out.trace if s.action != "invalid"]
    schema_valid = [
        s
        for s in parsed
        if s.action in (FINAL, "ask_user")
        or s.result is not None
        or (s.error is not None and "do not appear" in s.error)  # valid call, refused values
    ]
    return {
        "id": item.id,
        "calculator": item.calculator,
        "kind": item.kind,
        "expected": item.expected,
        "predicted": pred,
        "status": out.status,
        "correct": score_value(pred, item.expected, item.kind),
        "tool_choice": first_tool,
        "tool_choice_correct": first_tool == item.calculator,
        "steps": out.steps,
        "n_calls": len(out.trace),
        "n_parsed": len(parsed),
        "n_schema_valid": len(schema_valid),
        "n_repaired": sum(s.repaired for s in out.trace),
        "latency_s": round(time.perf_counter() - start, 3),
        "tokens": out.tokens,
        "trace": [s.model_dump(exclude={"raw"}) for s in out.trace],
    }


# -- diagnostic dialogue ----------------------------------------------------------------------
class DialogueCase(BaseModel):
    """A scripted patient: facts revealed when the doctor asks about their topic."""

    id: str = Field(description="Case id.")
    opening: str = Field(description="What the patient says first.")
    facts: dict[str, str] = Field(description="Keyword (comma-separated) -> the patient's answer.")
    diagnosis: str = Field(description="Gold diagnosis.")
    synonyms: list[str] = Field(default_factory=list, description="Accepted alternative names.")


DIALOGUE_CASES: list[DialogueCase] = [
    DialogueCase(
        id="mi",
        opening="I have had crushing chest pain for an hour.",
        facts={
            "arm,radiat,spread": "It spreads to my left arm and jaw.",
            "sweat,nause": "I am sweating and feel sick.",
            "history,diabet,smok": "I smoke and have diabetes.",
            "breath": "A bit short of breath.",
        },
        diagnosis="myocardial infarction",
        synonyms=["heart attack", "acute coronary syndrome", "stemi", "nstemi"],
    ),
    DialogueCase(
        id="appendicitis",
        opening="My tummy hurts, mostly on the lower right side.",
        facts={
            "start,began,where": "It started around my belly button yesterday.",
            "fever,temperature": "I have a mild fever.",
            "eat,appetite,vomit,nause": "I do not want to eat and vomited once.",
        },
        diagnosis="appendicitis",
        synonyms=["acute appendicitis"],
    ),
    DialogueCase(
        id="pneumonia",
        opening="I have a cough and fever for three days.",
        facts={
            "sputum,phlegm,cough": "I cough up green phlegm.",
            "breath,chest": "It hurts on the right when I breathe in.",
            "chill,shiver": "I have had shaking chills.",
        },
        diagnosis="pneumonia",
        synonyms=["community-acquired pneumonia", "lung infection"],
    ),
    DialogueCase(
        id="migraine",
        opening="I have a throbbing headache on one side.",
        facts={
            "light,noise,sound": "Light and noise make it worse.",
            "nause,vomit": "I feel nauseous.",
            "before,aura,vision,see": "I saw zigzag lines before it started.",
            "history,before,often": "I get these every few months.",
        },
        diagnosis="migraine",
        synonyms=["migraine with aura"],
    ),
    DialogueCase(
        id="uti",
        opening="It burns when I pass urine.",
        facts={
            "often,frequen,urgen": "I need to go all the time.",
            "fever,back,flank": "No fever, no back pain.",
            "blood,colour,smell": "The urine smells strong and looks cloudy.",
        },
        diagnosis="urinary tract infection",
        synonyms=["uti", "cystitis"],
    ),
    DialogueCase(
        id="dvt",
        opening="My left calf is swollen and painful.",
        facts={
            "flight,travel,surgery,immobil": "I came back from a long flight.",
            "red,warm": "It is warm and a bit red.",
            "breath,chest": "No chest pain or breathlessness.",
            "pill,contracept,hormone": "I take the contraceptive pill.",
        },
        diagnosis="deep vein thrombosis",
        synonyms=["dvt", "venous thrombosis"],
    ),
]


def patient_reply(case: DialogueCase, question: str) -> str:
    """The scripted patient's answer: the first fact whose keywords the question mentions."""
    q = question.lower()
    for keys, answer in case.facts.items():
        if any(k.strip() and k.strip() in q for k in keys.split(",")):
            return answer
    return "I'm not sure."


class _Ask(BaseModel):
    question: str


class _Dx(BaseModel):
    diagnoses: list[str] = Field(min_length=1, max_length=3)


def _matches(name: str, case: DialogueCase) -> bool:
    n = name.lower()
    return any(t in n for t in [case.diagnosis, *case.synonyms])


def run_dialogue_case(
    case: DialogueCase, generator: Generator, *, questions: int = 3
) -> dict[str, Any]:
    """Doctor (model) asks ``questions`` questions, then names its top-3 diagnoses."""
    from medmllm.apps.base import generate_json

    start = time.perf_counter()
    transcript = [f"Patient: {case.opening}"]
    for _ in range(questions):
        msg = [
            {
                "role": "system",
                "content": "You are a doctor taking a history. Ask one short "
                "question to narrow the diagnosis. JSON.",
            },
            {"role": "user", "content": "\n".join(transcript)},
        ]
        ask = generate_json(generator, msg, _Ask, max_tokens=60, attempts=1)
        transcript += [f"Doctor: {ask.question}", f"Patient: {patient_reply(case, ask.question)}"]
    msg = [
        {
            "role": "system",
            "content": "You are a doctor. List the three most likely "
            "diagnoses, most likely first. JSON.",
        },
        {"role": "user", "content": "\n".join(transcript)},
    ]
    dx = generate_json(generator, msg, _Dx, max_tokens=60, attempts=1).diagnoses
    return {
        "id": case.id,
        "gold": case.diagnosis,
        "predicted": dx,
        "top1": bool(dx) and _matches(dx[0], case),
        "top3": any(_matches(d, case) for d in dx[:3]),
        "facts_revealed": sum("not sure" not in t for t in transcript[2::2]),
        "turns": questions,
        "latency_s": round(time.perf_counter() - start, 3),
        "transcript": transcript,
    }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for k successes in n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Rate of ``key`` being true, with its Wilson 95 % CI."""
    k = sum(bool(r.get(key)) for r in records)
    lo, hi = wilson(k, len(records))
    return {
        "rate": k / len(records) if records else None,
        "k": k,
        "n": len(records),
        "ci95": [round(lo, 4), round(hi, 4)],
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
