"""The unit-conversion tool over the shared clinical unit table."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medmllm.agent.tools.base import TOOLS, Tool
from medmllm.agent.tools.calculators.base import validation_message
from medmllm.agent.tools.units import KINDS, convert
from medmllm.errors import ToolInputError


class ConvertArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = Field(description="The number to convert.")
    from_unit: str = Field(description="Unit of the value, e.g. 'mg/dL', 'lb'.")
    to_unit: str = Field(description="Unit wanted, e.g. 'umol/L', 'kg'.")
    quantity: str = Field(
        description="What is measured (analyte conversions differ): " + ", ".join(sorted(KINDS))
    )


def _convert(arguments: dict[str, Any]) -> dict[str, Any]:
    try:
        args = ConvertArgs.model_validate(arguments)
    except ValidationError as exc:
        raise ToolInputError(f"convert_units: {validation_message(exc)}") from None
    out = convert(args.value, args.from_unit, args.to_unit, args.quantity)
    return {
        "value": out,
        "unit": args.to_unit,
        "text": f"{args.value:g} {args.from_unit} = {out:g} {args.to_unit} ({args.quantity})",
    }


_schema = ConvertArgs.model_json_schema()
_schema.pop("title", None)
TOOLS.register(
    "convert_units",
    Tool(
        "convert_units",
        "Convert a clinical value between units (lab SI/conventional, weight, height, "
        "temperature).",
        _schema,
        _convert,
        group="conversion",
    ),
)
