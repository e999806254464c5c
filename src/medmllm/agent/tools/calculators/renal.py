"""Kidney function: creatinine clearance (Cockcroft-Gault), eGFR (CKD-EPI 2021, MDRD)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, band, calculator

Sex = Literal["male", "female"]

_CKD_STAGES: list[tuple[float, str]] = [
    (15, "G5 kidney failure (<15)"),
    (30, "G4 severely decreased (15-29)"),
    (45, "G3b moderately to severely decreased (30-44)"),
    (60, "G3a mildly to moderately decreased (45-59)"),
    (90, "G2 mildly decreased (60-89)"),
]


def _stage(egfr: float) -> str:
    return "KDIGO " + band(egfr, _CKD_STAGES, "G1 normal or high (>=90)")


class CockcroftGaultInputs(Inputs):
    age: Annotated[float, Q("age", 18, 120, "Age")]
    weight: Annotated[
        float, Q("mass", 20, 400, "Body weight (actual, ideal or adjusted as your protocol says)")
    ]
    sex: Sex = Field(description="Sex (x 0.85 for women).")
    creatinine: Annotated[float, Q("creatinine", 0.1, 20, "Serum creatinine")]


@calculator(
    "cockcroft_gault",
    title="Creatinine clearance (Cockcroft-Gault)",
    unit="mL/min",
    citation="Cockcroft DW, Gault MH. Prediction of creatinine clearance from serum creatinine. "
    "Nephron 1976;16:31-41 (CrCl = (140 - age) x weight / (72 x SCr), x 0.85 if female).",
)
def cockcroft_gault(x: CockcroftGaultInputs) -> Outcome:
    """Creatinine clearance (mL/min) = (140 - age) x weight (kg) / (72 x creatinine mg/dL), x0.85
    female."""
    value = (140 - x.age) * x.weight / (72 * x.creatinine)
    if x.sex == "female":
        value *= 0.85
    return Outcome(round(value, 1), "for drug dosing (not indexed to body surface area)")


class EGFRInputs(Inputs):
    age: Annotated[float, Q("age", 18, 120, "Age")]
    sex: Sex = Field(description="Sex.")
    creatinine: Annotated[float, Q("creatinine", 0.1, 20, "Serum creatinine (IDMS-traceable)")]


@calculator(
    "egfr_ckd_epi_2021",
    title="eGFR, CKD-EPI 2021 creatinine equation (race-free)",
    unit="mL/min/1.73m2",
    citation="Inker LA, Eneanya ND, Coresh J, et al. New creatinine- and cystatin C-based "
    "equations to estimate GFR without race. N Engl J Med 2021;385:1737-1749.",
)
def egfr_ckd_epi_2021(x: EGFRInputs) -> Outcome:
    """eGFR = 142 x min(Scr/k,1)^a x max(Scr/k,1)^-1.200 x 0.9938^age (x 1.012 female); k 0.7/0.9,
    a -0.241/-0.302."""
    female = x.sex == "female"
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = x.creatinine / kappa
    value = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.200 * 0.9938**x.age
    if female:
        value *= 1.012
    return Outcome(round(value, 1), _stage(value))


class MDRDInputs(EGFRInputs):
    black: bool = Field(
        False, description="Black race coefficient (x 1.212) of the original equation."
    )


@calculator(
    "egfr_mdrd",
    title="eGFR, 4-variable MDRD (IDMS-traceable, 175)",
    unit="mL/min/1.73m2",
    citation="Levey AS, Coresh J, Greene T, et al. Using standardized serum creatinine values in "
    "the Modification of Diet in Renal Disease study equation. Ann Intern Med 2006;145:247-254 "
    "(175 x Scr^-1.154 x age^-0.203 x 0.742 female x 1.212 Black).",
)
def egfr_mdrd(x: MDRDInputs) -> Outcome:
    """eGFR = 175 x creatinine^-1.154 x age^-0.203 (x 0.742 female) (x 1.212 Black)."""
    value = 175 * x.creatinine**-1.154 * x.age**-0.203
    if x.sex == "female":
        value *= 0.742
    if x.black:
        value *= 1.212
    warnings = ["imprecise above 60 mL/min/1.73m2; CKD-EPI 2021 is the current recommendation"]
    if x.black:
        warnings.append("race coefficients are no longer recommended (NKF-ASN task force 2021)")
    return Outcome(round(value, 1), _stage(value), warnings=warnings)
