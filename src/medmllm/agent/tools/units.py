"""Clinical unit conversion: one table per measured quantity, shared by calculators and the agent.

Laboratory conversions between conventional (US) and SI units depend on the analyte (molar
mass), so each *quantity* (``creatinine``, ``glucose``, ``mass`` …) has its own table of factors
to a canonical unit. Factors are the standard ones (e.g. creatinine 88.4 µmol/L per mg/dL,
glucose 18.016 mg/dL per mmol/L; Young DS, "Implementation of SI units for clinical laboratory
data", Ann Intern Med 1987;106:114-129).

Example:
    >>> convert(1.0, "mg/dL", "umol/L", "creatinine")
    88.4
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medmllm.errors import ToolInputError


@dataclass(frozen=True)
class QuantityKind:
    """A measured quantity: its canonical unit and each accepted unit's factor to it.

    ``value_in_canonical = value * factor`` (temperature is affine and handled separately).
    """

    name: str
    canonical: str
    factors: dict[str, float]


def _kind(name: str, canonical: str, **factors: float) -> QuantityKind:
    table = {canonical: 1.0}
    table.update({k.replace("_per_", "/"): v for k, v in factors.items()})
    return QuantityKind(name, canonical, table)


# Canonical units are the conventional (US) units in which most scores were published.
KINDS: dict[str, QuantityKind] = {
    k.name: k
    for k in (
        QuantityKind("mass", "kg", {"kg": 1.0, "g": 1e-3, "lb": 0.45359237, "oz": 0.028349523125}),
        QuantityKind("length", "cm", {"cm": 1.0, "m": 100.0, "mm": 0.1, "in": 2.54, "ft": 30.48}),
        QuantityKind(
            "creatinine", "mg/dL", {"mg/dL": 1.0, "umol/L": 1 / 88.4, "mmol/L": 1000 / 88.4}
        ),
        QuantityKind("glucose", "mg/dL", {"mg/dL": 1.0, "mmol/L": 18.016}),
        QuantityKind("bun", "mg/dL", {"mg/dL": 1.0, "mmol/L": 2.801}),  # urea nitrogen
        QuantityKind("urea", "mmol/L", {"mmol/L": 1.0, "mg/dL": 1 / 2.801}),  # as BUN mg/dL
        QuantityKind("calcium", "mg/dL", {"mg/dL": 1.0, "mmol/L": 4.008, "mEq/L": 2.004}),
        QuantityKind("albumin", "g/dL", {"g/dL": 1.0, "g/L": 0.1}),
        QuantityKind("bilirubin", "mg/dL", {"mg/dL": 1.0, "umol/L": 1 / 17.104}),
        QuantityKind("cholesterol", "mg/dL", {"mg/dL": 1.0, "mmol/L": 38.67}),
        QuantityKind("insulin", "uU/mL", {"uU/mL": 1.0, "mU/L": 1.0, "pmol/L": 1 / 6.0}),
        QuantityKind("electrolyte", "mmol/L", {"mmol/L": 1.0, "mEq/L": 1.0}),  # monovalent ions
        QuantityKind("ethanol", "mg/dL", {"mg/dL": 1.0, "mmol/L": 4.607}),
        QuantityKind("platelets", "10^9/L", {"10^9/L": 1.0, "10^3/uL": 1.0, "/uL": 1e-3}),
        QuantityKind("pressure", "mmHg", {"mmHg": 1.0, "kPa": 7.50062}),
        QuantityKind("interval", "ms", {"ms": 1.0, "s": 1000.0}),
        QuantityKind("rate", "/min", {"/min": 1.0, "bpm": 1.0}),
        QuantityKind("age", "years", {"years": 1.0, "y": 1.0, "months": 1 / 12}),
        QuantityKind("percent", "%", {"%": 1.0, "fraction": 100.0}),
        QuantityKind("enzyme", "U/L", {"U/L": 1.0, "IU/L": 1.0, "ukat/L": 60.0}),
        QuantityKind("temperature", "C", {"C": 1.0, "F": 1.0}),  # affine, see to_canonical
        QuantityKind("unitless", "", {"": 1.0}),
        QuantityKind("dose", "mg", {"mg": 1.0, "g": 1000.0, "mcg": 1e-3, "ug": 1e-3}),
        QuantityKind("volume_rate", "mL/day", {"mL/day": 1.0, "L/day": 1000.0, "mL/h": 24.0}),
    )
}

# Spellings people and models write, mapped to the table's keys.
_ALIASES = {
    "µmol/l": "umol/L",
    "umol/l": "umol/L",
    "μmol/l": "umol/L",
    "micromol/l": "umol/L",
    "mg/dl": "mg/dL",
    "g/dl": "g/dL",
    "g/l": "g/L",
    "mmol/l": "mmol/L",
    "meq/l": "mEq/L",
    "kilograms": "kg",
    "kilogram": "kg",
    "kgs": "kg",
    "grams": "g",
    "gram": "g",
    "pounds": "lb",
    "pound": "lb",
    "lbs": "lb",
    "ounces": "oz",
    "centimeters": "cm",
    "centimetres": "cm",
    "meters": "m",
    "metres": "m",
    "millimeters": "mm",
    "inches": "in",
    "inch": "in",
    '"': "in",
    "feet": "ft",
    "foot": "ft",
    "'": "ft",
    "uu/ml": "uU/mL",
    "µu/ml": "uU/mL",
    "μu/ml": "uU/mL",
    "mu/l": "mU/L",
    "pmol/l": "pmol/L",
    "x10^9/l": "10^9/L",
    "10^9/l": "10^9/L",
    "10^3/ul": "10^3/uL",
    "x10^3/ul": "10^3/uL",
    "k/ul": "10^3/uL",
    "/ul": "/uL",
    "/mm3": "/uL",
    "mm hg": "mmHg",
    "mmhg": "mmHg",
    "kpa": "kPa",
    "msec": "ms",
    "milliseconds": "ms",
    "sec": "s",
    "seconds": "s",
    "beats/min": "/min",
    "bpm": "bpm",
    "/min": "/min",
    "per minute": "/min",
    "breaths/min": "/min",
    "year": "years",
    "yr": "years",
    "yrs": "years",
    "years old": "years",
    "month": "months",
    "u/l": "U/L",
    "iu/l": "IU/L",
    "°c": "C",
    "c": "C",
    "celsius": "C",
    "°f": "F",
    "f": "F",
    "fahrenheit": "F",
    "mcg": "mcg",
    "µg": "mcg",
    "ug": "mcg",
    "ml/day": "mL/day",
    "ml/d": "mL/day",
    "l/day": "L/day",
    "ml/h": "mL/h",
    "ml/hr": "mL/h",
    "percent": "%",
}

_NUMBER_UNIT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def canonical_unit_name(kind: QuantityKind, unit: str) -> str:
    """The table key for ``unit`` (case and spelling tolerant) or a ToolInputError."""
    raw = unit.strip()
    if raw in kind.factors:
        return raw
    alias = _ALIASES.get(raw.lower())
    if alias in kind.factors:
        return alias  # type: ignore[return-value]
    for key in kind.factors:
        if key.lower() == raw.lower():
            return key
    accepted = ", ".join(k for k in kind.factors if k) or "(a plain number)"
    raise ToolInputError(
        f"unit {unit!r} is not a unit of {kind.name}; accepted: {accepted}",
        hint=f"give the value in one of: {accepted}",
    )


def to_canonical(value: float, unit: str | None, kind: str) -> float:
    """Convert ``value`` in ``unit`` (None = canonical) to the canonical unit of ``kind``."""
    qk = KINDS[kind]
    if unit is None or unit.strip() == "":
        return float(value)
    key = canonical_unit_name(qk, unit)
    if qk.name == "temperature":
        return (value - 32.0) * 5.0 / 9.0 if key == "F" else float(value)
    return float(value) * qk.factors[key]


def from_canonical(value: float, unit: str, kind: str) -> float:
    """Convert a canonical-unit value of ``kind`` into ``unit``."""
    qk = KINDS[kind]
    key = canonical_unit_name(qk, unit)
    if qk.name == "temperature":
        return value * 9.0 / 5.0 + 32.0 if key == "F" else float(value)
    return float(value) / qk.factors[key]


def convert(value: float, from_unit: str, to_unit: str, kind: str) -> float:
    """Convert between two units of the same quantity, rounded to 6 significant figures."""
    if kind not in KINDS:
        raise ToolInputError(
            f"unknown quantity {kind!r}; known: {', '.join(sorted(KINDS))}",
            hint="pick the analyte or dimension the value measures",
        )
    out = from_canonical(to_canonical(value, from_unit, kind), to_unit, kind)
    return float(f"{out:.6g}")


def parse_quantity(raw: object, kind: str) -> tuple[float, str | None]:
    """Read ``72``, ``"72 kg"``, ``"158.7 lb"`` or ``{"value": 72, "unit": "kg"}``."""
    if isinstance(raw, bool):
        raise ToolInputError(f"expected a number for {kind}, got {raw!r}")
    if isinstance(raw, int | float):
        return float(raw), None
    if isinstance(raw, dict):
        if "value" not in raw:
            raise ToolInputError(f"a quantity object needs 'value' (and 'unit'), got {raw!r}")
        value, unit = raw["value"], raw.get("unit")
        if isinstance(value, str):
            value, inner = parse_quantity(value, kind)
            unit = unit or inner
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ToolInputError(f"quantity value must be a number, got {value!r}")
        return float(value), (str(unit) if unit is not None else None)
    if isinstance(raw, str):
        m = _NUMBER_UNIT.match(raw.replace(",", ""))
        if not m:
            raise ToolInputError(
                f"could not read a number from {raw!r} ({kind})",
                hint="write a number, optionally followed by its unit, e.g. '1.2 mg/dL'",
            )
        return float(m.group(1)), (m.group(2) or None)
    raise ToolInputError(f"expected a number for {kind}, got {type(raw).__name__} {raw!r}")
