"""Kidney function: creatinine clearance (Cockcroft-Gault), eGFR (CKD-EPI 2021, MDRD)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, band, calculator
from medmllm.agent.tools.calculators.body import adjusted_weight, bmi_value, devine_ideal_weight
from medmllm.agent.tools.calculators.fields import Sex, missing

_CKD_STAGES: list[tuple[float, str]] = [
    (15, "G5 kidney failure (<15)"),
    (30, "G4 severely decreased (15-29)"),
    (45, "G3b moderately to severely decreased (30-44)"),
    (60, "G3a mildly to moderately decreased (45-59)"),
    (90, "G2 mildly decreased (60-89)"),
]


def _stage(egfr: float) -> str:
    return "KDIGO " + band(egfr, _CKD_STAGES, "G1 normal or high (>=90)")


WeightConvention = Literal["actual", "ideal", "adjusted", "auto"]


class CockcroftGaultInputs(Inputs):
    age: Annotated[float, Q("age", 18, 120, "Age")]
    weight: Annotated[float, Q("mass", 20, 400, "Actual body weight")]
    sex: Sex = Field(description="Sex (x 0.85 for women).")
    creatinine: Annotated[float, Q("creatinine", 0.1, 20, "Serum creatinine")]
    weight_convention: WeightConvention = Field(
        "auto",
        description="Weight in the formula: actual; ideal (Devine); adjusted (ideal + 0.4 x "
        "(actual - ideal)); auto = by BMI as MDCalc: <18.5 actual, 18.5-24.9 the lesser of "
        "ideal and actual, >=25 adjusted (needs height; without height, actual).",
    )
    height: Annotated[
        float | None, Q("length", 100, 250, "Body height (for the ideal/adjusted weight)")
    ] = Field(None, validate_default=True)

    @field_validator("height", mode="after")
    @classmethod
    def _height_when_needed(cls, height: float | None, info: ValidationInfo) -> float | None:
        convention = info.data.get("weight_convention")
        if height is None and convention in ("ideal", "adjusted"):
            raise missing(f"weight_convention '{convention}' needs the height")
        return height


def _weight_for_cg(x: CockcroftGaultInputs) -> tuple[float, str, dict[str, float]]:
    """(weight used, which weight and why, the candidate weights) for Cockcroft-Gault."""
    if x.height is None:
        return x.weight, "actual body weight (no height given)", {}
    ibw = devine_ideal_weight(x.sex, x.height)
    adj = adjusted_weight(ibw, x.weight)
    bmi = bmi_value(x.weight, x.height)
    weights = {
        "bmi": round(bmi, 1),
        "ideal_body_weight_kg": round(ibw, 1),
        "adjusted_body_weight_kg": round(adj, 1),
    }
    if x.weight_convention == "actual":
        return x.weight, "actual body weight", weights
    if x.weight_convention == "ideal":
        return ibw, "ideal body weight", weights
    if x.weight_convention == "adjusted":
        return adj, "adjusted body weight", weights
    if bmi < 18.5:
        return x.weight, f"actual body weight (BMI {bmi:.1f} < 18.5)", weights
    if bmi < 25:
        if x.weight < ibw:
            return x.weight, f"actual body weight (BMI {bmi:.1f}, below ideal weight)", weights
        return ibw, f"ideal body weight (BMI {bmi:.1f} in 18.5-24.9)", weights
    return adj, f"adjusted body weight (BMI {bmi:.1f} >= 25)", weights


@calculator(
    "cockcroft_gault",
    title="Creatinine clearance (Cockcroft-Gault)",
    unit="mL/min",
    citation="Cockcroft DW, Gault MH. Prediction of creatinine clearance from serum creatinine. "
    "Nephron 1976;16:31-41 (CrCl = (140 - age) x weight / (72 x SCr), x 0.85 if female); "
    "weight by BMI (auto): Winter MA, Guhr KN, Berg GM. Impact of various body weights and "
    "serum creatinine concentrations on the bias and accuracy of the Cockcroft-Gault equation. "
    "Pharmacotherapy 2012;32:604-612, as applied by MDCalc's Cockcroft-Gault calculator.",
)
def cockcroft_gault(x: CockcroftGaultInputs) -> Outcome:
    """Creatinine clearance (mL/min) = (140 - age) x weight (kg) / (72 x creatinine mg/dL), x0.85
    female; weight actual, ideal, adjusted, or chosen by BMI (auto, needs height)."""
    weight, basis, weights = _weight_for_cg(x)
    value = (140 - x.age) * weight / (72 * x.creatinine)
    if x.sex == "female":
        value *= 0.85
    details = {"weight_used_kg": round(weight, 1), "weight_basis": basis, **weights}
    return Outcome(
        round(value, 1),
        f"for drug dosing (not indexed to body surface area); weight used: {basis}",
        details,
    )


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
