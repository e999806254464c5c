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


# Cell counts per volume: 1 x 10^9/L = 1 x 10^3/µL = 1,000 cells/µL (one table, two quantities).
_CELLS = {"10^9/L": 1.0, "10^3/uL": 1.0, "/uL": 1e-3, "/L": 1e-9}

# Urea (CH4N2O, 60.06 g/mol) carries two nitrogens (2 x 14.007 = 28.014 g/mol): 1 mmol/L of urea
# = 6.006 mg/dL of urea = 2.801 mg/dL of urea nitrogen (BUN); urea mg/dL / 2.144 = BUN mg/dL.
_UREA_MG_PER_MMOL = 6.006
_BUN_MG_PER_MMOL = 2.801

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
        # Blood urea nitrogen; "mg/dL urea" is urea itself, converted to its nitrogen.
        QuantityKind(
            "bun",
            "mg/dL",
            {
                "mg/dL": 1.0,
                "mmol/L": _BUN_MG_PER_MMOL,
                "mg/dL urea": _BUN_MG_PER_MMOL / _UREA_MG_PER_MMOL,
            },
        ),
        # Urea: mmol/L (= BUN mmol/L); "mg/dL" is urea mg/dL, "mg/dL BUN" a urea nitrogen.
        QuantityKind(
            "urea",
            "mmol/L",
            {
                "mmol/L": 1.0,
                "mg/dL": 1 / _UREA_MG_PER_MMOL,
                "mg/dL BUN": 1 / _BUN_MG_PER_MMOL,
            },
        ),
        QuantityKind("calcium", "mg/dL", {"mg/dL": 1.0, "mmol/L": 4.008, "mEq/L": 2.004}),
        QuantityKind("albumin", "g/dL", {"g/dL": 1.0, "g/L": 0.1}),
        QuantityKind("hemoglobin", "g/dL", {"g/dL": 1.0, "g/L": 0.1, "mmol/L": 1.6114}),
        QuantityKind("bilirubin", "mg/dL", {"mg/dL": 1.0, "umol/L": 1 / 17.104}),
        QuantityKind("cholesterol", "mg/dL", {"mg/dL": 1.0, "mmol/L": 38.67}),
        QuantityKind("triglycerides", "mg/dL", {"mg/dL": 1.0, "mmol/L": 88.57}),
        QuantityKind("insulin", "uU/mL", {"uU/mL": 1.0, "mU/L": 1.0, "pmol/L": 1 / 6.0}),
        QuantityKind("electrolyte", "mmol/L", {"mmol/L": 1.0, "mEq/L": 1.0}),  # monovalent ions
        QuantityKind("ethanol", "mg/dL", {"mg/dL": 1.0, "mmol/L": 4.607}),
        QuantityKind("platelets", "10^9/L", dict(_CELLS)),
        QuantityKind("leukocytes", "10^9/L", dict(_CELLS)),
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


def _spelling(unit: str) -> str:
    """A unit as the alias table spells it: lower case, µ (U+00B5) and μ (U+03BC) as ``u``,
    ``×``/superscripts as ASCII, no spaces around ``/`` and ``^``."""
    s = unit.strip().lower().replace("\u00b5", "u").replace("\u03bc", "u")
    s = s.replace("\u00d7", "x").replace("\u2079", "^9").replace("\u00b3", "^3")
    s = s.replace("\u00ba", "\u00b0").replace("\u2212", "-")  # º (ordinal) as °; minus sign
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r"\s*([/^°*])\s*", r"\1", s)
    s = re.sub(r"\bx ?10", "x10", s)
    return s.removesuffix(".")


