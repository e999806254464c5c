"""Obstetrics: due date and gestational age (Naegele's rule), estimated conception date."""

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


class ConceptionInputs(Inputs):
    last_menstrual_period: dt.date = Field(description="First day of the last menstrual period.")
    cycle_length: int = Field(28, ge=20, le=45, description="Usual cycle length in days.")


@calculator(
    "conception_date",
    title="Estimated date of conception",
    unit="date",
    citation="Ovulation and conception about 14 days before the next menses, i.e. LMP + "
    "(cycle length - 14) days, LMP + 2 weeks in a 28-day cycle: ACOG Committee Opinion No. "
    "700, Methods for estimating the due date, Obstet Gynecol 2017;129:e150-e154; Wilcox AJ, "
    "Weinberg CR, Baird DD. Timing of sexual intercourse in relation to ovulation. N Engl J Med "
    "1995;333:1517-1521.",
)
def conception_date(x: ConceptionInputs) -> Outcome:
    """Estimated conception date = LMP + (cycle length - 14) days (LMP + 14 days for 28 days)."""
    day = x.last_menstrual_period + dt.timedelta(days=x.cycle_length - 14)
    return Outcome(
        day.isoformat(),
        "estimated ovulation and conception day; the due date is 266 days later",
        {"due_date": (day + dt.timedelta(days=266)).isoformat()},
        ["an estimate: ovulation varies by several days even in regular cycles"],
    )
