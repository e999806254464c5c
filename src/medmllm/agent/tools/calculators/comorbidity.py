"""Comorbidity burden: Charlson Comorbidity Index (age-adjusted)."""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

from pydantic import Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator, score_items, step

CharlsonCondition = Literal[
    "myocardial_infarction",
    "congestive_heart_failure",
    "peripheral_vascular_disease",
    "cerebrovascular_disease",
    "dementia",
    "chronic_pulmonary_disease",
    "connective_tissue_disease",
    "peptic_ulcer_disease",
    "mild_liver_disease",
    "diabetes_uncomplicated",
    "hemiplegia",
    "moderate_severe_renal_disease",
    "diabetes_end_organ_damage",
    "solid_tumor_localized",
    "leukemia",
    "lymphoma",
    "moderate_severe_liver_disease",
    "metastatic_solid_tumor",
    "aids",
]

# Charlson 1987, Table 3: weight of each condition.
CHARLSON_POINTS: dict[str, int] = {
    "myocardial_infarction": 1,
    "congestive_heart_failure": 1,
    "peripheral_vascular_disease": 1,
    "cerebrovascular_disease": 1,
    "dementia": 1,
    "chronic_pulmonary_disease": 1,
    "connective_tissue_disease": 1,
    "peptic_ulcer_disease": 1,
    "mild_liver_disease": 1,
    "diabetes_uncomplicated": 1,
    "hemiplegia": 2,
    "moderate_severe_renal_disease": 2,
    "diabetes_end_organ_damage": 2,
    "solid_tumor_localized": 2,
    "leukemia": 2,
    "lymphoma": 2,
    "moderate_severe_liver_disease": 3,
    "metastatic_solid_tumor": 6,
    "aids": 6,
}
# Grades of one condition: only the most severe counts.
CHARLSON_ALTERNATIVES = (
    ("mild_liver_disease", "moderate_severe_liver_disease"),
    ("diabetes_uncomplicated", "diabetes_end_organ_damage"),
    ("solid_tumor_localized", "metastatic_solid_tumor"),
)
# Charlson 1994 age adjustment: one point per decade from 50, at most 4 (as MDCalc).
CHARLSON_AGE = ((80, 4), (70, 3), (60, 2), (50, 1))
if set(CHARLSON_POINTS) != set(get_args(CharlsonCondition)):  # pragma: no cover - import guard
    raise AssertionError("CHARLSON_POINTS and CharlsonCondition must list the same conditions")


class CharlsonInputs(Inputs):
    age: Annotated[float, Q("age", 0, 120, "Age (50-59: 1, 60-69: 2, 70-79: 3, >=80: 4 points)")]
    conditions: list[CharlsonCondition] = Field(
        default_factory=list, description="Conditions present (Charlson 1987 definitions)."
    )


@calculator(
    "charlson",
    title="Charlson Comorbidity Index (age-adjusted)",
    unit="points",
    citation="Charlson ME, Pompei P, Ales KL, MacKenzie CR. A new method of classifying "
    "prognostic comorbidity in longitudinal studies: development and validation. J Chronic Dis "
    "1987;40:373-383; age points: Charlson M, Szatrowski TP, Peterson J, Gold J. Validation of "
    "a combined comorbidity index. J Clin Epidemiol 1994;47:1245-1251; 10-year survival "
    "0.983^exp(0.9 x CCI) as given by MDCalc.",
)
def charlson(x: CharlsonInputs) -> Outcome:
    """Charlson Comorbidity Index: condition weights 1/2/3/6 plus age points (a decade from 50,
    max 4); the most severe grade of liver disease, diabetes or tumour counts."""
    comorbidity, counted, warnings = score_items(
        x.conditions, CHARLSON_POINTS, CHARLSON_ALTERNATIVES
    )
    age_points = step(x.age, CHARLSON_AGE, below=0)
    score = comorbidity + age_points
    survival = 100 * 0.983 ** math.exp(0.9 * score)
    return Outcome(
        score,
        f"estimated 10-year survival {survival:.0f}%",
        {
            "comorbidity_points": comorbidity,
            "age_points": age_points,
            "counted": counted,
            "ten_year_survival_percent": round(survival, 1),
        },
        warnings,
    )
