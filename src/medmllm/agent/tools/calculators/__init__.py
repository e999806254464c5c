"""Clinical calculators: one registry (:data:`CALCULATORS`), each with units, ranges and a citation.

Importing this package registers every built-in calculator.

Example:
    >>> from medmllm.agent.tools.calculators import CALCULATORS
    >>> CALCULATORS.get("cockcroft_gault")(age=60, weight="72 kg", sex="male", creatinine=1.0).value
    80.0
"""

from medmllm.agent.tools.calculators import (  # noqa: F401 - imported to register
    acute,
    body,
    cardiac,
    chemistry,
    comorbidity,
    conversions,
    critical,
    gastro,
    hepatic,
    neuro,
    obstetric,
    renal,
    vte,
)
from medmllm.agent.tools.calculators.base import (
    CALCULATORS,
    CalcResult,
    Calculator,
    Outcome,
    calculator,
)

__all__ = ["CALCULATORS", "CalcResult", "Calculator", "Outcome", "calculator"]
