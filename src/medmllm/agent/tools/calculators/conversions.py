"""Drug dose equivalence: systemic corticosteroids and opioids (morphine milligram equivalents)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator

# Equivalent anti-inflammatory doses (mg), Liu D et al. 2013, Table 1.
STEROID_EQUIVALENT_MG = {
    "hydrocortisone": 20.0,
    "cortisone": 25.0,
    "prednisone": 5.0,
    "prednisolone": 5.0,
    "methylprednisolone": 4.0,
    "triamcinolone": 4.0,
    "dexamethasone": 0.75,
    "betamethasone": 0.6,
}
Steroid = Literal[
    "hydrocortisone",
    "cortisone",
    "prednisone",
    "prednisolone",
    "methylprednisolone",
    "triamcinolone",
    "dexamethasone",
    "betamethasone",
]


class SteroidInputs(Inputs):
    drug: Steroid = Field(description="Corticosteroid given.")
    dose: Annotated[float, Q("dose", 0.01, 5000, "Dose of that corticosteroid")]
    target: Steroid = Field(description="Corticosteroid to convert to.")


@calculator(
    "steroid_conversion",
    title="Corticosteroid dose equivalence",
    unit="mg",
    citation="Liu D, Ahmet A, Ward L, et al. A practical guide to the monitoring and management "
    "of the complications of systemic corticosteroid therapy. Allergy Asthma Clin Immunol "
    "2013;9:30 (Table 1: equivalent glucocorticoid doses).",
)
def steroid_conversion(x: SteroidInputs) -> Outcome:
    """Equivalent glucocorticoid dose: dose x (target equivalent / source equivalent)."""
    value = x.dose * STEROID_EQUIVALENT_MG[x.target] / STEROID_EQUIVALENT_MG[x.drug]
    return Outcome(
        round(value, 2),
        f"{x.dose:g} mg {x.drug} ~ {value:.3g} mg {x.target} (glucocorticoid potency)",
        {"prednisone_equivalent_mg": round(x.dose * 5.0 / STEROID_EQUIVALENT_MG[x.drug], 2)},
        ["mineralocorticoid effects and duration of action differ between drugs"],
    )


# Oral morphine milligram equivalent factors, CDC 2022 guideline Table (per mg/day;
# transdermal fentanyl per µg/h).
MME_FACTOR = {
    "codeine": 0.15,
    "fentanyl_transdermal": 2.4,
    "hydrocodone": 1.0,
    "hydromorphone": 5.0,
    "methadone": 4.7,
    "morphine": 1.0,
    "oxycodone": 1.5,
    "oxymorphone": 3.0,
    "tapentadol": 0.4,
    "tramadol": 0.2,
}
Opioid = Literal[
    "codeine",
    "fentanyl_transdermal",
    "hydrocodone",
    "hydromorphone",
    "methadone",
    "morphine",
    "oxycodone",
    "oxymorphone",
    "tapentadol",
    "tramadol",
]


class OpioidInputs(Inputs):
    drug: Opioid = Field(description="Opioid taken (oral unless fentanyl_transdermal).")
    daily_dose: float = Field(
        gt=0, le=5000, description="Total daily dose in mg (fentanyl patch: µg/h)."
    )
    target: Opioid | None = Field(None, description="Opioid to convert to (optional).")
    cross_tolerance_reduction: float = Field(
        0, ge=0, le=75, description="Percent dose reduction for incomplete cross-tolerance."
    )


@calculator(
    "opioid_conversion",
    title="Opioid morphine milligram equivalents (MME)",
    unit="MME/day",
    citation="Dowell D, Ragan KR, Jones CM, Baldwin GT, Chou R. CDC Clinical Practice Guideline "
    "for Prescribing Opioids for Pain - United States, 2022. MMWR Recomm Rep 2022;71(3):1-95 "
    "(Table: MME conversion factors).",
)
def opioid_conversion(x: OpioidInputs) -> Outcome:
    """Daily morphine milligram equivalents = daily dose x CDC 2022 factor; optional target dose."""
    mme = x.daily_dose * MME_FACTOR[x.drug]
    details: dict[str, float | str] = {"mme_per_day": round(mme, 1)}
    warnings = [
        "CDC: MME factors estimate overdose risk and are not dose-conversion tables; "
        "reduce the calculated dose when rotating opioids and titrate under supervision"
    ]
    text = f"{mme:.1f} MME/day" + (" (>=50 MME/day: increased overdose risk)" if mme >= 50 else "")
    if x.target is not None:
        target = mme / MME_FACTOR[x.target] * (1 - x.cross_tolerance_reduction / 100)
        unit = "µg/h" if x.target == "fentanyl_transdermal" else "mg/day"
        details["target_dose"] = round(target, 1)
        details["target_unit"] = unit
        text += f"; about {target:.1f} {unit} {x.target}"
        if x.target in ("methadone", "fentanyl_transdermal"):
            warnings.append(f"conversion to {x.target} needs specialist protocols")
    return Outcome(round(mme, 1), text, details, warnings)
