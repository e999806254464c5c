"""Venous thromboembolism: Wells (PE, DVT), PERC rule, Caprini risk score."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from medmllm.agent.tools.calculators.base import (
    Inputs,
    Outcome,
    Q,
    calculator,
    score_items,
    step,
)


class WellsPEInputs(Inputs):
    dvt_signs: bool = Field(False, description="Clinical signs and symptoms of DVT (3).")
    pe_most_likely: bool = Field(False, description="PE is the most likely diagnosis (3).")
    heart_rate_over_100: bool = Field(False, description="Heart rate >100/min (1.5).")
    immobilization_or_surgery: bool = Field(
        False, description="Immobilisation >=3 days or surgery in the previous 4 weeks (1.5)."
    )
    previous_dvt_pe: bool = Field(False, description="Previous DVT or PE (1.5).")
    hemoptysis: bool = Field(False, description="Haemoptysis (1).")
    malignancy: bool = Field(False, description="Cancer treated within 6 months or palliative (1).")


@calculator(
    "wells_pe",
    title="Wells score for pulmonary embolism",
    unit="points",
    citation="Wells PS, Anderson DR, Rodger M, et al. Derivation of a simple clinical model to "
    "categorize patients probability of pulmonary embolism. Thromb Haemost 2000;83:416-420.",
)
def wells_pe(x: WellsPEInputs) -> Outcome:
    """Wells PE: DVT signs 3, PE most likely 3, HR>100 1.5, immobilisation/surgery 1.5, prior VTE
    1.5, haemoptysis 1, cancer 1."""
    score = (
        3 * x.dvt_signs
        + 3 * x.pe_most_likely
        + 1.5 * x.heart_rate_over_100
        + 1.5 * x.immobilization_or_surgery
        + 1.5 * x.previous_dvt_pe
        + x.hemoptysis
        + x.malignancy
    )
    three = "low (<2)" if score < 2 else "moderate (2-6)" if score <= 6 else "high (>6)"
    two = "PE likely (>4)" if score > 4 else "PE unlikely (<=4)"
    return Outcome(
        float(score), f"{three} probability; {two}", {"two_tier": two, "three_tier": three}
    )


class WellsDVTInputs(Inputs):
    active_cancer: bool = Field(False, description="Active cancer (1).")
    paralysis_or_cast: bool = Field(
        False, description="Paralysis, paresis or recent plaster of the leg (1)."
    )
    bedridden_or_surgery: bool = Field(
        False, description="Bedridden >3 days or major surgery within 12 weeks (1)."
    )
    deep_vein_tenderness: bool = Field(False, description="Tenderness along deep veins (1).")
    entire_leg_swollen: bool = Field(False, description="Entire leg swollen (1).")
    calf_swelling_over_3cm: bool = Field(False, description="Calf >3 cm larger than other (1).")
    pitting_edema: bool = Field(False, description="Pitting oedema of the symptomatic leg (1).")
    collateral_veins: bool = Field(False, description="Collateral superficial veins (1).")
    previous_dvt: bool = Field(False, description="Previously documented DVT (1).")
    alternative_diagnosis_likely: bool = Field(
        False, description="Alternative diagnosis at least as likely as DVT (-2)."
    )


@calculator(
    "wells_dvt",
    title="Wells score for deep vein thrombosis",
    unit="points",
    citation="Wells PS, Anderson DR, Rodger M, et al. Evaluation of D-dimer in the diagnosis of "
    "suspected deep-vein thrombosis. N Engl J Med 2003;349:1227-1235 (modified score with "
    "previous DVT; >=2 likely).",
)
def wells_dvt(x: WellsDVTInputs) -> Outcome:
    """Wells DVT: one point per criterion, previous DVT 1, alternative diagnosis as likely -2; >=2
    likely."""
    values = x.model_dump()
    score = sum(int(v) for k, v in values.items() if k != "alternative_diagnosis_likely")
    score -= 2 * int(x.alternative_diagnosis_likely)
    return Outcome(score, "DVT likely (>=2)" if score >= 2 else "DVT unlikely (<2)")


class PERCInputs(Inputs):
    age: Annotated[float, Q("age", 0, 120, "Age")]
    heart_rate: Annotated[float, Q("rate", 20, 300, "Heart rate")]
    oxygen_saturation: Annotated[float, Q("percent", 50, 100, "Oxygen saturation on room air")]
    unilateral_leg_swelling: bool = Field(False, description="Unilateral leg swelling.")
    hemoptysis: bool = Field(False, description="Haemoptysis.")
    recent_surgery_or_trauma: bool = Field(
        False, description="Surgery or trauma needing general anaesthesia within 4 weeks."
    )
    prior_pe_or_dvt: bool = Field(False, description="Prior PE or DVT.")
    hormone_use: bool = Field(False, description="Oral contraceptives, HRT or oestrogen.")


@calculator(
    "perc",
    title="Pulmonary Embolism Rule-out Criteria",
    unit="criteria",
    citation="Kline JA, Mitchell AM, Kabrhel C, Richman PB, Courtney DM. Clinical criteria to "
    "prevent unnecessary diagnostic testing in emergency department patients with suspected "
    "pulmonary embolism. J Thromb Haemost 2004;2:1247-1255.",
)
def perc(x: PERCInputs) -> Outcome:
    """PERC: counts positive criteria (age >=50, HR >=100, SaO2 <95%, leg swelling, haemoptysis,
    surgery/trauma, prior VTE, hormones)."""
    positive = [
        name
        for name, hit in (
            ("age >= 50", x.age >= 50),
            ("heart rate >= 100", x.heart_rate >= 100),
            ("SaO2 < 95%", x.oxygen_saturation < 95),
            ("unilateral leg swelling", x.unilateral_leg_swelling),
            ("hemoptysis", x.hemoptysis),
            ("recent surgery or trauma", x.recent_surgery_or_trauma),
            ("prior PE or DVT", x.prior_pe_or_dvt),
            ("hormone use", x.hormone_use),
        )
        if hit
    ]
    text = (
        "PERC negative: in a low-pretest-probability patient, PE can be ruled out without testing"
        if not positive
        else "PERC positive: cannot rule out PE by PERC"
    )
    return Outcome(len(positive), text, {"positive_criteria": positive})


CapriniFactor = Literal[
    "minor_surgery",
    "major_surgery_within_1_month",
    "varicose_veins",
    "inflammatory_bowel_disease",
    "swollen_legs",
    "bmi_over_25",
    "acute_myocardial_infarction",
    "heart_failure_within_1_month",
    "sepsis_within_1_month",
    "serious_lung_disease_within_1_month",
    "abnormal_pulmonary_function",
    "medical_patient_at_bed_rest",
    "other_risk_factor",
    "oral_contraceptives_or_hrt",
    "pregnant_or_postpartum",
    "unexplained_stillbirth_or_recurrent_abortion",
    "arthroscopic_surgery",
    "malignancy",
    "major_open_surgery_over_45_min",
    "laparoscopic_surgery_over_45_min",
    "confined_to_bed_over_72_h",
    "immobilizing_plaster_cast",
    "central_venous_access",
    "history_of_vte",
    "family_history_of_vte",
    "factor_v_leiden",
    "prothrombin_20210a",
    "elevated_homocysteine",
    "lupus_anticoagulant",
    "anticardiolipin_antibodies",
    "heparin_induced_thrombocytopenia",
    "other_thrombophilia",
    "elective_major_lower_extremity_arthroplasty",
    "hip_pelvis_or_leg_fracture",
    "stroke_within_1_month",
    "multiple_trauma_within_1_month",
    "acute_spinal_cord_injury_within_1_month",
]

# Caprini 2005 risk assessment form: every item and its points, as printed (age scored apart).
CAPRINI_POINTS: dict[str, int] = {
    # 1 point each
    "minor_surgery": 1,  # minor surgery planned
    "major_surgery_within_1_month": 1,  # history of prior major surgery (< 1 month)
    "varicose_veins": 1,
    "inflammatory_bowel_disease": 1,  # history of
    "swollen_legs": 1,  # current
    "bmi_over_25": 1,  # obesity (BMI > 25)
    "acute_myocardial_infarction": 1,
    "heart_failure_within_1_month": 1,  # congestive heart failure (< 1 month)
    "sepsis_within_1_month": 1,
    "serious_lung_disease_within_1_month": 1,  # incl. pneumonia (< 1 month)
    "abnormal_pulmonary_function": 1,  # COPD
    "medical_patient_at_bed_rest": 1,  # currently at bed rest
    "other_risk_factor": 1,  # "other risk factors" line of the form
    # 1 point each, women only
    "oral_contraceptives_or_hrt": 1,
    "pregnant_or_postpartum": 1,  # (< 1 month)
    "unexplained_stillbirth_or_recurrent_abortion": 1,  # >= 3 abortions, toxaemia, IUGR birth
    # 2 points each
    "arthroscopic_surgery": 2,
    "malignancy": 2,  # present or previous
    "major_open_surgery_over_45_min": 2,
    "laparoscopic_surgery_over_45_min": 2,
    "confined_to_bed_over_72_h": 2,
    "immobilizing_plaster_cast": 2,  # (< 1 month)
    "central_venous_access": 2,
    # 3 points each
    "history_of_vte": 3,  # DVT/PE
    "family_history_of_vte": 3,  # family history of thrombosis
    "factor_v_leiden": 3,
    "prothrombin_20210a": 3,
    "elevated_homocysteine": 3,
    "lupus_anticoagulant": 3,
    "anticardiolipin_antibodies": 3,
    "heparin_induced_thrombocytopenia": 3,
    "other_thrombophilia": 3,  # other congenital or acquired
    # 5 points each
    "elective_major_lower_extremity_arthroplasty": 5,
    "hip_pelvis_or_leg_fracture": 5,  # (< 1 month)
    "stroke_within_1_month": 5,
    "multiple_trauma_within_1_month": 5,
    "acute_spinal_cord_injury_within_1_month": 5,  # paralysis
}
# One planned operation and one mobility state: only the highest-scoring choice counts.
CAPRINI_ALTERNATIVES = (
    (
        "minor_surgery",
        "arthroscopic_surgery",
        "major_open_surgery_over_45_min",
        "laparoscopic_surgery_over_45_min",
        "elective_major_lower_extremity_arthroplasty",
    ),
    ("medical_patient_at_bed_rest", "confined_to_bed_over_72_h"),
)
# Age points on the 2005 form: 41-60 1, 61-74 2, >= 75 3.
CAPRINI_AGE = ((75, 3), (61, 2), (41, 1))
if set(CAPRINI_POINTS) != set(get_args(CapriniFactor)):  # pragma: no cover - import guard
    raise AssertionError("CAPRINI_POINTS and CapriniFactor must list the same items")


class CapriniInputs(Inputs):
    age: Annotated[float, Q("age", 0, 120, "Age (41-60: 1, 61-74: 2, >=75: 3 points)")]
    factors: list[CapriniFactor] = Field(
        default_factory=list, description="Risk factors present (names from the 2005 form)."
    )


@calculator(
    "caprini",
    title="Caprini venous thromboembolism risk score (2005)",
    unit="points",
    citation="Caprini JA. Thrombosis risk assessment as a guide to quality patient care. Dis Mon "
    "2005;51:70-78 (risk assessment form: items and points); risk bands: Gould MK et al. "
    "Prevention of VTE in nonorthopedic surgical patients. Chest 2012;141(2 Suppl):e227S-e277S.",
)
def caprini(x: CapriniInputs) -> Outcome:
    """Caprini VTE risk: age points plus 1/2/3/5-point factors of the 2005 form; 0 very low, 1-2
    low, 3-4 moderate, >=5 high."""
    age_pts = step(x.age, CAPRINI_AGE, below=0)
    factor_pts, counted, warnings = score_items(x.factors, CAPRINI_POINTS, CAPRINI_ALTERNATIVES)
    score = age_pts + factor_pts
    text = (
        "very low"
        if score == 0
        else "low"
        if score <= 2
        else "moderate"
        if score <= 4
        else ("high")
    )
    return Outcome(
        score,
        f"{text} VTE risk (ACCP 2012 bands)",
        {"age_points": age_pts, "factors": counted, "factor_points": factor_pts},
        warnings,
    )
