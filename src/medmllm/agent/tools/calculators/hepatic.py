"""Liver: Child-Pugh, MELD-Na, MELD 3.0, FIB-4."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator
from medmllm.agent.tools.calculators.fields import Sex


class ChildPughInputs(Inputs):
    bilirubin: Annotated[float, Q("bilirubin", 0.1, 60, "Total bilirubin")]
    albumin: Annotated[float, Q("albumin", 0.5, 7, "Serum albumin")]
    inr: float = Field(ge=0.5, le=20, description="INR.")
    ascites: Literal["none", "mild", "moderate_severe"] | None = Field(
        None, description="Ascites; not given = none (as the reference calculators score it)."
    )
    encephalopathy: Literal["none", "grade_1_2", "grade_3_4"] | None = Field(
        None, description="Hepatic encephalopathy grade; not given = none."
    )


@calculator(
    "child_pugh",
    title="Child-Pugh score for cirrhosis",
    unit="points",
    citation="Pugh RN, Murray-Lyon IM, Dawson JL, Pietroni MC, Williams R. Transection of the "
    "oesophagus for bleeding oesophageal varices. Br J Surg 1973;60:646-649 (INR thresholds "
    "1.7 / 2.3 as commonly substituted for prothrombin time).",
)
def child_pugh(x: ChildPughInputs) -> Outcome:
    """Child-Pugh: bilirubin, albumin, INR, ascites, encephalopathy each 1-3; A 5-6, B 7-9, C
    10-15."""
    bili = 1 if x.bilirubin < 2 else 2 if x.bilirubin <= 3 else 3
    alb = 1 if x.albumin > 3.5 else 2 if x.albumin >= 2.8 else 3
    inr = 1 if x.inr < 1.7 else 2 if x.inr <= 2.3 else 3
    given = (("ascites", x.ascites), ("encephalopathy", x.encephalopathy))
    absent = [name for name, value in given if value is None]
    asc = {"none": 1, "mild": 2, "moderate_severe": 3}[x.ascites or "none"]
    enc = {"none": 1, "grade_1_2": 2, "grade_3_4": 3}[x.encephalopathy or "none"]
    score = bili + alb + inr + asc + enc
    cls = "A" if score <= 6 else "B" if score <= 9 else "C"
    parts = {"bilirubin": bili, "albumin": alb, "inr": inr, "ascites": asc, "encephalopathy": enc}
    text = f"Child-Pugh class {cls}"
    warnings = []
    if absent:
        text += f" ({' and '.join(absent)} not given: scored as none)"
        warnings.append(
            f"{', '.join(absent)} not given and scored as none (1 point); if present, the "
            "score is higher"
        )
    return Outcome(score, text, parts | {"class": cls, "scored_as_none": absent}, warnings)


class MeldNaInputs(Inputs):
    creatinine: Annotated[float, Q("creatinine", 0.1, 25, "Serum creatinine")]
    bilirubin: Annotated[float, Q("bilirubin", 0.1, 80, "Total bilirubin")]
    inr: float = Field(ge=0.5, le=20, description="INR.")
    sodium: Annotated[float, Q("electrolyte", 100, 180, "Serum sodium")]
    dialysis: bool = Field(
        False, description="Dialysis twice or more in the past week (or 24 h of CVVHD)."
    )


@calculator(
    "meld_na",
    title="MELD-Na (UNOS 2016)",
    unit="points",
    citation="Kim WR, Biggins SW, Kremers WK, et al. Hyponatremia and mortality among patients on "
    "the liver-transplant waiting list. N Engl J Med 2008;359:1018-1026; UNOS/OPTN MELD "
    "calculation (2016): bounds 1.0 for Cr/bili/INR, Cr 4.0 max or on dialysis, Na 125-137, "
    "sodium term only when MELD(i) > 11.",
)
def meld_na(x: MeldNaInputs) -> Outcome:
    """MELD(i) = 0.957 ln Cr + 0.378 ln bili + 1.120 ln INR + 0.643 (x10); + 1.32(137-Na) - 0.033
    MELD(137-Na) if >11."""
    cr = 4.0 if x.dialysis else min(max(x.creatinine, 1.0), 4.0)
    bili = max(x.bilirubin, 1.0)
    inr = max(x.inr, 1.0)
    na = min(max(x.sodium, 125.0), 137.0)
    meld_i = 0.957 * math.log(cr) + 0.378 * math.log(bili) + 1.120 * math.log(inr) + 0.643
    meld_i = round(meld_i, 1) * 10
    meld = meld_i
    if meld_i > 11:
        meld = meld_i + 1.32 * (137 - na) - 0.033 * meld_i * (137 - na)
    score = min(round(meld), 40)
    return Outcome(
        score,
        "90-day mortality rises steeply with MELD; >=15 usually warrants transplant evaluation",
        {
            "meld": round(meld_i),
            "bounded_inputs": {"cr": cr, "bili": bili, "inr": inr, "na": na},
        },
    )


class Meld3Inputs(Inputs):
    sex: Sex = Field(description="Sex (female adds 1.33).")
    bilirubin: Annotated[float, Q("bilirubin", 0.1, 80, "Total bilirubin")]
    sodium: Annotated[float, Q("electrolyte", 100, 180, "Serum sodium")]
    inr: float = Field(ge=0.5, le=20, description="INR.")
    creatinine: Annotated[float, Q("creatinine", 0.1, 25, "Serum creatinine")]
    albumin: Annotated[float, Q("albumin", 0.5, 7, "Serum albumin")]
    dialysis: bool = Field(
        False, description="Dialysis twice or more in the past week (or 24 h of CVVHD)."
    )


@calculator(
    "meld_3",
    title="MELD 3.0 (OPTN 2023)",
    unit="points",
    citation="Kim WR, Mannalithara A, Heimbach JK, et al. MELD 3.0: the Model for End-Stage "
    "Liver Disease updated for the modern era. Gastroenterology 2021;161:1887-1895 (bounds: "
    "bilirubin, INR, creatinine >= 1.0; creatinine <= 3.0 or 3.0 on dialysis; sodium 125-137; "
    "albumin 1.5-3.5; score capped at 40).",
)
def meld_3(x: Meld3Inputs) -> Outcome:
    """MELD 3.0 = 1.33 female + 4.56 ln bili + 0.82 (137-Na) - 0.24 (137-Na) ln bili + 9.09 ln INR
    + 11.14 ln Cr + 1.85 (3.5-alb) - 1.83 (3.5-alb) ln Cr + 6."""
    cr = 3.0 if x.dialysis else min(max(x.creatinine, 1.0), 3.0)
    bili = max(x.bilirubin, 1.0)
    inr = max(x.inr, 1.0)
    na = min(max(x.sodium, 125.0), 137.0)
    alb = min(max(x.albumin, 1.5), 3.5)
    raw = (
        1.33 * (x.sex == "female")
        + 4.56 * math.log(bili)
        + 0.82 * (137 - na)
        - 0.24 * (137 - na) * math.log(bili)
        + 9.09 * math.log(inr)
        + 11.14 * math.log(cr)
        + 1.85 * (3.5 - alb)
        - 1.83 * (3.5 - alb) * math.log(cr)
        + 6
    )
    score = min(round(raw), 40)
    return Outcome(
        score,
        "predicts 90-day waitlist mortality; replaced MELD-Na for US liver allocation in 2023",
        {
            "unrounded": round(raw, 2),
            "bounded_inputs": {"cr": cr, "bili": bili, "inr": inr, "na": na, "albumin": alb},
        },
    )


class Fib4Inputs(Inputs):
    age: Annotated[float, Q("age", 18, 120, "Age")]
    ast: Annotated[float, Q("enzyme", 1, 10000, "AST")]
    alt: Annotated[float, Q("enzyme", 1, 10000, "ALT")]
    platelets: Annotated[float, Q("platelets", 1, 2000, "Platelet count")]


@calculator(
    "fib4",
    title="FIB-4 index for liver fibrosis",
    unit="",
    citation="Sterling RK, Lissen E, Clumeck N, et al. Development of a simple noninvasive index "
    "to predict significant fibrosis in patients with HIV/HCV coinfection. Hepatology "
    "2006;43:1317-1325 (age x AST / (platelets [10^9/L] x sqrt(ALT))).",
)
def fib4(x: Fib4Inputs) -> Outcome:
    """FIB-4 = age x AST / (platelets [10^9/L] x sqrt(ALT)); <1.45 low, >3.25 high fibrosis risk."""
    value = x.age * x.ast / (x.platelets * math.sqrt(x.alt))
    text = (
        "low risk of advanced fibrosis (<1.45)"
        if value < 1.45
        else (
            "high risk of advanced fibrosis (>3.25)"
            if value > 3.25
            else "indeterminate (1.45-3.25)"
        )
    )
    return Outcome(round(value, 2), text)
