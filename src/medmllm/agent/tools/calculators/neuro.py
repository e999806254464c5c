"""Neurology: Glasgow Coma Scale (with not-testable components), NIH Stroke Scale."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, calculator

# Spellings of "cannot be assessed" that clinicians write, per scale.
_NOT_TESTABLE = {"nt", "t", "not testable", "untestable", "not assessable", "intubated"}
_UNTESTABLE = {"un", "untestable", "not testable", "nt", "amputation", "joint fusion"}


def _as_nt(value: object) -> object:
    if isinstance(value, str) and value.strip().lower().replace("_", " ") in _NOT_TESTABLE:
        return "NT"
    return value


def _as_un(value: object) -> object:
    if isinstance(value, str) and value.strip().lower().replace("_", " ") in _UNTESTABLE:
        return "UN"
    return value


NT = Literal["NT"]
UN = Literal["UN"]
# A score from lo to hi, or the scale's "cannot be assessed" mark (strings normalised first).
GcsEye = Annotated[Annotated[int, Field(ge=1, le=4)] | NT, BeforeValidator(_as_nt)]
GcsVerbal = Annotated[Annotated[int, Field(ge=1, le=5)] | NT, BeforeValidator(_as_nt)]
GcsMotor = Annotated[Annotated[int, Field(ge=1, le=6)] | NT, BeforeValidator(_as_nt)]
NihssLimb = Annotated[Annotated[int, Field(ge=0, le=4)] | UN, BeforeValidator(_as_un)]
NihssTwo = Annotated[Annotated[int, Field(ge=0, le=2)] | UN, BeforeValidator(_as_un)]


class GCSInputs(Inputs):
    eye: GcsEye = Field(
        description="Eye opening 1-4 (4 spontaneous), or 'NT' if not testable (e.g. swollen shut)."
    )
    verbal: GcsVerbal = Field(
        description="Verbal response 1-5 (5 oriented), or 'NT' if not testable (e.g. intubated)."
    )
    motor: GcsMotor = Field(
        description="Motor response 1-6 (6 obeys commands), or 'NT' if not testable (e.g. "
        "paralysed)."
    )


@calculator(
    "gcs",
    title="Glasgow Coma Scale",
    unit="points",
    citation="Teasdale G, Jennett B. Assessment of coma and impaired consciousness. A practical "
    "scale. Lancet 1974;2:81-84; not-testable components: Teasdale G, Maas A, Lecky F, et al. "
    "The Glasgow Coma Scale at 40 years: standing the test of time. Lancet Neurol "
    "2014;13:844-854 (record 'NT' and report the components, not a sum).",
)
def gcs(x: GCSInputs) -> Outcome:
    """Glasgow Coma Scale = eye (1-4) + verbal (1-5) + motor (1-6); a component may be 'NT' (not
    testable): then no total, and a verbal NT is written as 'GCS <E+M>T'."""
    parts = {"E": x.eye, "V": x.verbal, "M": x.motor}
    written = " ".join(f"{k}{v}" for k, v in parts.items())
    if not any(v == "NT" for v in parts.values()):
        score = sum(int(v) for v in parts.values())
        text = (
            "severe (<=8)" if score <= 8 else "moderate (9-12)" if score <= 12 else "mild (13-15)"
        )
        return Outcome(score, f"{text} brain injury range", parts | {"written": written})
    testable = sum(int(v) for v in parts.values() if v != "NT")
    untested = [k for k, v in parts.items() if v == "NT"]
    details = parts | {"written": written, "testable_sum": testable, "total": None}
    if untested == ["V"]:
        return Outcome(
            f"{testable}T",
            f"verbal not testable (e.g. intubated): no total; eye + motor = {testable} of 10, "
            f"written 'GCS {testable}T' ({written})",
            details,
            ["a 'T' score is not comparable with a full GCS total"],
        )
    return Outcome(
        "NT",
        f"total not computable: {', '.join(untested)} not testable; report the components "
        f"({written})",
        details,
    )


class NihssInputs(Inputs):
    loc: int = Field(ge=0, le=3, description="1a level of consciousness 0 alert - 3 unresponsive.")
    loc_questions: int = Field(ge=0, le=2, description="1b month and age: 0 both right - 2 none.")
    loc_commands: int = Field(ge=0, le=2, description="1c open/close eyes, grip: 0 both - 2 none.")
    best_gaze: int = Field(ge=0, le=2, description="2 gaze: 0 normal, 1 partial, 2 forced palsy.")
    visual_fields: int = Field(
        ge=0, le=3, description="3 visual fields: 0 none, 1 partial, 2 complete, 3 bilateral."
    )
    facial_palsy: int = Field(
        ge=0, le=3, description="4 facial palsy: 0 normal, 1 minor, 2 partial, 3 complete."
    )
    motor_left_arm: NihssLimb = Field(
        description="5a left arm drift 0-4, or 'UN' (amputation, joint fusion)."
    )
    motor_right_arm: NihssLimb = Field(
        description="5b right arm drift 0-4, or 'UN' (amputation, joint fusion)."
    )
    motor_left_leg: NihssLimb = Field(
        description="6a left leg drift 0-4, or 'UN' (amputation, joint fusion)."
    )
    motor_right_leg: NihssLimb = Field(
        description="6b right leg drift 0-4, or 'UN' (amputation, joint fusion)."
    )
    limb_ataxia: NihssTwo = Field(
        description="7 limb ataxia: 0 absent, 1 one limb, 2 two limbs, or 'UN'."
    )
    sensory: int = Field(ge=0, le=2, description="8 sensory: 0 normal, 1 mild, 2 severe loss.")
    best_language: int = Field(
        ge=0, le=3, description="9 language: 0 normal, 1 mild aphasia, 2 severe, 3 mute/global."
    )
    dysarthria: NihssTwo = Field(
        description="10 dysarthria: 0 normal, 1 mild, 2 severe, or 'UN' (intubated)."
    )
    extinction_inattention: int = Field(
        ge=0, le=2, description="11 extinction/inattention: 0 none, 1 one modality, 2 profound."
    )


@calculator(
    "nihss",
    title="NIH Stroke Scale",
    unit="points",
    citation="Brott T, Adams HP Jr, Olinger CP, et al. Measurements of acute cerebral infarction: "
    "a clinical examination scale. Stroke 1989;20:864-870; 15-item form: Lyden P, Brott T, "
    "Tilley B, et al. Improved reliability of the NIH Stroke Scale using video training. Stroke "
    "1994;25:2220-2226 (UN items are not added to the total).",
)
def nihss(x: NihssInputs) -> Outcome:
    """NIH Stroke Scale: sum of 15 items (0-42); motor, ataxia and dysarthria items may be 'UN'
    (untestable), which add nothing."""
    items = x.model_dump()
    untestable = [k for k, v in items.items() if v == "UN"]
    score = sum(int(v) for v in items.values() if v != "UN")
    text = (
        "no stroke symptoms (0)"
        if score == 0
        else "minor stroke (1-4)"
        if score <= 4
        else "moderate stroke (5-15)"
        if score <= 15
        else "moderate to severe stroke (16-20)"
        if score <= 20
        else "severe stroke (21-42)"
    )
    warnings = [f"untestable (UN), not added: {', '.join(untestable)}"] if untestable else []
    return Outcome(score, text, {"untestable": untestable}, warnings)
