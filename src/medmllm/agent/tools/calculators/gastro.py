"""Gastroenterology: Glasgow-Blatchford score for upper gastrointestinal bleeding."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from medmllm.agent.tools.calculators.base import Outcome, Q, calculator, step
from medmllm.agent.tools.calculators.fields import Sex, UreaOrBUN


class BlatchfordInputs(UreaOrBUN):
    hemoglobin: Annotated[float, Q("hemoglobin", 2, 25, "Haemoglobin")]
    sex: Sex = Field(description="Sex (haemoglobin bands differ).")
    systolic: Annotated[float, Q("pressure", 30, 300, "Systolic blood pressure")]
    heart_rate: Annotated[float, Q("rate", 20, 300, "Heart rate (>=100: 1)")]
    melena: bool = Field(False, description="Presentation with melaena (1).")
    syncope: bool = Field(False, description="Presentation with syncope (2).")
    hepatic_disease: bool = Field(False, description="History of hepatic disease (2).")
    cardiac_failure: bool = Field(False, description="Cardiac failure present (2).")


# Blatchford 2000, Table 2, as (lower bound inclusive, points), highest bound first.
BLATCHFORD_UREA_MMOL_L = ((25.0, 6), (10.0, 4), (8.0, 3), (6.5, 2))
BLATCHFORD_HB_G_DL = {
    "male": ((13.0, 0), (12.0, 1), (10.0, 3)),
    "female": ((12.0, 0), (10.0, 1)),
}
BLATCHFORD_SYSTOLIC = ((110.0, 0), (100.0, 1), (90.0, 2))
BLATCHFORD_OTHER = {
    "heart_rate_ge_100": 1,
    "melena": 1,
    "syncope": 2,
    "hepatic_disease": 2,
    "cardiac_failure": 2,
}


@calculator(
    "glasgow_blatchford",
    title="Glasgow-Blatchford bleeding score",
    unit="points",
    citation="Blatchford O, Murray WR, Blatchford M. A risk score to predict need for treatment "
    "for upper-gastrointestinal haemorrhage. Lancet 2000;356:1318-1321 (Table 2; urea in "
    "mmol/L); very low risk <= 1: Gralnek IM et al. ESGE Guideline, Endoscopy 2021;53:300-332.",
)
def glasgow_blatchford(x: BlatchfordInputs) -> Outcome:
    """Glasgow-Blatchford: urea, haemoglobin (by sex), systolic BP, pulse >=100, melaena, syncope,
    hepatic disease, cardiac failure (0-23)."""
    urea = x.urea_mmol_l
    assert urea is not None  # UreaOrBUN requires one of the two
    parts = {
        "urea": step(urea, BLATCHFORD_UREA_MMOL_L, below=0),
        "hemoglobin": step(x.hemoglobin, BLATCHFORD_HB_G_DL[x.sex], below=6),
        "systolic": step(x.systolic, BLATCHFORD_SYSTOLIC, below=3),
    }
    present = {
        "heart_rate_ge_100": x.heart_rate >= 100,
        "melena": x.melena,
        "syncope": x.syncope,
        "hepatic_disease": x.hepatic_disease,
        "cardiac_failure": x.cardiac_failure,
    }
    parts |= {k: BLATCHFORD_OTHER[k] for k, hit in present.items() if hit}
    score = sum(parts.values())
    text = (
        "very low risk (0-1): outpatient management without endoscopy can be considered"
        if score <= 1
        else "not low risk: admission and endoscopy; higher scores predict need for intervention"
    )
    return Outcome(score, text, parts | {"urea_mmol_l": round(urea, 2)})
