"""Critical care: SIRS criteria, APACHE II."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator, step


class SirsInputs(Inputs):
    temperature: Annotated[float, Q("temperature", 25, 45, "Body temperature")]
    heart_rate: Annotated[float, Q("rate", 20, 300, "Heart rate")]
    respiratory_rate: Annotated[float, Q("rate", 4, 80, "Respiratory rate")]
    wbc: Annotated[float, Q("leukocytes", 0, 500, "White blood cell count")]
    paco2: Annotated[
        float | None, Q("pressure", 5, 150, "Arterial PCO2, if measured (<32 mmHg meets)")
    ] = None
    bands_over_10_percent: bool = Field(False, description="Immature (band) forms >10%.")


@calculator(
    "sirs",
    title="Systemic inflammatory response syndrome (SIRS) criteria",
    unit="criteria",
    citation="Bone RC, Balk RA, Cerra FB, et al. Definitions for sepsis and organ failure and "
    "guidelines for the use of innovative therapies in sepsis. The ACCP/SCCM Consensus "
    "Conference Committee. Chest 1992;101:1644-1655.",
)
def sirs(x: SirsInputs) -> Outcome:
    """SIRS criteria met (0-4): temperature >38 or <36 C; heart rate >90; respiratory rate >20 or
    PaCO2 <32 mmHg; WBC >12 or <4 x10^9/L or >10% bands. SIRS = 2 or more."""
    criteria = {
        "temperature >38 or <36 C": x.temperature > 38 or x.temperature < 36,
        "heart rate >90": x.heart_rate > 90,
        "respiratory rate >20 or PaCO2 <32 mmHg": x.respiratory_rate > 20
        or (x.paco2 is not None and x.paco2 < 32),
        "WBC >12 or <4 x10^9/L or >10% bands": x.wbc > 12 or x.wbc < 4 or x.bands_over_10_percent,
    }
    met = [name for name, hit in criteria.items() if hit]
    text = (
        "SIRS (>=2 criteria); with a suspected or proven infection, sepsis by the 1992 definition"
        if len(met) >= 2
        else "SIRS criteria not met (<2)"
    )
    return Outcome(
        len(met),
        text,
        {"criteria_met": met},
        ["Sepsis-3 (2016) defines sepsis by organ dysfunction (SOFA), not by SIRS"],
    )


Admission = Literal["nonoperative", "emergency_postoperative", "elective_postoperative"]


class ApacheInputs(Inputs):
    age: Annotated[float, Q("age", 16, 120, "Age")]
    temperature: Annotated[float, Q("temperature", 20, 45, "Temperature (rectal)")]
    mean_arterial_pressure: Annotated[
        float | None,
        Q("pressure", 10, 250, "Mean arterial pressure (or give systolic and diastolic)"),
    ] = None
    systolic: Annotated[float | None, Q("pressure", 30, 300, "Systolic blood pressure")] = None
    diastolic: Annotated[float | None, Q("pressure", 10, 200, "Diastolic blood pressure")] = None
    heart_rate: Annotated[float, Q("rate", 0, 300, "Heart rate")]
    respiratory_rate: Annotated[float, Q("rate", 0, 100, "Respiratory rate")]
    fio2: Annotated[float, Q("percent", 21, 100, "Inspired oxygen fraction")]
    pao2: Annotated[float, Q("pressure", 10, 700, "Arterial PO2")]
    paco2: Annotated[
        float | None, Q("pressure", 5, 150, "Arterial PCO2 (for the A-a gradient at FiO2 >=50%)")
    ] = None
    a_a_gradient: Annotated[
        float | None, Q("pressure", 0, 800, "A-a O2 gradient, if already known")
    ] = None
    ph: Annotated[float | None, Q("unitless", 6.5, 8.0, "Arterial pH")] = None
    bicarbonate: Annotated[
        float | None, Q("electrolyte", 1, 70, "Serum bicarbonate (used when no arterial pH)")
    ] = None
    sodium: Annotated[float, Q("electrolyte", 90, 220, "Serum sodium")]
    potassium: Annotated[float, Q("electrolyte", 1, 12, "Serum potassium")]
    creatinine: Annotated[float, Q("creatinine", 0.1, 25, "Serum creatinine")]
    acute_renal_failure: bool = Field(
        False, description="Acute renal failure (doubles creatinine points)."
    )
    hematocrit: Annotated[float, Q("percent", 5, 80, "Haematocrit")]
    wbc: Annotated[float, Q("leukocytes", 0, 500, "White blood cell count")]
    gcs: int = Field(ge=3, le=15, description="Glasgow Coma Scale (points = 15 - GCS).")
    severe_organ_insufficiency_or_immunocompromised: bool = Field(
        False,
        description="History of severe organ insufficiency (cirrhosis, NYHA IV, severe COPD, "
        "dialysis) or immunocompromise.",
    )
    admission: Admission = Field(
        "nonoperative", description="Admission type (sets the chronic health points)."
    )

    @model_validator(mode="after")
    def _alternatives(self) -> ApacheInputs:
        if self.mean_arterial_pressure is None and (
            self.systolic is None or self.diastolic is None
        ):
            raise ValueError("give mean_arterial_pressure, or systolic and diastolic")
        if self.ph is None and self.bicarbonate is None:
            raise ValueError("give the arterial ph (or, without a blood gas, bicarbonate)")
        if self.fio2 >= 50 and self.a_a_gradient is None and self.paco2 is None:
            raise ValueError(
                f"FiO2 {self.fio2:g}% >= 50% scores the A-a gradient: give a_a_gradient or paco2"
            )
        return self


# Knaus 1985, Figure 1: (lower bound inclusive, points), highest bound first; then points below.
APACHE_TABLES: dict[str, tuple[tuple[tuple[float, int], ...], int]] = {
    "temperature": (((41, 4), (39, 3), (38.5, 1), (36, 0), (34, 1), (32, 2), (30, 3)), 4),
    "mean_arterial_pressure": (((160, 4), (130, 3), (110, 2), (70, 0), (50, 2)), 4),
    "heart_rate": (((180, 4), (140, 3), (110, 2), (70, 0), (55, 2), (40, 3)), 4),
    "respiratory_rate": (((50, 4), (35, 3), (25, 1), (12, 0), (10, 1), (6, 2)), 4),
    "a_a_gradient": (((500, 4), (350, 3), (200, 2)), 0),  # FiO2 >= 0.5
    # FiO2 < 0.5: >70 0, 61-70 1, 55-60 3, <55 4 (70 itself scores 1: the bound is just above)
    "pao2": (((math.nextafter(70.0, math.inf), 0), (61, 1), (55, 3)), 4),
    "ph": (((7.7, 4), (7.6, 3), (7.5, 1), (7.33, 0), (7.25, 2), (7.15, 3)), 4),
    "bicarbonate": (((52, 4), (41, 3), (32, 1), (22, 0), (18, 2), (15, 3)), 4),
    "sodium": (((180, 4), (160, 3), (155, 2), (150, 1), (130, 0), (120, 2), (111, 3)), 4),
    "potassium": (((7, 4), (6, 3), (5.5, 1), (3.5, 0), (3, 1), (2.5, 2)), 4),
    "creatinine": (((3.5, 4), (2, 3), (1.5, 2), (0.6, 0)), 2),
    "hematocrit": (((60, 4), (50, 2), (46, 1), (30, 0), (20, 2)), 4),
    "wbc": (((40, 4), (20, 2), (15, 1), (3, 0), (1, 2)), 4),
}
APACHE_AGE = (((75, 6), (65, 5), (55, 3), (45, 2)), 0)
# Approximate hospital death rate by score band, non-operative / post-operative (Knaus 1985, as
# tabulated by MDCalc).
_APACHE_MORTALITY = (
    (5, "4% / 1%"),
    (10, "8% / 3%"),
    (15, "15% / 7%"),
    (20, "25% / 12%"),
    (25, "40% / 30%"),
    (30, "55% / 35%"),
    (35, "73% / 73%"),
)


@calculator(
    "apache_ii",
    title="APACHE II severity of disease score",
    unit="points",
    citation="Knaus WA, Draper EA, Wagner DP, Zimmerman JE. APACHE II: a severity of disease "
    "classification system. Crit Care Med 1985;13:818-829 (Figure 1: acute physiology, age "
    "and chronic health points; death rates by score band, as tabulated by MDCalc).",
)
def apache_ii(x: ApacheInputs) -> Outcome:
    """APACHE II = acute physiology (12 variables, worst in 24 h) + age points + chronic health
    points (0-71)."""
    map_ = x.mean_arterial_pressure
    if map_ is None:
        assert x.systolic is not None and x.diastolic is not None  # checked by the inputs
        map_ = x.diastolic + (x.systolic - x.diastolic) / 3
    values: dict[str, float] = {
        "temperature": x.temperature,
        "mean_arterial_pressure": map_,
        "heart_rate": x.heart_rate,
        "respiratory_rate": x.respiratory_rate,
        "sodium": x.sodium,
        "potassium": x.potassium,
        "creatinine": x.creatinine,
        "hematocrit": x.hematocrit,
        "wbc": x.wbc,
    }
    if x.fio2 >= 50:
        gradient = x.a_a_gradient
        if gradient is None:
            assert x.paco2 is not None  # checked by the inputs
            gradient = x.fio2 / 100 * (760 - 47) - x.paco2 / 0.8 - x.pao2
        values["a_a_gradient"] = gradient
    else:
        values["pao2"] = x.pao2
    if x.ph is not None:
        values["ph"] = x.ph
    else:
        assert x.bicarbonate is not None  # checked by the inputs
        values["bicarbonate"] = x.bicarbonate
    points = {k: step(v, *APACHE_TABLES[k]) for k, v in values.items()}
    if x.acute_renal_failure:
        points["creatinine"] *= 2
    points["gcs"] = 15 - x.gcs
    aps = sum(points.values())
    age_points = step(x.age, *APACHE_AGE)
    chronic = 0
    if x.severe_organ_insufficiency_or_immunocompromised:
        chronic = 2 if x.admission == "elective_postoperative" else 5
    score = aps + age_points + chronic
    mortality = next((m for upper, m in _APACHE_MORTALITY if score < upper), "85% / 88%")
    return Outcome(
        score,
        f"approximate hospital mortality {mortality} (non-operative / post-operative) in the "
        "derivation cohort; the paper's diagnosis weights refine it",
        {
            "acute_physiology_points": points,
            "acute_physiology_score": aps,
            "age_points": age_points,
            "chronic_health_points": chronic,
            "mean_arterial_pressure": round(map_, 1),
            **(
                {"a_a_gradient": round(values["a_a_gradient"], 1)}
                if "a_a_gradient" in values
                else {}
            ),
        },
    )
