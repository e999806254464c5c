"""The medical PHI patterns as one Presidio recognizer.

Kept apart from :mod:`medmllm.safety.phi_patterns` because importing Presidio pulls in spaCy and
transformers' pipelines; only building a :class:`~medmllm.safety.phi.Deidentifier` analyzer
needs it.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from medmllm.safety.phi_patterns import PATTERNS, REGEX_TYPES, PhiPattern

_RECOGNIZER_NAME = "MedicalPhiRecognizer"


class MedicalPhiRecognizer(EntityRecognizer):
    """A Presidio recognizer running :data:`PATTERNS`; each named group is one result."""

    def __init__(self, patterns: tuple[PhiPattern, ...] = PATTERNS) -> None:
        self.patterns = patterns
        super().__init__(
            supported_entities=list(REGEX_TYPES),
            name=_RECOGNIZER_NAME,
            supported_language="en",
        )

    def load(self) -> None:  # nothing to load: compiled at import
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        wanted = set(entities) if entities else set(REGEX_TYPES)
        out: list[RecognizerResult] = []
        for pat in self.patterns:
            for m in pat.regex.finditer(text):
                for group, value in m.groupdict().items():
                    if value is None or group not in wanted:
                        continue
                    start, end = m.span(group)
                    out.append(
                        RecognizerResult(
                            group,
                            start,
                            end,
                            pat.score,
                            recognition_metadata={
                                RecognizerResult.RECOGNIZER_NAME_KEY: _RECOGNIZER_NAME,
                                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                                "pattern": pat.name,
                            },
                        )
                    )
        return out
