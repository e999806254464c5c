"""De-identification benchmark: medmllm's recognizers vs Presidio's default analyzer.

Synthetic clinical notes are generated with faker (seeded) from varied templates — several date,
phone, address, MRN and id styles — with the character span and type of every identifier kept as
gold. Both analyzers run on the same notes with the same spaCy model. Reported per PHI type:
recall (a gold span counts as found when every non-space character is covered by predictions —
of the same type for *type-strict*, of any type for *any-type*), precision (predicted spans that
overlap a gold span, same rule) and F1; plus notes/s and the machine load.

Caveat written into the results: the templates use the labels real notes use ("MRN:", "DOB",
"Fax:") and the same conventions the medical recognizers were written for, so these figures are
an upper bound for real notes, which need their own annotated sample.

    python bench/deid.py [--notes 300] [--seed 11]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import defaultdict
from typing import Any

from _common import write_json
from medmllm.provenance import environment

DATE_FORMATS = [
    "%m/%d/%Y", "%m/%d/%y", "%Y-%m-%d", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d-%b-%Y",
    "%m-%d-%Y", "%m.%d.%Y",
]  # fmt: skip
PHONE_FORMATS = ["(###) ###-####", "###-###-####", "###.###.####", "+1 ###-###-####"]
MRN_STYLES = [
    "MRN: {n8}",
    "MRN {n7}",
    "MR# {a1}{n7}",
    "Medical Record Number: {n8}",
    "Chart #: {n6}",
]
PRESIDIO_MAP = {
    "PERSON": "NAME",
    "DATE_TIME": "DATE",
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "LOCATION": "LOCATION",
    "US_SSN": "SSN",
    "URL": "URL",
    "IP_ADDRESS": "IP",
    "ORGANIZATION": "HOSPITAL",
    "MEDICAL_LICENSE": "DEA",
    "US_DRIVER_LICENSE": "ID",
    "US_BANK_NUMBER": "ACCOUNT",
    "CREDIT_CARD": "ACCOUNT",
    "US_PASSPORT": "ID",
    "US_ITIN": "ID",
    "NRP": "OTHER",
}


class NoteBuilder:
    """Appends text and remembers gold spans."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[str, int, int]] = []

    def text(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def phi(self, kind: str, s: str) -> None:
        self.spans.append((kind, self.length, self.length + len(s)))
        self.text(s)

    def build(self) -> tuple[str, list[tuple[str, int, int]]]:
        return "".join(self.parts), self.spans


def make_note(fake: Any, rng: random.Random) -> tuple[str, list[tuple[str, int, int]]]:
    b = NoteBuilder()
    first, last = fake.first_name(), fake.last_name()
    doc_first, doc_last = fake.first_name(), fake.last_name()

    def date() -> str:
        return fake.date_between("-80y", "today").strftime(rng.choice(DATE_FORMATS))

    def phone() -> str:
        return fake.numerify(rng.choice(PHONE_FORMATS)).replace("(0", "(2").replace("+1 0", "+1 2")

    mrn = rng.choice(MRN_STYLES)
    label, value = mrn.split(" ", 1) if ": " not in mrn else mrn.split(": ", 1)
    value = value.format(
        n8=fake.numerify("########"), n7=fake.numerify("#######"), n6=fake.numerify("######"),
        a1=fake.random_uppercase_letter(),
    )  # fmt: skip
    b.text("Patient: ")
    b.phi("NAME", f"{first} {last}")
    b.text(f"   {label}{': ' if ': ' in mrn else ' '}")
    b.phi("MRN", value)
    b.text("\nDOB: ")
    b.phi("DATE", date())
    sections = [
        lambda: (b.text("Admitted to "), b.phi("HOSPITAL", rng.choice([
            f"{fake.last_name()} General Hospital", f"St. {fake.first_name()} Medical Center",
            f"{fake.city()} Clinic", f"{fake.last_name()} Memorial Hospital"])),
            b.text(" on "), b.phi("DATE", date()), b.text(".")),
        lambda: (b.text("Mr. "), b.phi("NAME", last), b.text(" is a "),
                 b.phi("AGE", str(rng.randint(90, 104))),
                 b.text(rng.choice([" y/o", "-year-old", " year old"]) + " with chest pain.")),
        lambda: (b.text("Phone: "), b.phi("PHONE", phone()), b.text("  Fax: "),
                 b.phi("FAX", phone()), b.text(".")),
        lambda: (b.text("Email: "), b.phi("EMAIL", fake.email()), b.text(".")),
        lambda: (b.text("Address: "), b.phi("ADDRESS", fake.street_address()), b.text(", "),
                 b.phi("LOCATION", fake.city()), b.text(f", {fake.state_abbr()} "),
                 b.phi("ZIP", fake.zipcode()), b.text(".")),
        lambda: (b.text("SSN: "), b.phi("SSN", fake.ssn()), b.text(".")),
        lambda: (b.text("Account #: "), b.phi("ACCOUNT", fake.numerify("#########")),
                 b.text(rng.choice(["  Member ID: ", "  Policy Number: "])),
                 b.phi("HEALTH_PLAN", fake.bothify("???#########").upper()), b.text(".")),
        lambda: (b.text("Attending: Dr. "), b.phi("NAME", f"{doc_first} {doc_last}"),
                 b.text(", NPI: "), b.phi("NPI", fake.numerify("##########")), b.text(", DEA: "),
                 b.phi("DEA", fake.bothify("??#######").upper()), b.text(".")),
        lambda: (b.text("Pacemaker serial: "), b.phi("DEVICE_ID", fake.bothify("SN-########")),
                 b.text(". VIN "), b.phi("VEHICLE_ID", fake.bothify("1HG?#####?#######").upper()),
                 b.text(".")),
        lambda: (b.text("Portal: "), b.phi("URL", fake.url()), b.text(" from "),
                 b.phi("IP", fake.ipv4_public()), b.text(".")),
        lambda: (b.text("Follow-up on "), b.phi("DATE", date()), b.text("; "), b.phi("NAME", last),
                 b.text(" agrees with the plan of metformin 500 mg twice daily and HbA1c in 3 "
                        "months.")),
    ]  # fmt: skip
    rng.shuffle(sections)
    for section in sections[: rng.randint(7, len(sections))]:
        b.text("\n")
        section()
    b.text("\nAssessment: type 2 diabetes, stable. BP 132/84. No acute distress.\n")
    return b.build()


def _covered(span: tuple[int, int], preds: list[tuple[int, int]], text: str) -> bool:
    need = {i for i in range(*span) if not text[i].isspace()}
    for s, e in preds:
        need -= set(range(s, e))
    return not need


def score(
    notes: list[tuple[str, list[tuple[str, int, int]]]],
    predictions: list[list[tuple[str, int, int]]],
) -> dict[str, Any]:
    counts: dict[str, dict[str, dict[str, int]]] = {
        mode: defaultdict(lambda: {"gold": 0, "found": 0, "pred": 0, "correct": 0})
        for mode in ("strict", "any")
    }
    for (text, gold), preds in zip(notes, predictions, strict=True):
        for kind, s, e in gold:
            for mode in ("strict", "any"):
                pool = [(ps, pe) for pk, ps, pe in preds if mode == "any" or pk == kind]
                c = counts[mode][kind]
                c["gold"] += 1
                c["found"] += _covered((s, e), pool, text)
        for kind, s, e in preds:
            for mode in ("strict", "any"):
                hit = any(
                    s < ge and gs < e and (mode == "any" or gk == kind) for gk, gs, ge in gold
                )
                c = counts[mode][kind]
                c["pred"] += 1
                c["correct"] += hit
    out: dict[str, Any] = {}
    for mode, table in counts.items():
        rows = {}
        for kind, c in sorted(table.items()):
            recall = c["found"] / c["gold"] if c["gold"] else None
            precision = c["correct"] / c["pred"] if c["pred"] else None
            f1 = (
                2 * recall * precision / (recall + precision)
                if recall is not None and precision and recall + precision
                else None
            )
            rows[kind] = {**c, "recall": _r(recall), "precision": _r(precision), "f1": _r(f1)}
        gold = sum(c["gold"] for c in table.values())
        pred = sum(c["pred"] for c in table.values())
        rows["ALL"] = {
            "recall": _r(sum(c["found"] for c in table.values()) / gold) if gold else None,
            "precision": _r(sum(c["correct"] for c in table.values()) / pred) if pred else None,
        }
        out[mode] = rows
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    from faker import Faker
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from medmllm.safety.phi import SPACY_MODEL, Deidentifier, _offline_tldextract

    fake = Faker("en_US")
    fake.seed_instance(args.seed)
    rng = random.Random(args.seed)
    notes = [make_note(fake, rng) for _ in range(args.notes)]
    load_before = os.getloadavg()

    ours = Deidentifier()
    ours.analyze(notes[0][0])  # warm-up
    start = time.perf_counter()
    ours_pred = [[(s.type, s.start, s.end) for s in ours.analyze(t)] for t, _ in notes]
    ours_s = time.perf_counter() - start

    _offline_tldextract()
    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    ).create_engine()
    presidio = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    presidio.analyze(notes[0][0], language="en")
    start = time.perf_counter()
    presidio_pred = [
        [(PRESIDIO_MAP.get(r.entity_type, r.entity_type), r.start, r.end)
         for r in presidio.analyze(t, language="en", score_threshold=0.35)]
        for t, _ in notes
    ]  # fmt: skip
    presidio_s = time.perf_counter() - start

    ours_scores = score(notes, ours_pred)
    presidio_scores = score(notes, presidio_pred)
    targets_met = {
        kind: row["recall"] is not None and row["recall"] >= 0.98
        for kind, row in ours_scores["strict"].items()
        if kind != "ALL" and row["gold"]
    }
    payload = {
        "benchmark": "deid",
        "notes": args.notes,
        "seed": args.seed,
        "gold_spans": sum(len(g) for _, g in notes),
        "medmllm": {
            **ours_scores,
            "notes_per_s": round(args.notes / ours_s, 2),
            "seconds": round(ours_s, 2),
        },
        "presidio_default": {
            **presidio_scores,
            "notes_per_s": round(args.notes / presidio_s, 2),
            "seconds": round(presidio_s, 2),
        },
        "targets": {
            "recall_per_type>=0.98": all(targets_met.values()),
            "types_below_recall_target": [k for k, ok in targets_met.items() if not ok],
            "precision_any_type>=0.95": (ours_scores["any"]["ALL"]["precision"] or 0) >= 0.95,
        },
        "load_avg_before": list(load_before),
        "load_avg_after": list(os.getloadavg()),
        "caveat": "Synthetic notes share label conventions with the recognizers (MRN:, DOB, Fax:); "
        "real notes need an annotated sample. The recognizers were tuned after reading the misses "
        "on seed 7 (60 notes); the default seed 11 is held out. Speeds measured on a shared, "
        "loaded machine (see load_avg): not a speed claim.",
        "environment": environment(),
    }
    path = write_json("deid.json", payload)
    for name in ("medmllm", "presidio_default"):
        strict = payload[name]["strict"]["ALL"]
        anyt = payload[name]["any"]["ALL"]
        print(
            f"{name:17s} strict R={strict['recall']} P={strict['precision']}  any-type "
            f"R={anyt['recall']} P={anyt['precision']}  {payload[name]['notes_per_s']} notes/s"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
