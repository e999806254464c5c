"""Report generation: dialogue / dictation → a clinical-note section; image → findings + impression.

Text input follows MTS-Dialog (Ben Abacha et al., EACL 2023): a doctor-patient dialogue and a
section header (e.g. ``GENHX``, ``ASSESSMENT``) → the section's text. Image input needs a
multimodal generator (MedMLLM); a text-only backend answers with a clear error.
:func:`evaluate_mts_dialog` scores the app on MTS-Dialog validation rows with ROUGE-L, BLEU,
METEOR (``medmllm.eval.metrics``) and, optionally, a judge model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medmllm.apps.base import APPS, DISCLAIMER, AppSpec, generate_json
from medmllm.errors import AppError, DataNotFoundError
from medmllm.models.generator import Generator
from medmllm.rag.retriever import Retriever

# MTS-Dialog's normalised section headers and what they mean.
SECTIONS = {
    "GENHX": "history of present illness",
    "CC": "chief complaint",
    "ROS": "review of systems",
    "PASTMEDICALHX": "past medical history",
    "PASTSURGICAL": "past surgical history",
    "FAM/SOCHX": "family and social history",
    "MEDICATIONS": "medications",
    "ALLERGY": "allergies",
    "ASSESSMENT": "assessment",
    "PLAN": "plan",
    "DIAGNOSIS": "diagnosis",
    "DISPOSITION": "disposition",
    "EXAM": "physical examination",
    "EDCOURSE": "emergency department course",
    "IMAGING": "imaging",
    "LABS": "laboratory results",
    "PROCEDURES": "procedures",
    "IMMUNIZATIONS": "immunizations",
    "GYNHX": "gynaecological history",
    "OTHER_HISTORY": "other history",
}


class ReportRequest(BaseModel):
    """Dialogue or dictation (or an image) to turn into a report section."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(
        None, max_length=20000, description="Doctor-patient dialogue or a dictation."
    )
    section: str = Field("GENHX", description="Section to write: an MTS-Dialog header or words.")
    image: str | None = Field(None, description="Image path for findings + impression (MLLM).")

    @model_validator(mode="after")
    def _one_input(self) -> ReportRequest:
        if not (self.text and self.text.strip()) and not self.image:
            raise ValueError("give 'text' (dialogue or dictation) or 'image'")
        return self


class _SectionOut(BaseModel):
    text: str = Field(min_length=1, description="The section, in prose.")


class _ImageOut(BaseModel):
    findings: str = Field(description="Radiology findings.")
    impression: str = Field(description="Radiology impression.")


class ReportResponse(BaseModel):
    """A note section (text input) or findings + impression (image input)."""

    section: str = Field(description="Section header written.")
    text: str = Field(description="The section text (or findings + impression for images).")
    findings: str | None = Field(None, description="Findings (image input).")
    impression: str | None = Field(None, description="Impression (image input).")
    disclaimer: str = Field(DISCLAIMER, description="Draft notice: a clinician must review it.")


def _section_name(section: str) -> str:
    return SECTIONS.get(section.upper(), section)


def run(
    request: ReportRequest, generator: Generator, retriever: Retriever | None = None
) -> ReportResponse:
    """Write the requested section (or findings/impression for an image)."""
    if request.image:
        if not Path(request.image).is_file():
            raise AppError(f"image {request.image!r} not found", hint="pass an existing file")
        messages = [
            {
                "role": "user",
                "content": "Write the radiology report for this image: findings "
                "and impression, in JSON.",
            }
        ]
        out = generate_json(generator, messages, _ImageOut, images=[request.image])
        return ReportResponse(
            section="FINDINGS/IMPRESSION",
            text=f"FINDINGS: {out.findings}\nIMPRESSION: {out.impression}",
            findings=out.findings,
            impression=out.impression,
        )
    name = _section_name(request.section)
    messages = [
        {"role": "system", "content": "You are a medical scribe writing clinical notes."},
        {
            "role": "user",
            "content": f"Conversation or dictation:\n{request.text}\n\nWrite the "
            f"'{name}' section of the clinical note from it, in the third person, only with facts "
            "stated above. Answer in JSON.",
        },
    ]
    out_s = generate_json(generator, messages, _SectionOut, max_tokens=256)
    return ReportResponse(section=request.section.upper(), text=out_s.text.strip())


def load_mts_dialog(
    path: Path, *, split: str = "validation", limit: int | None = None
) -> list[dict[str, Any]]:
    """Rows of MTS-Dialog's ``mts_dialog_train_val.jsonl`` for one split."""
    from medmllm.jsonl import iter_jsonl

    if not path.is_file():
        raise DataNotFoundError(
            f"MTS-Dialog file not found: {path}", hint="set MEDMLLM_SHARED_DATA"
        )
    rows = [r for _, r in iter_jsonl(path) if r.get("split") == split]
    return rows[:limit] if limit else rows


def evaluate_mts_dialog(
    generator: Generator,
    path: Path,
    *,
    limit: int = 10,
    judge: Generator | None = None,
) -> dict[str, Any]:
    """ROUGE-L / BLEU / METEOR (and judge rubric) of the report app on MTS-Dialog validation."""
    from medmllm.eval.metrics import METRICS, bootstrap_ci, wordnet_available

    rows = load_mts_dialog(path, limit=limit)
    preds, refs = [], []
    for row in rows:
        out = run(ReportRequest(text=row["dialogue"], section=row["section_header"]), generator)
        preds.append(out.text)
        refs.append(row["section_text"])
    result: dict[str, Any] = {"n": len(rows), "split": "validation"}
    names = ["rouge_l", "bleu4", "sacrebleu"] + (["meteor"] if wordnet_available() else [])
    for name in names:
        metric = METRICS.get(name)
        scores = metric.fn(preds, refs, rows)
        if isinstance(scores, list):
            lo, hi = bootstrap_ci(scores)
            result[name] = {"mean": sum(scores) / len(scores), "ci95": [lo, hi]}
        else:
            result[name] = {"corpus": scores}
    if "meteor" not in names:
        result["meteor"] = {"skipped": "WordNet data not installed (see ASSETS.md)"}
    if judge is not None:
        from medmllm.eval.judge import score_answer

        rubric = [
            score_answer(judge, f"Write the {row['section_header']} section.", p, r).scores
            for row, p, r in zip(rows, preds, refs, strict=True)
        ]
        judged: dict[str, float | None] = {}
        for c in rubric[0] if rubric else []:
            vals = [float(v) for s in rubric if (v := s[c]) is not None]
            judged[c] = sum(vals) / len(vals) if vals else None
        result["judge"] = judged
    pairs = list(zip(preds, refs, strict=True))[:3]
    result["examples"] = [{"pred": p, "ref": r} for p, r in pairs]
    return result


APP = APPS.register(
    "report",
    AppSpec(
        "report",
        "Dialogue/dictation -> clinical-note section; image -> findings + impression (MLLM).",
        ReportRequest,
        ReportResponse,
        run,
        "text",
    ),
)
