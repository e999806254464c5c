"""Rule-based check of an answer for unsafe advice, whatever the retrieved passages say.

Grounding measures whether the passages *support* an answer, not whether the answer is safe:
a poisoned or outdated source ("double your insulin dose tonight and stop seeing your doctor")
is repeated with full grounding. This check reads the answer itself and flags four kinds of
advice that a medical assistant must never give on its own authority:

* ``dosage_change`` — doubling, raising, lowering or skipping doses;
* ``stop_treatment`` — stopping or abandoning prescribed treatment;
* ``avoid_clinician`` — not seeing, calling or telling a clinician, skipping appointments;
* ``self_harm_method`` — lethal doses, overdose or other self-harm methods.

Rules are regular expressions over sentences; a sentence that negates the advice ("do not
double your dose") or routes it through a clinician ("ask your doctor before changing your
dose") is not flagged. It is a safety net with known limits (paraphrases escape it), not a
classifier; flagged answers are shown with a warning, never silently altered.

Example:
    >>> check_advice("Double your insulin dose tonight.").categories
    ['dosage_change']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

METHOD = "rule-based (medmllm.safety.advice): regular expressions per sentence, negation-aware"

_DRUG = (
    r"(dose|doses|dosage|insulin|medication|medications|medicine|medicines|pills?|tablets?|"
    r"drugs?|prescriptions?|injections?|inhalers?|warfarin|metformin|antidepressants?|"
    r"antibiotics?|steroids?|chemotherapy|treatment|therapy)"
)
_CLINICIAN = r"(doctors?|physicians?|clinicians?|gps?|nurses?|pharmacists?|specialists?|cardiologists?|endocrinologists?|psychiatrists?|therapists?|care team|health ?care providers?)"  # noqa: E501

_RULES: dict[str, list[re.Pattern[str]]] = {
    "dosage_change": [
        re.compile(
            rf"\b(double|triple|quadruple|increase|raise|up|decrease|lower|reduce|halve|cut|"
            rf"skip|change|adjust)\b[^.!?]{{0,40}}\b{_DRUG}",
            re.I,
        ),
        re.compile(
            rf"\btake (an )?(extra|more|twice|two|double|several)\b[^.!?]{{0,30}}{_DRUG}", re.I
        ),
    ],
    "stop_treatment": [
        re.compile(
            rf"\b(stop|quit|discontinue|abandon|give up|come off|throw away)\b[^.!?]{{0,30}}"
            rf"\b{_DRUG}",
            re.I,
        ),
        re.compile(rf"\bno (longer )?need (for|to take) (your |the |any )?{_DRUG}", re.I),
    ],
    "avoid_clinician": [
        re.compile(
            rf"\b(stop|avoid|quit)\b[^.!?]{{0,15}}\b(seeing|visiting|calling|consulting)?\s*"
            rf"(your |a |the |any )?{_CLINICIAN}",
            re.I,
        ),
        re.compile(
            rf"\b(don'?t|do not|never|no need to)\b[^.!?]{{0,10}}\b(see|visit|call|consult|tell|"
            rf"inform|bother)\b[^.!?]{{0,10}}{_CLINICIAN}",
            re.I,
        ),
        re.compile(
            r"\b(skip|cancel|ignore)\b[^.!?]{0,15}\b(appointments?|follow-?ups?|check-?ups?)", re.I
        ),
        re.compile(
            r"\b(avoid|stay away from|don'?t go to)\b[^.!?]{0,10}\b(hospitals?|the er|emergency)",
            re.I,
        ),
    ],
    "self_harm_method": [
        re.compile(r"\b(lethal|fatal|deadly)\s+(dose|amount|overdose)\b", re.I),
        re.compile(r"\bhow (many|much)\b[^.!?]{0,30}\b(to|would|will)\s+(kill|die|end)", re.I),
        re.compile(r"\b(overdose on|hang (yourself|oneself)|cut (your|my) wrists?)\b", re.I),
        re.compile(
            r"\b(kill|hurt|harm) (yourself|myself|oneself)\b[^.!?]{0,20}\b(with|by|using)\b", re.I
        ),
    ],
}
# "Do not double your dose", "never stop insulin": the advice is negated.
_NEGATED = re.compile(r"\b(do not|don'?t|never|not|avoid|no one should)\s+(\w+\s+){0,2}$", re.I)
# "ask your doctor before changing your dose": the clinician decides.
_ROUTED = re.compile(
    rf"\b(ask|talk to|speak (to|with)|consult|check with|call|contact|unless|only if|"
    rf"as (directed|prescribed) by|with)\b[^.!?]{{0,20}}{_CLINICIAN}|{_CLINICIAN}[^.!?]{{0,15}}\b"
    rf"(may|might|will|can|could|should)\b",
    re.I,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class AdviceFlag:
    """One flagged sentence."""

    category: str
    sentence: str
    matched: str

    def to_dict(self) -> dict[str, str]:
        return {"category": self.category, "sentence": self.sentence, "matched": self.matched}


@dataclass
class AdviceCheck:
    """The outcome for one answer (``advice_check`` in the answer JSON)."""

    flags: list[AdviceFlag] = field(default_factory=list)

    @property
    def unsafe(self) -> bool:
        return bool(self.flags)

    @property
    def categories(self) -> list[str]:
        return sorted({f.category for f in self.flags})

    def warning(self) -> str | None:
        """The line shown to the user under a flagged answer (None when nothing was flagged)."""
        if not self.flags:
            return None
        kinds = ", ".join(c.replace("_", " ") for c in self.categories)
        return (
            f"caution: this answer contains advice that may be unsafe ({kinds}). Do not change "
            "or stop a treatment, or avoid care, without your clinician; in a crisis call your "
            "local emergency number."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "unsafe": self.unsafe,
            "categories": self.categories,
            "flags": [f.to_dict() for f in self.flags],
            "warning": self.warning(),
            "method": METHOD,
        }


def _negated(sentence: str, start: int, category: str) -> bool:
    if category == "self_harm_method":
        return False  # "don't take a lethal dose of X" still names a method
    if _NEGATED.search(sentence[:start]):
        return True
    return category != "avoid_clinician" and bool(_ROUTED.search(sentence))


def check_advice(text: str) -> AdviceCheck:
    """Flag sentences of ``text`` that give unsafe advice (see the module docstring)."""
    result = AdviceCheck()
    for sentence in (s.strip() for s in _SENTENCE.split(text or "")):
        if not sentence:
            continue
        for category, patterns in _RULES.items():
            for pattern in patterns:
                match = pattern.search(sentence)
                if match and not _negated(sentence, match.start(), category):
                    result.flags.append(AdviceFlag(category, sentence, match.group(0)))
                    break
    return result
