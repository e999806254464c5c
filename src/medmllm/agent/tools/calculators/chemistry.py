"""Serum chemistry: anion gap (+ albumin-corrected), delta gap and delta ratio, corrected calcium
and sodium, osmolality, free-water deficit, HOMA-IR, fractional excretion of sodium."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator
from medmllm.agent.tools.calculators.fields import Sex, UreaOrBUN


class AnionGapInputs(Inputs):
    sodium: Annotated[float, Q("electrolyte", 100, 200, "Serum sodium")]
    chloride: Annotated[float, Q("electrolyte", 50, 150, "Serum chloride")]
    bicarbonate: Annotated[float, Q("electrolyte", 1, 60, "Serum bicarbonate")]
    albumin: Annotated[
        float | None, Q("albumin", 0.5, 7, "Serum albumin, for the albumin-corrected gap")
    ] = None


class AlbuminGapInputs(AnionGapInputs):
    albumin: Annotated[float, Q("albumin", 0.5, 7, "Serum albumin")]  # type: ignore[assignment]


class DeltaRatioInputs(AnionGapInputs):
    @model_validator(mode="after")
    def _bicarbonate_fell(self) -> DeltaRatioInputs:
        if self.bicarbonate >= NORMAL_BICARBONATE:
            raise ValueError(
                f"bicarbonate {self.bicarbonate:g} mmol/L is not below {NORMAL_BICARBONATE:g}: "
                "the delta ratio divides the rise in anion gap by the fall in bicarbonate"
            )
        return self


class AlbuminDeltaRatioInputs(DeltaRatioInputs):
    albumin: Annotated[float, Q("albumin", 0.5, 7, "Serum albumin")]  # type: ignore[assignment]


# The normal values the delta calculations subtract (Wrenn 1990; Rastegar 2007).
NORMAL_ANION_GAP = 12.0
NORMAL_BICARBONATE = 24.0
NORMAL_ALBUMIN = 4.0

_GAPS_CITATION = (
    "Emmett M, Narins RG. Clinical use of the anion gap. Medicine 1977;56:38-54 "
    "(AG = Na - (Cl + HCO3)); albumin correction AG + 2.5 x (4.0 - albumin g/dL): Figge J, "
    "Jabor A, Kazda A, Fencl V. Anion gap and hypoalbuminemia. Crit Care Med 1998;26:1807-1810"
)
_DELTA_CITATION = (
    "; delta gap = AG - 12 and corrected bicarbonate = HCO3 + delta gap: Wrenn K. The delta gap: "
    "an approach to mixed acid-base disorders. Ann Emerg Med 1990;19:1310-1313; delta ratio = "
    "(AG - 12) / (24 - HCO3): Rastegar A. Use of the DeltaAG/DeltaHCO3- ratio in the diagnosis "
    "of mixed acid-base disorders. J Am Soc Nephrol 2007;18:2429-2431."
)


def _gap_reading(value: float) -> str:
    if value > 12:
        return "elevated (>12 mmol/L): consider high anion gap metabolic acidosis"
    if value < 8:
        return "low (<8 mmol/L): consider hypoalbuminaemia or laboratory error"
    return "within the usual reference range (about 8-12 mmol/L without potassium)"


def _gaps(x: AnionGapInputs) -> dict[str, float]:
    """Every gap value the inputs allow (albumin-corrected ones when albumin is given)."""
    ag = x.sodium - (x.chloride + x.bicarbonate)
    out = {"anion_gap": ag, "delta_gap": ag - NORMAL_ANION_GAP}
    fall = NORMAL_BICARBONATE - x.bicarbonate
    out["corrected_bicarbonate"] = x.bicarbonate + out["delta_gap"]
    if fall > 0:
        out["delta_ratio"] = out["delta_gap"] / fall
    if x.albumin is not None:
        corrected = ag + 2.5 * (NORMAL_ALBUMIN - x.albumin)
        out["albumin_corrected_anion_gap"] = corrected
        out["albumin_corrected_delta_gap"] = corrected - NORMAL_ANION_GAP
        if fall > 0:
            out["albumin_corrected_delta_ratio"] = (corrected - NORMAL_ANION_GAP) / fall
    return {k: round(v, 2) for k, v in out.items()}


@calculator(
    "anion_gap",
    title="Anion gap (with albumin correction)",
    unit="mmol/L",
    citation=_GAPS_CITATION + ".",
)
def anion_gap(x: AnionGapInputs) -> Outcome:
    """Serum anion gap = Na - (Cl + HCO3); with albumin, the albumin-corrected gap in details."""
    gaps = _gaps(x)
    ag = gaps["anion_gap"]
    text = f"anion gap {ag:g} mmol/L: {_gap_reading(ag)}"
    details = {"anion_gap": round(ag, 1)}
    if "albumin_corrected_anion_gap" in gaps:
        corrected = gaps["albumin_corrected_anion_gap"]
        details["albumin_corrected_anion_gap"] = round(corrected, 1)
        text += f"; albumin-corrected anion gap {corrected:g} mmol/L: {_gap_reading(corrected)}"
    return Outcome(round(ag, 1), text, details)


@calculator(
    "albumin_corrected_anion_gap",
    title="Albumin-corrected anion gap",
    unit="mmol/L",
    citation=_GAPS_CITATION + ".",
)
def albumin_corrected_anion_gap(x: AlbuminGapInputs) -> Outcome:
    """Albumin-corrected anion gap = Na - (Cl + HCO3) + 2.5 x (4.0 - albumin g/dL)."""
    gaps = _gaps(x)
    value = gaps["albumin_corrected_anion_gap"]
    return Outcome(
        round(value, 1),
        f"albumin-corrected anion gap {value:g} mmol/L: {_gap_reading(value)}",
        gaps,
    )


def _delta_gap_reading(corrected_bicarbonate: float) -> str:
    if corrected_bicarbonate > 26:
        return "corrected bicarbonate >26 mmol/L: a concurrent metabolic alkalosis"
    if corrected_bicarbonate < 22:
        return "corrected bicarbonate <22 mmol/L: a concurrent normal anion gap acidosis"
    return "corrected bicarbonate 22-26 mmol/L: no second metabolic disorder by the delta gap"


def _delta_ratio_reading(ratio: float) -> str:
    if ratio < 0.4:
        return "<0.4: hyperchloraemic normal anion gap acidosis"
    if ratio < 0.8:
        return "0.4-0.8: combined high and normal anion gap acidosis"
    if ratio <= 2.0:
        return "0.8-2.0: uncomplicated high anion gap acidosis"
    return ">2.0: concurrent metabolic alkalosis or a pre-existing compensated respiratory acidosis"


@calculator(
    "delta_gap",
    title="Delta gap (anion gap excess)",
    unit="mmol/L",
    citation=_GAPS_CITATION + _DELTA_CITATION,
)
def delta_gap(x: AnionGapInputs) -> Outcome:
    """Delta gap = anion gap - 12; corrected bicarbonate = HCO3 + delta gap (albumin in details)."""
    gaps = _gaps(x)
    value = gaps["delta_gap"]
    return Outcome(round(value, 1), _delta_gap_reading(gaps["corrected_bicarbonate"]), gaps)


@calculator(
    "albumin_corrected_delta_gap",
    title="Albumin-corrected delta gap",
    unit="mmol/L",
    citation=_GAPS_CITATION + _DELTA_CITATION,
)
def albumin_corrected_delta_gap(x: AlbuminGapInputs) -> Outcome:
    """Albumin-corrected delta gap = albumin-corrected anion gap - 12."""
    gaps = _gaps(x)
    value = gaps["albumin_corrected_delta_gap"]
    return Outcome(round(value, 1), _delta_gap_reading(x.bicarbonate + value), gaps)


@calculator(
    "delta_ratio",
    title="Delta ratio (delta anion gap / delta bicarbonate)",
    unit="",
    citation=_GAPS_CITATION + _DELTA_CITATION,
)
def delta_ratio(x: DeltaRatioInputs) -> Outcome:
    """Delta ratio = (anion gap - 12) / (24 - HCO3); needs bicarbonate below 24 mmol/L."""
    gaps = _gaps(x)
    value = gaps["delta_ratio"]
    return Outcome(round(value, 2), _delta_ratio_reading(value), gaps)


@calculator(
    "albumin_corrected_delta_ratio",
    title="Albumin-corrected delta ratio",
    unit="",
    citation=_GAPS_CITATION + _DELTA_CITATION,
)
def albumin_corrected_delta_ratio(x: AlbuminDeltaRatioInputs) -> Outcome:
    """Albumin-corrected delta ratio = (albumin-corrected anion gap - 12) / (24 - HCO3)."""
    gaps = _gaps(x)
    value = gaps["albumin_corrected_delta_ratio"]
    return Outcome(round(value, 2), _delta_ratio_reading(value), gaps)


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


class OsmolalityInputs(UreaOrBUN):
    sodium: Annotated[float, Q("electrolyte", 100, 200, "Serum sodium")]
    glucose: Annotated[float, Q("glucose", 10, 3000, "Serum glucose")]
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
    bun = x.bun_mg_dl
    assert bun is not None  # UreaOrBUN requires one of the two
    value = 2 * x.sodium + x.glucose / 18 + bun / 2.8
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
    sex: Sex = Field(description="Sex (sets the total-body-water fraction).")
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
