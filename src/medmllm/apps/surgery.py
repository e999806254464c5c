"""Surgery: the WHO Surgical Safety Checklist walked through per case, and grounded procedure Q&A.

The checklist (WHO, 2009) has three phases — sign in (before induction of anaesthesia), time out
(before skin incision), sign out (before the patient leaves the operating room). Each case's
state is a JSON file under ``MEDMLLM_HOME/apps/surgery/<case_id>.json``, written atomically
(temp file + ``os.replace``), so a crash never leaves a half-written checklist. Items are
confirmed in order; a phase cannot start before the previous one is complete.

``action="ask"`` answers a procedure question from a corpus index with numbered citations
(``medmllm.rag``); without an index it refuses rather than answer ungrounded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.apps.base import APPS, AppSpec, Citation, passages_block, retrieve_citations
from medmllm.errors import AppError
from medmllm.models.generator import Generator
from medmllm.rag.answer import extract_citations
from medmllm.rag.retriever import Retriever

CITATION = "World Health Organization. WHO Surgical Safety Checklist, 2009 (revised 1/2009)."
Phase = Literal["sign_in", "time_out", "sign_out"]
PHASES: tuple[Phase, ...] = ("sign_in", "time_out", "sign_out")

CHECKLIST: dict[str, list[tuple[str, str]]] = {
    "sign_in": [
        ("identity_confirmed", "Patient has confirmed identity, site, procedure and consent"),
        ("site_marked", "Site marked (or not applicable)"),
        ("anaesthesia_check", "Anaesthesia machine and medication check complete"),
        ("pulse_oximeter", "Pulse oximeter on the patient and functioning"),
        ("allergy", "Known allergy? (answer: no / yes, which)"),
        ("airway_risk", "Difficult airway or aspiration risk? (no / yes, equipment available)"),
        (
            "blood_loss_risk",
            "Risk of >500 mL blood loss (7 mL/kg in children)? (no / yes, "
            "IV access and fluids planned)",
        ),
    ],
    "time_out": [
        ("team_introduced", "All team members introduced by name and role"),
        (
            "patient_procedure_site",
            "Confirm patient's name, procedure and where the incision will be made",
        ),
        (
            "antibiotic_prophylaxis",
            "Antibiotic prophylaxis given within the last 60 minutes? (yes / not applicable)",
        ),
        (
            "surgeon_critical_events",
            "Surgeon: critical or non-routine steps, duration, anticipated blood loss",
        ),
        ("anaesthesia_concerns", "Anaesthesia team: patient-specific concerns"),
        ("nursing_sterility", "Nursing team: sterility confirmed, equipment issues or concerns"),
        ("imaging_displayed", "Essential imaging displayed? (yes / not applicable)"),
    ],
    "sign_out": [
        ("procedure_recorded", "Nurse confirms the name of the procedure"),
        ("counts_complete", "Instrument, sponge and needle counts complete"),
        ("specimen_labelled", "Specimen labelled (read aloud, including patient name)"),
        ("equipment_problems", "Any equipment problems to be addressed"),
        (
            "recovery_concerns",
            "Surgeon, anaesthetist and nurse review key concerns for recovery and management",
        ),
    ],
}

_CASE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SurgeryRequest(BaseModel):
    """A checklist action on a case, or a procedure question."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["start", "status", "confirm", "ask"] = Field(
        "status", description="start a case, show status, confirm the next item, or ask."
    )
    case_id: str | None = Field(None, description="Case id (letters, digits, _ and -).")
    item: str | None = Field(None, description="Item id to confirm (default: the next one).")
    note: str = Field("", max_length=500, description="Answer or note for the item.")
    question: str | None = Field(None, max_length=2000, description="Procedure question (ask).")
    k: int = Field(3, ge=1, le=10, description="Passages for ask.")


class ItemState(BaseModel):
    id: str = Field(description="Item id.")
    phase: Phase = Field(description="Checklist phase.")
    text: str = Field(description="What to check.")
    done: bool = Field(False, description="Confirmed.")
    note: str = Field("", description="Answer recorded.")
    at: str | None = Field(None, description="UTC time confirmed.")


class CaseState(BaseModel):
    case_id: str = Field(description="Case id.")
    created: str = Field(description="UTC time the case was started.")
    items: list[ItemState] = Field(description="All checklist items in order.")


