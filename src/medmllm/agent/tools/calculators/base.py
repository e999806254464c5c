"""What every clinical calculator is: validated inputs with units, a formula, a citation.

A calculator is a plain function over a pydantic input model, registered with
:func:`calculator`. Quantities are declared with :func:`Q` (quantity kind, valid range in the
canonical unit); a quantity may be given as a number in the canonical unit, as ``"158 lb"`` or as
``{"value": 158, "unit": "lb"}``, is converted, then checked against its range. Every error names
the field, the value, the accepted units and the valid range.

Example:
    >>> from medmllm.agent.tools.calculators import CALCULATORS
    >>> CALCULATORS.get("bmi")(weight="70 kg", height="175 cm").value
    22.86
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
)
from pydantic_core import core_schema

from medmllm.agent.tools.units import KINDS, parse_quantity, to_canonical
from medmllm.errors import ToolInputError
from medmllm.registry import Registry
from medmllm.validation import missing_keys, validation_message


class Inputs(BaseModel):
    """Base of calculator input models: strict keys, documented fields."""

    model_config = ConfigDict(extra="forbid")


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Q:
    """A quantity field's metadata: ``Annotated[float, Q("mass", 0.5, 400, "Body weight")]``.

    ``kind`` names a row of the unit table; [lo, hi] is the valid range in its canonical unit.
    Inputs are converted to the canonical unit, then range-checked; ``None`` passes through
    (for optional fields declared ``float | None``).
    """

    kind: str
    lo: float
    hi: float
    description: str

    @property
    def unit(self) -> str:
        return KINDS[self.kind].canonical

    @property
    def other_units(self) -> list[str]:
        return [u for u in KINDS[self.kind].factors if u != self.unit]

    @property
    def range_text(self) -> str:
        return f"{_fmt(self.lo)}–{_fmt(self.hi)} {self.unit}".strip()

    @property
    def full_description(self) -> str:
        others = self.other_units
        accepted = f"; also accepts {', '.join(others)} as '<number> <unit>'" if others else ""
        return f"{self.description} [{self.unit or 'no unit'}, valid {self.range_text}{accepted}]"

    def parse(self, raw: object) -> float | None:
        if raw is None:
            return None
        value, given_unit = parse_quantity(raw, self.kind)
        canonical = to_canonical(value, given_unit, self.kind)
        if not self.lo <= canonical <= self.hi:
            unit = self.unit
            shown = f"{_fmt(value)} {given_unit or unit}".strip()
            conv = f" (= {canonical:.4g} {unit})" if given_unit and given_unit != unit else ""
            others = self.other_units
            hint = f"; if it was measured in {', '.join(others)}, give the unit" if others else ""
            raise ValueError(f"{shown}{conv} is outside the valid range {self.range_text}{hint}")
        return canonical

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.parse, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        types: list[dict[str, Any]] = [{"type": "number"}]
        if self.other_units:
            types.append({"type": "string"})
        return {"anyOf": types, "description": self.full_description}


class CalcResult(BaseModel):
    """A calculator answer: value, unit, its reading, and where the formula comes from."""

    calculator: str = Field(description="Registered calculator name.")
    title: str = Field(description="Human-readable calculator name.")
    value: float | int | str = Field(description="The main result (number, score or ISO date).")
    unit: str = Field(description="Unit of the value ('points' for scores, '' for dates).")
    interpretation: str = Field(description="What the value means, per the cited source.")
    details: dict[str, Any] = Field(default_factory=dict, description="Intermediate values.")
    inputs: dict[str, Any] = Field(description="Inputs after unit conversion (canonical units).")
    citation: str = Field(description="Primary publication of the formula or score.")
    warnings: list[str] = Field(default_factory=list, description="Caveats on use.")


@dataclass
class Outcome:
    """What a calculator function returns; the wrapper adds name, inputs and citation."""

    value: float | int | str
    interpretation: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _problems(exc: ValidationError) -> str:
    """Pydantic errors as ``field: reason`` (the one formatter, medmllm.validation)."""
    return validation_message(exc, limit=20, quote_keys=False).replace(
        "is not an allowed key", "is not an input of this calculator"
    )


class Calculator:
    """A registered calculator: call it with keyword inputs or a dict; get a :class:`CalcResult`."""

    def __init__(
        self,
        name: str,
        fn: Callable[[Any], Outcome],
        inputs: type[Inputs],
        *,
        title: str,
        unit: str,
        citation: str,
        description: str,
    ) -> None:
        self.name = name
        self.fn = fn
        self.inputs = inputs
        self.title = title
        self.unit = unit
        self.citation = citation
        self.description = description

    def validate(self, arguments: dict[str, Any]) -> Inputs:
        """Parse and range-check inputs; ToolInputError naming each bad field otherwise."""
        try:
            return self.inputs.model_validate(arguments)
        except ValidationError as exc:
            # A conditionally required input says why (fields.missing): "urea (or give bun)".
            missing = missing_keys(exc, with_why=True)
            hint = (
                f"ask the user for {', '.join(missing)}; never guess clinical values"
                if missing
                else "correct the value or give its unit"
            )
            raise ToolInputError(f"{self.name}: {_problems(exc)}", hint=hint) from None

    def __call__(self, arguments: dict[str, Any] | None = None, /, **kwargs: Any) -> CalcResult:
        parsed = self.validate({**(arguments or {}), **kwargs})
        out = self.fn(parsed)
        return CalcResult(
            calculator=self.name,
            title=self.title,
            value=out.value,
            unit=self.unit,
            interpretation=out.interpretation,
            details=out.details,
            inputs=parsed.model_dump(mode="json"),
            citation=self.citation,
            warnings=out.warnings,
        )

    def parameters_schema(self) -> dict[str, Any]:
        """JSON schema of the inputs (for tool calling and constrained decoding)."""
        schema = self.inputs.model_json_schema()
        schema.pop("title", None)
        schema["additionalProperties"] = False
        return schema

    def __repr__(self) -> str:
        return f"Calculator({self.name!r})"


CALCULATORS: Registry[Calculator] = Registry("calculator")


def calculator(
    name: str, *, title: str, unit: str, citation: str
) -> Callable[[Callable[[Any], Outcome]], Calculator]:
    """Register a function ``fn(inputs: SomeInputs) -> Outcome`` as a calculator.

    The input model is read from the function's annotation; its docstring's first paragraph is
    the description shown to the agent.
    """

    def wrap(fn: Callable[[Any], Outcome]) -> Calculator:
        hints = get_type_hints(fn)
        model = next(v for k, v in hints.items() if k != "return")
        doc = (fn.__doc__ or title).strip().split("\n\n")[0].replace("\n", " ")
        calc = Calculator(
            name, fn, model, title=title, unit=unit, citation=citation, description=doc
        )
        CALCULATORS.register(name, calc)
        return calc

    return wrap


def band(value: float, bands: list[tuple[float, str]], last: str) -> str:
    """The label of the first band whose upper bound (exclusive) exceeds ``value``."""
    for upper, label in bands:
        if value < upper:
            return label
    return last


def step(value: float, table: Sequence[tuple[float, int]], below: int) -> int:
    """Points of the first row (highest lower bound first) whose inclusive bound ``value`` reaches.

    ``below`` is the points under every bound, so a two-sided published table reads as written:
    ``step(t, [(41, 4), (39, 3), (38.5, 1), (36, 0), (34, 1), (32, 2), (30, 3)], below=4)``.
    """
    for lower, pts in table:
        if value >= lower:
            return pts
    return below


def score_items(
    chosen: Iterable[str],
    points: Mapping[str, int],
    alternatives: Sequence[Sequence[str]] = (),
) -> tuple[int, list[str], list[str]]:
    """Sum an explicit item -> points table over the chosen items.

    Within each group of ``alternatives`` (grades of one condition, one operation) only the
    highest-scoring chosen item counts, as on the published forms. Returns the score, the items
    counted, and a warning per group where more than one was chosen.
    """
    picked = sorted(set(chosen))
    dropped: set[str] = set()
    warnings = []
    for group in alternatives:
        hits = [item for item in picked if item in group]
        if len(hits) > 1:
            kept = max(hits, key=lambda item: points[item])
            dropped.update(h for h in hits if h != kept)
            warnings.append(
                f"{', '.join(hits)} are alternatives: only the highest, {kept}, is counted"
            )
    counted = [item for item in picked if item not in dropped]
    return sum(points[item] for item in counted), counted, warnings