# Spellings people and models write (as :func:`_spelling` leaves them), mapped to table keys.
_ALIASES = {
    "umol/l": "umol/L",
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
    # insulin: µU/mL = µIU/mL = mU/L = mIU/L
    "uu/ml": "uU/mL",
    "uiu/ml": "uU/mL",
    "microunits/ml": "uU/mL",
    "mu/l": "mU/L",
    "miu/l": "mU/L",
    "pmol/l": "pmol/L",
    # cell counts (platelets, leukocytes)
    "x10^9/l": "10^9/L",
    "10^9/l": "10^9/L",
    "10e9/l": "10^9/L",
    "x10e9/l": "10^9/L",
    "10*9/l": "10^9/L",
    "x10*9/l": "10^9/L",
    "10^9 cells/l": "10^9/L",
    "10^3/ul": "10^3/uL",
    "x10^3/ul": "10^3/uL",
    "10e3/ul": "10^3/uL",
    "x10e3/ul": "10^3/uL",
    "10^3 cells/ul": "10^3/uL",
    "x10^3 cells/ul": "10^3/uL",
    "10^3/mcl": "10^3/uL",
    "x10^3/mcl": "10^3/uL",
    "10^3/mm^3": "10^3/uL",
    "x10^3/mm^3": "10^3/uL",
    "10^3/mm3": "10^3/uL",
    "x10^3/mm3": "10^3/uL",
    "k/ul": "10^3/uL",
    "k/mcl": "10^3/uL",
    "thou/ul": "10^3/uL",
    "/ul": "/uL",
    "cells/ul": "/uL",
    "/mcl": "/uL",
    "cells/mcl": "/uL",
    "/mm3": "/uL",
    "/mm^3": "/uL",
    "cells/mm3": "/uL",
    "cells/mm^3": "/uL",
    "per ul": "/uL",
    "per microliter": "/uL",
    "/microliter": "/uL",
    "cells/microliter": "/uL",
    "/l": "/L",
    "cells/l": "/L",
    "per l": "/L",
    # urea and urea nitrogen
    "mg/dl bun": "mg/dL BUN",
    "mg/dl (bun)": "mg/dL BUN",
    "mg/dl as bun": "mg/dL BUN",
    "mg/dl of bun": "mg/dL BUN",
    "mg/dl urea nitrogen": "mg/dL BUN",
    "mg/dl urea": "mg/dL urea",
    "mg/dl (urea)": "mg/dL urea",
    "mg/dl of urea": "mg/dL urea",
    "mg/dl as urea": "mg/dL urea",
    "mm hg": "mmHg",
    "mmhg": "mmHg",
    "kpa": "kPa",
    "msec": "ms",
    "milliseconds": "ms",
    "sec": "s",
    "seconds": "s",
    # rates
    "bpm": "bpm",
    "/min": "/min",
    "per min": "/min",
    "per minute": "/min",
    "/minute": "/min",
    "1/min": "/min",
    "min^-1": "/min",
    "min-1": "/min",
    "beats/min": "/min",
    "beats/minute": "/min",
    "beats per min": "/min",
    "beats per minute": "/min",
    "beat/min": "/min",
    "breaths/min": "/min",
    "breaths/minute": "/min",
    "breaths per min": "/min",
    "breaths per minute": "/min",
    "breath/min": "/min",
    "respirations/min": "/min",
    "respirations per minute": "/min",
    "year": "years",
    "yr": "years",
    "yrs": "years",
    "years old": "years",
    "month": "months",
    "u/l": "U/L",
    "iu/l": "IU/L",
    # temperature
    "°c": "C",
    "c": "C",
    "celsius": "C",
    "centigrade": "C",
    "deg c": "C",
    "degc": "C",
    "degree c": "C",
    "degrees c": "C",
    "degree celsius": "C",
    "degrees celsius": "C",
    "degrees centigrade": "C",
    "°f": "F",
    "f": "F",
    "fahrenheit": "F",
    "deg f": "F",
    "degf": "F",
    "degree f": "F",
    "degrees f": "F",
    "degree fahrenheit": "F",
    "degrees fahrenheit": "F",
    "mcg": "mcg",
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
    spelled = _spelling(raw)
    alias = _ALIASES.get(spelled)
    if alias in kind.factors:
        return alias  # type: ignore[return-value]
    for key in kind.factors:
        if _spelling(key) == spelled:
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