class SurgeryResponse(BaseModel):
    """Checklist state with the next item to check, or a grounded answer."""

    case_id: str | None = Field(None, description="Case id.")
    phase: str | None = Field(None, description="Current phase (or 'complete').")
    next_item: ItemState | None = Field(None, description="Next item to check.")
    progress: dict[str, str] = Field(default_factory=dict, description="done/total per phase.")
    items: list[ItemState] = Field(default_factory=list, description="All items.")
    answer: str | None = Field(None, description="Answer to a procedure question.")
    citations: list[Citation] = Field(default_factory=list, description="Cited passages.")
    source: str = Field(CITATION, description="Checklist source.")


def cases_dir() -> Path:
    from medmllm.config import get_settings

    return Path(get_settings().home) / "apps" / "surgery"


def _path(case_id: str | None) -> Path:
    if not case_id or not _CASE_ID.match(case_id):
        raise AppError(f"invalid case id {case_id!r}", hint="use 1-64 letters, digits, '_' or '-'")
    return cases_dir() / f"{case_id}.json"


def _save(state: CaseState) -> None:
    path = _path(state.case_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(state.model_dump(), fh, indent=1)
    os.replace(tmp, path)


def load_case(case_id: str) -> CaseState:
    path = _path(case_id)
    if not path.is_file():
        raise AppError(f"no checklist for case {case_id!r}", hint="start it with action=start")
    return CaseState.model_validate_json(path.read_text())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _view(state: CaseState) -> SurgeryResponse:
    nxt = next((i for i in state.items if not i.done), None)
    progress: dict[str, str] = {}
    for phase in PHASES:
        items = [i for i in state.items if i.phase == phase]
        progress[phase] = f"{sum(i.done for i in items)}/{len(items)}"
    return SurgeryResponse(
        case_id=state.case_id,
        phase=nxt.phase if nxt else "complete",
        next_item=nxt,
        progress=progress,
        items=state.items,
    )


def run(
    request: SurgeryRequest, generator: Generator, retriever: Retriever | None = None
) -> SurgeryResponse:
    """Checklist actions (start/status/confirm) or a grounded procedure answer (ask)."""
    if request.action == "ask":
        return _ask(request, generator, retriever)
    if request.action == "start":
        if _path(request.case_id).is_file():
            raise AppError(f"case {request.case_id!r} already exists", hint="use action=status")
        items = [
            ItemState(id=item_id, phase=phase, text=text)  # type: ignore[arg-type,call-arg]
            for phase, rows in CHECKLIST.items()
            for item_id, text in rows
        ]
        state = CaseState(case_id=request.case_id or "", created=_now(), items=items)
        _save(state)
        return _view(state)
    state = load_case(request.case_id or "")
    if request.action == "confirm":
        pending = [i for i in state.items if not i.done]
        if not pending:
            raise AppError(f"case {state.case_id!r}: the checklist is already complete")
        target = pending[0]
        if request.item and request.item != target.id:
            ids = [i.id for i in state.items]
            if request.item not in ids:
                raise AppError(f"unknown checklist item {request.item!r}; items: {', '.join(ids)}")
            raise AppError(
                f"item {request.item!r} cannot be confirmed before {target.id!r} "
                f"({target.phase}): the checklist is done in order",
                hint=f"confirm {target.id} first",
            )
        target.done, target.note, target.at = True, request.note, _now()
        _save(state)
    return _view(state)


def _ask(
    request: SurgeryRequest, generator: Generator, retriever: Retriever | None
) -> SurgeryResponse:
    if not request.question:
        raise AppError("action=ask needs 'question'")
    if retriever is None:
        raise AppError(
            "procedure questions are answered only from a corpus, and no index was given",
            hint="pass --index NAME (an index of your procedure guidelines)",
        )
    citations = retrieve_citations(retriever, request.question, request.k)
    prompt = (
        f"Passages:\n{passages_block(citations)}\n\nQuestion: {request.question}\n"
        "Answer in 2-4 sentences using only the passages, citing them as [n]. If they do not "
        "answer it, say so."
    )
    comp = generator.chat([{"role": "user", "content": prompt}], max_tokens=160)
    used = set(extract_citations(comp.text, len(citations)))
    return SurgeryResponse(
        case_id=request.case_id,
        answer=comp.text.strip(),
        citations=[c for c in citations if c.n in used] or citations,
    )


APP = APPS.register(
    "surgery",
    AppSpec(
        "surgery",
        "WHO Surgical Safety Checklist per case (sign in / time out / sign out); grounded Q&A.",
        SurgeryRequest,
        SurgeryResponse,
        run,
        "question",
    ),
)
