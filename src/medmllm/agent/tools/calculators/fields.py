"""Input fields several calculators share: sex, and urea given either as urea or as BUN.

Urea and blood urea nitrogen (BUN) are two reports of one analyte: urea mmol/L = BUN mmol/L,
but in mg/dL urea is 2.144 times BUN (60.06 vs 28.014 g/mol). A score published in urea mmol/L
(CURB-65, Glasgow-Blatchford) or in BUN mg/dL (PSI, osmolality) takes either, named as what it is,
so "urea 40 mg/dL" is never read as a BUN of 40.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from medmllm.agent.tools.calculators.base import Inputs, Q
from medmllm.agent.tools.units import from_canonical, to_canonical

Sex = Literal["male", "female"]

#: What a required-but-absent alternative says (the loop asks the user for ``<field>``).
MISSING = "missing"


def missing(why: str) -> PydanticCustomError:
    """A 'required value is missing' error for a conditionally required input, saying why.

    Typed ``missing`` like pydantic's own, so the calculator's hint asks the user for it.
    """
    return PydanticCustomError(MISSING, "required value is missing ({why})", {"why": why})


class UreaOrBUN(Inputs):
    """Urea (mmol/L, or urea mg/dL) or blood urea nitrogen (mg/dL, or mmol/L): give one."""

    #: Set False where the calculator scores an absent value as normal.
    urea_required: ClassVar[bool] = True

    bun: Annotated[
        float | None,
        Q("bun", 1, 300, "Blood urea nitrogen (give this or urea; 'mg/dL urea' converts)"),
    ] = None
    urea: Annotated[
        float | None,
        Q(
            "urea",
            0.3,
            110,
            "Serum urea (give this or bun; mmol/L, or urea mg/dL = 2.144 x BUN mg/dL)",
        ),
    ] = Field(None, validate_default=True)

    @field_validator("urea", mode="after")
    @classmethod
    def _one_of(cls, urea: float | None, info: ValidationInfo) -> float | None:
        if "bun" not in info.data:  # bun itself was invalid: that error is enough
            return urea
        bun = info.data["bun"]
        if urea is not None and bun is not None:
            raise ValueError("give urea or bun, not both (they measure the same analyte)")
        if urea is None and bun is None and cls.urea_required:
            raise missing("or give bun")
        return urea

    @property
    def urea_mmol_l(self) -> float | None:
        """Urea (= urea nitrogen) in mmol/L, whichever was given; None when neither."""
        if self.urea is not None:
            return self.urea
        return None if self.bun is None else from_canonical(self.bun, "mmol/L", "bun")

    @property
    def bun_mg_dl(self) -> float | None:
        """Blood urea nitrogen in mg/dL, whichever was given; None when neither."""
        mmol = self.urea_mmol_l
        return None if mmol is None else to_canonical(mmol, "mmol/L", "bun")

    def given_as(self) -> str:
        """Which of the two was given ('urea', 'bun' or 'neither'), for details."""
        return "urea" if self.urea is not None else "bun" if self.bun is not None else "neither"
