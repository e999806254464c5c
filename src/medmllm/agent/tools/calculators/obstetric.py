"""Obstetrics: estimated due date and gestational age (Naegele's rule)."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from medmllm.agent.tools.calculators.base import Inputs, Outcome, calculator


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day-of-month ``months`` later (clamped to the month's last day)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


class DueDateInputs(Inputs):
    last_menstrual_period: dt.date = Field(description="First day of the last menstrual period.")
    cycle_length: int = Field(28, ge=20, le=45, description="Usual cycle length in days.")
    method: Literal["naegele", "280_days"] = Field(
        "naegele", description="naegele: +1 year -3 months +7 days; 280_days: LMP + 280 days."
    )
    on_date: dt.date | None = Field(
        None, description="Date at which to give the gestational age (default: today)."
    )

    @model_validator(mode="after")
    def _order(self) -> DueDateInputs:
        if self.on_date is not None and self.on_date < self.last_menstrual_period:
            raise ValueError(
                f"on_date {self.on_date} is before the last menstrual period "
                f"{self.last_menstrual_period}"
            )
        return self


@calculator(
    "due_date",
    title="Estimated due date and gestational age (Naegele's rule)",
    unit="date",
    citation="Naegele FC. Lehrbuch der Geburtshülfe, 1830 (LMP + 1 year - 3 months + 7 days); "
    "ACOG Committee Opinion No. 700, Methods for estimating the due date, Obstet Gynecol "
    "2017;129:e150-e154 (280 days; adjust for cycle length).",
)
def due_date(x: DueDateInputs) -> Outcome:
    """Estimated due date from the LMP (Naegele +1y -3m +7d, adjusted for cycle length) and
    gestational age."""
    lmp = x.last_menstrual_period
    shift = dt.timedelta(days=x.cycle_length - 28)
    if x.method == "naegele":
        edd = add_months(lmp, 12 - 3) + dt.timedelta(days=7) + shift
    else:
        edd = lmp + dt.timedelta(days=280) + shift
    on = x.on_date or dt.date.today()
    days = (on - lmp).days - (x.cycle_length - 28)
    weeks, rem = divmod(max(days, 0), 7)
    return Outcome(
        edd.isoformat(),
        f"gestational age on {on.isoformat()}: {weeks} weeks {rem} days",
        {
            "gestational_age_weeks": weeks,
            "gestational_age_days": rem,
            "as_of": on.isoformat(),
            "gestational_age_total_days": days,
        },
    )
