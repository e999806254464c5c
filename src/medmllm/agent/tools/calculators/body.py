"""Body size and haemodynamics: BMI, BSA (Mosteller), ideal / adjusted and target body weight,
MAP, maintenance fluids (4-2-1)."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field, model_validator

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, band, calculator
from medmllm.agent.tools.calculators.fields import Sex


def devine_ideal_weight(sex: Sex, height_cm: float) -> float:
    """Devine ideal body weight (kg): 50 (men) / 45.5 (women) + 2.3 kg per inch over 5 ft."""
    return (50.0 if sex == "male" else 45.5) + 2.3 * (height_cm / 2.54 - 60)


def adjusted_weight(ideal: float, actual: float) -> float:
    """Adjusted body weight (kg) = ideal + 0.4 x (actual - ideal) (Traynor 1995)."""
    return ideal + 0.4 * (actual - ideal)


def bmi_value(weight_kg: float, height_cm: float) -> float:
    """Body mass index, kg/m^2."""
    return weight_kg / (height_cm / 100) ** 2


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
    value = bmi_value(x.weight, x.height)
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
    ibw = devine_ideal_weight(x.sex, x.height)
    details: dict[str, float | None] = {"ideal_body_weight_kg": round(ibw, 1)}
    warnings = []
    if inches_over < 0:
        warnings.append("Devine's formula was derived for heights of 5 ft (152.4 cm) or more")
    text = "ideal body weight"
    if x.weight is not None:
        abw = adjusted_weight(ibw, x.weight)
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


class TargetWeightInputs(Inputs):
    target_bmi: float = Field(ge=10, le=60, description="Target body mass index, kg/m2.")
    height: Annotated[float, Q("length", 30, 250, "Body height")]


@calculator(
    "target_weight",
    title="Target weight for a target BMI",
    unit="kg",
    citation="WHO. Obesity: preventing and managing the global epidemic. WHO Technical Report "
    "Series 894, 2000 (BMI = weight / height^2, so weight = target BMI x height^2); as MDCalc "
    "'Target Weight'.",
)
def target_weight(x: TargetWeightInputs) -> Outcome:
    """Weight (kg) at a target BMI = target BMI x height (m)^2."""
    value = x.target_bmi * (x.height / 100) ** 2
    return Outcome(round(value, 1), f"body weight at a BMI of {x.target_bmi:g} kg/m2")


class MaintenanceFluidInputs(Inputs):
    weight: Annotated[float, Q("mass", 0.5, 400, "Body weight")]


# Holliday-Segar per kg band: (band width kg, mL/kg/h of the 4-2-1 rule, mL/kg/day of the paper).
_HOLLIDAY_SEGAR = ((10.0, 4.0, 100.0), (10.0, 2.0, 50.0), (math.inf, 1.0, 20.0))


@calculator(
    "maintenance_fluids",
    title="Maintenance fluids (Holliday-Segar, 4-2-1 rule)",
    unit="mL/h",
    citation="Holliday MA, Segar WE. The maintenance need for water in parenteral fluid therapy. "
    "Pediatrics 1957;19:823-832 (100/50/20 mL/kg/day for the first 10 kg, the next 10 kg and "
    "each kg above 20; its hourly form is the 4-2-1 rule).",
)
def maintenance_fluids(x: MaintenanceFluidInputs) -> Outcome:
    """Hourly maintenance fluid (4-2-1 rule): 4 mL/kg/h for the first 10 kg, 2 for the next 10,
    1 for each kg above 20."""
    left, per_hour, per_day = x.weight, 0.0, 0.0
    for span, hourly, daily in _HOLLIDAY_SEGAR:
        part = min(left, span)
        per_hour += part * hourly
        per_day += part * daily
        left -= part
    return Outcome(
        round(per_hour, 1),
        f"about {per_hour:.0f} mL/h of maintenance fluid (4-2-1 rule)",
        {"holliday_segar_ml_per_day": round(per_day)},
        [
            "maintenance needs only: add deficits and ongoing losses; for adults NICE CG174 "
            "advises 25-30 mL/kg/day"
        ],
    )
