"""Serum chemistry: anion gap, corrected calcium and sodium, osmolality, free-water deficit,
HOMA-IR, fractional excretion of sodium."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator


class AnionGapInputs(Inputs):
    sodium: Annotated[float, Q("electrolyte", 100, 200, "Serum sodium")]
    chloride: Annotated[float, Q("electrolyte", 50, 150, "Serum chloride")]
    bicarbonate: Annotated[float, Q("electrolyte", 1, 60, "Serum bicarbonate")]
    albumin: Annotated[
        float | None, Q("albumin", 0.5, 7, "Serum albumin, for the albumin-corrected gap")
    ] = None


@calculator(
    "anion_gap",
    title="Anion gap (with albumin correction)",
    unit="mmol/L",
    citation="Emmett M, Narins RG. Clinical use of the anion gap. Medicine 1977;56:38-54 "
    "(AG = Na - (Cl + HCO3)); albumin correction AG + 2.5 x (4.0 - albumin g/dL): Figge J et al. "
    "Anion gap and hypoalbuminemia. Crit Care Med 1998;26:1807-1810.",
)
def anion_gap(x: AnionGapInputs) -> Outcome:
    """Serum anion gap = Na - (Cl + HCO3); albumin-corrected if albumin is given."""
    ag = x.sodium - (x.chloride + x.bicarbonate)
    details: dict[str, float] = {"anion_gap": round(ag, 1)}
    used = ag
    if x.albumin is not None:
        used = ag + 2.5 * (4.0 - x.albumin)
        details["albumin_corrected_anion_gap"] = round(used, 1)
    text = (
        "elevated (>12 mmol/L): consider high anion gap metabolic acidosis"
        if used > 12
        else ("within the usual reference range (about 8-12 mmol/L without potassium)")
    )
    return Outcome(round(ag, 1), text, details)


class CorrectedCalciumInputs(Inputs):
    calcium: Annotated[float, Q("calcium", 2, 20, "Total serum calcium")]
    albumin: Annotated[float, Q("albumin", 0.5, 7, "Serum albumin")]
    normal_albumin: float = Field(4.0, ge=3.0, le=5.0, description="Reference albumin, g/dL.")


@calculator(
    "corrected_calcium",
    title="Albumin-corrected calcium",
    unit="mg/dL",
    citation="Payne RB, Little AJ, Williams RB, Milner JR. Interpretation of serum calcium in "
    "patients with abnormal serum proteins. Br Med J 1973;4:643-646 "
    "(corrected Ca = Ca + 0.8 x (4.0 - albumin g/dL)).",
)
def corrected_calcium(x: CorrectedCalciumInputs) -> Outcome:
    """Corrected calcium (mg/dL) = measured calcium + 0.8 x (4.0 - albumin g/dL)."""
    value = x.calcium + 0.8 * (x.normal_albumin - x.albumin)
    text = (
        "low (<8.5 mg/dL)"
        if value < 8.5
        else "high (>10.5 mg/dL)"
        if value > 10.5
        else ("within 8.5-10.5 mg/dL")
    )
    return Outcome(round(value, 2), text, {"corrected_calcium_mmol_l": round(value / 4.008, 2)})


class CorrectedSodiumInputs(Inputs):
    sodium: Annotated[float, Q("electrolyte", 100, 200, "Measured serum sodium")]
    glucose: Annotated[float, Q("glucose", 20, 3000, "Serum glucose")]
    method: Literal["katz", "hillier"] = Field(
        "katz", description="katz: 1.6 mmol/L per 100 mg/dL glucose; hillier: 2.4."
    )


@calculator(
    "corrected_sodium",
    title="Sodium corrected for hyperglycaemia",
    unit="mmol/L",
    citation="Katz MA. Hyperglycemia-induced hyponatremia - calculation of expected serum sodium "
    "depression. N Engl J Med 1973;289:843-844 (1.6 per 100 mg/dL); Hillier TA et al. "
    "Hyponatremia: evaluating the correction factor for hyperglycemia. Am J Med "
    "1999;106:399-403 (2.4 per 100 mg/dL).",
)
def corrected_sodium(x: CorrectedSodiumInputs) -> Outcome:
    """Sodium corrected for glucose: Na + factor x (glucose - 100 mg/dL)/100 (Katz 1.6, Hillier
    2.4)."""
    excess = (x.glucose - 100) / 100
    katz = x.sodium + 1.6 * excess
    hillier = x.sodium + 2.4 * excess
    value = katz if x.method == "katz" else hillier
    return Outcome(
        round(value, 1),
        "sodium expected once glucose is normal",
        {"katz": round(katz, 1), "hillier": round(hillier, 1)},
    )


class OsmolalityInputs(Inputs):
    sodium: Annotated[float, Q("electrolyte", 100, 200, "Serum sodium")]
    glucose: Annotated[float, Q("glucose", 10, 3000, "Serum glucose")]
    bun: Annotated[
        float, Q("bun", 1, 300, "Blood urea nitrogen (urea in mmol/L is the same number as mmol/L)")
    ]
    ethanol: Annotated[float | None, Q("ethanol", 0, 1000, "Blood ethanol, if known")] = None
    measured: float | None = Field(
        None, ge=150, le=500, description="Measured osmolality (mOsm/kg) for the osmolal gap."
    )


@calculator(
    "serum_osmolality",
    title="Calculated serum osmolality (and osmolal gap)",
    unit="mOsm/kg",
    citation="Dorwart WV, Chalmers L. Comparison of methods for calculating serum osmolality "
    "from chemical concentrations. Clin Chem 1975;21:190-194 (2 Na + glucose/18 + BUN/2.8); "
    "ethanol/3.7: Purssell RA et al. Ann Emerg Med 2001;38:653-659.",
)
def serum_osmolality(x: OsmolalityInputs) -> Outcome:
    """Calculated osmolality = 2 Na + glucose/18 + BUN/2.8 (+ ethanol/3.7), all in mg/dL."""
    value = 2 * x.sodium + x.glucose / 18 + x.bun / 2.8
    if x.ethanol is not None:
        value += x.ethanol / 3.7
    details: dict[str, float] = {}
    text = "reference about 275-295 mOsm/kg"
    if x.measured is not None:
        gap = x.measured - value
        details["osmolal_gap"] = round(gap, 1)
        text += "; osmolal gap > 10 suggests unmeasured osmoles" if gap > 10 else ""
    return Outcome(round(value, 1), text, details)


class FreeWaterInputs(Inputs):
    sodium: Annotated[float, Q("electrolyte", 100, 200, "Serum sodium")]
    weight: Annotated[float, Q("mass", 1, 400, "Body weight")]
    sex: Literal["male", "female"] = Field(description="Sex (sets the total-body-water fraction).")
    age: Annotated[float, Q("age", 0, 120, "Age")]
    target_sodium: float = Field(140, ge=120, le=160, description="Target sodium, mmol/L.")


@calculator(
    "free_water_deficit",
    title="Free water deficit",
    unit="L",
    citation="Adrogué HJ, Madias NE. Hypernatremia. N Engl J Med 2000;342:1493-1499 "
    "(deficit = TBW x (Na/140 - 1); TBW = 0.6 / 0.5 x weight, 0.5 / 0.45 when elderly, "
    "0.6 in children).",
)
def free_water_deficit(x: FreeWaterInputs) -> Outcome:
    """Free water deficit (L) = total body water x (Na / target - 1); TBW by age and sex."""
    if x.age < 18:
        fraction = 0.6
    elif x.age >= 65:
        fraction = 0.5 if x.sex == "male" else 0.45
    else:
        fraction = 0.6 if x.sex == "male" else 0.5
    tbw = fraction * x.weight
    value = tbw * (x.sodium / x.target_sodium - 1)
    warnings = []
    if x.sodium <= x.target_sodium:
        warnings.append("sodium is not above the target: there is no free-water deficit")
    return Outcome(
        round(value, 2),
        "water to replace, usually over 48 h (at most ~10 mmol/L sodium fall per 24 h)",
        {"total_body_water_l": round(tbw, 1), "tbw_fraction": fraction},
        warnings,
    )


class HomaInputs(Inputs):
    glucose: Annotated[float, Q("glucose", 20, 600, "Fasting plasma glucose")]
    insulin: Annotated[float, Q("insulin", 0.5, 500, "Fasting insulin")]


@calculator(
    "homa_ir",
    title="HOMA-IR (insulin resistance)",
    unit="",
    citation="Matthews DR et al. Homeostasis model assessment: insulin resistance and beta-cell "
    "function from fasting plasma glucose and insulin. Diabetologia 1985;28:412-419 "
    "(insulin µU/mL x glucose mmol/L / 22.5).",
)
def homa_ir(x: HomaInputs) -> Outcome:
    """HOMA-IR = fasting insulin (µU/mL) x fasting glucose (mmol/L) / 22.5."""
    value = x.insulin * (x.glucose / 18.016) / 22.5
    return Outcome(
        round(value, 2), "1.0 = the reference population's normal; higher = more resistant"
    )


class FenaInputs(Inputs):
    urine_sodium: Annotated[float, Q("electrolyte", 1, 400, "Urine sodium")]
    plasma_sodium: Annotated[float, Q("electrolyte", 100, 200, "Plasma sodium")]
    urine_creatinine: Annotated[float, Q("creatinine", 1, 1000, "Urine creatinine")]
    plasma_creatinine: Annotated[float, Q("creatinine", 0.1, 25, "Plasma creatinine")]


@calculator(
    "fena",
    title="Fractional excretion of sodium",
    unit="%",
    citation="Espinel CH. The FENa test: use in the differential diagnosis of acute renal "
    "failure. JAMA 1976;236:579-581 (FENa = (UNa x PCr)/(PNa x UCr) x 100).",
)
def fena(x: FenaInputs) -> Outcome:
    """FENa (%) = (urine Na x plasma Cr) / (plasma Na x urine Cr) x 100."""
    value = 100 * (x.urine_sodium * x.plasma_creatinine) / (x.plasma_sodium * x.urine_creatinine)
    text = (
        "<1%: suggests prerenal cause"
        if value < 1
        else (
            ">2%: suggests intrinsic renal (e.g. acute tubular necrosis)"
            if value > 2
            else "1-2%: indeterminate"
        )
    )
    return Outcome(round(value, 2), text, warnings=["unreliable after diuretics (consider FEUrea)"])
