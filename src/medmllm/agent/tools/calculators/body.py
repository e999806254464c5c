"""Body size and haemodynamics: BMI, BSA (Mosteller), ideal / adjusted body weight, MAP."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, band, calculator

Sex = Literal["male", "female"]


class BMIInputs(Inputs):
    weight: Annotated[float, Q("mass", 0.5, 400, "Body weight")]
    height: Annotated[float, Q("length", 30, 250, "Body height")]


@calculator(
    "bmi",
    title="Body mass index",
    unit="kg/m2",
    citation="WHO. Obesity: preventing and managing the global epidemic. "
    "WHO Technical Report Series 894, 2000 (BMI = weight / height^2; adult categories).",
)
def bmi(x: BMIInputs) -> Outcome:
    """Body mass index = weight (kg) / height (m)^2, with WHO adult categories."""
    value = x.weight / (x.height / 100) ** 2
    label = band(
        value,
        [
            (18.5, "underweight"),
            (25, "normal weight"),
            (30, "overweight"),
            (35, "obesity class I"),
            (40, "obesity class II"),
        ],
        "obesity class III",
    )
    return Outcome(round(value, 2), f"{label} (WHO adult categories)")


@calculator(
    "bsa_mosteller",
    title="Body surface area (Mosteller)",
    unit="m2",
    citation="Mosteller RD. Simplified calculation of body-surface area. "
    "N Engl J Med 1987;317(17):1098.",
)
def bsa_mosteller(x: BMIInputs) -> Outcome:
    """Body surface area (m^2) = sqrt(height (cm) x weight (kg) / 3600) (Mosteller)."""
    value = math.sqrt(x.height * x.weight / 3600)
    return Outcome(round(value, 3), "body surface area for dosing")


class IBWInputs(Inputs):
    sex: Sex = Field(description="Sex at birth (the formula differs by sex).")
    height: Annotated[float, Q("length", 100, 250, "Body height")]
    weight: Annotated[
        float | None, Q("mass", 20, 400, "Actual body weight (for the adjusted weight)")
    ] = None


@calculator(
    "ideal_body_weight",
    title="Ideal and adjusted body weight (Devine)",
    unit="kg",
    citation="Devine BJ. Gentamicin therapy. Drug Intell Clin Pharm 1974;8:650-655 "
    "(IBW = 50 kg [men] / 45.5 kg [women] + 2.3 kg per inch over 5 ft); adjusted weight "
    "ABW = IBW + 0.4 x (actual - IBW) (Traynor AM et al., Antimicrob Agents Chemother "
    "1995;39:545-548).",
)
def ideal_body_weight(x: IBWInputs) -> Outcome:
    """Ideal body weight (Devine) from sex and height; adjusted body weight if weight is given."""
    inches_over = x.height / 2.54 - 60
    ibw = (50.0 if x.sex == "male" else 45.5) + 2.3 * inches_over
    details: dict[str, float | None] = {"ideal_body_weight_kg": round(ibw, 1)}
    warnings = []
    if inches_over < 0:
        warnings.append("Devine's formula was derived for heights of 5 ft (152.4 cm) or more")
    text = "ideal body weight"
    if x.weight is not None:
        abw = ibw + 0.4 * (x.weight - ibw)
        details["adjusted_body_weight_kg"] = round(abw, 1)
        details["percent_of_ideal"] = round(100 * x.weight / ibw, 1)
        text += f"; adjusted body weight {abw:.1f} kg"
    return Outcome(round(ibw, 1), text, details, warnings)


class MAPInputs(Inputs):
    systolic: Annotated[float, Q("pressure", 30, 300, "Systolic blood pressure")]
    diastolic: Annotated[float, Q("pressure", 10, 200, "Diastolic blood pressure")]

    @model_validator(mode="after")
    def _order(self) -> MAPInputs:
        if self.diastolic >= self.systolic:
            raise ValueError(
                f"diastolic {self.diastolic:g} mmHg must be below systolic {self.systolic:g} mmHg"
            )
        return self


@calculator(
    "mean_arterial_pressure",
    title="Mean arterial pressure",
    unit="mmHg",
    citation="MAP = DBP + (SBP - DBP)/3; e.g. Guyton & Hall, Textbook of Medical Physiology, "
    "14th ed., ch. 15; DeMers D, Wachs D. Physiology, Mean Arterial Pressure. StatPearls 2023.",
)
def mean_arterial_pressure(x: MAPInputs) -> Outcome:
    """Mean arterial pressure = diastolic + (systolic - diastolic) / 3."""
    value = x.diastolic + (x.systolic - x.diastolic) / 3
    text = "below 65 mmHg: organ hypoperfusion risk" if value < 65 else "at least 65 mmHg"
    return Outcome(round(value, 1), text)
