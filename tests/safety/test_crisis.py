"""Crisis detection on phrasings the tests write: positives, negations, third person, quotes."""

from __future__ import annotations

import pytest

from medmllm.safety.crisis import (
    CrisisConfig,
    CrisisDetector,
    CrisisResult,
    resources_for,
    safe_reply,
)
from tests.fakes import FakeGenerator

SELF_POSITIVE = [
    "I want to kill myself",
    "i wanna die",
    "I've been thinking about ending my life",
    "I don't want to live anymore",
    "I dont want to wake up tomorrow",
    "Everyone would be better off without me.",
    "There is no reason to live.",
    "I can't go on like this",
    "kms",
    "I've been cutting myself again",
    "I feel suicidal",
    "I'm going to overdose on my pills tonight",
    "I'm not sure I want to live",
    "I can't stop thinking about killing myself",
    "I keep thinking 'I want to die'",
    "Honestly I wish I wasn't here",
    "I wrote a suicide note",
    "I want to take my own life, I have a plan",
]
VIOLENCE_POSITIVE = [
    "I want to kill him",
    "I'm going to shoot up my school",
    "I'll make them pay, I'm going to hurt them",
]
OTHER_POSITIVE = [
    "My brother wants to kill himself",
    "I think my daughter is suicidal",
    'My friend texted me "I want to die"',
]
NEGATIVE = [
    # negations
    "I'm not suicidal, just tired",
    "I don't want to hurt myself",
    "I have never thought about killing myself",
    "No thoughts of self-harm.",
    "Patient denies suicidal ideation.",
    "I would never kill myself",
    # third person, clinical and fiction
    "What is the first-line treatment for a patient with suicidal ideation?",
    "How do I assess suicide risk in adolescents?",
    "The patient attempted to kill herself last year; how should I manage her lithium?",
    "In the novel, the character kills himself at the end.",
    "What are the risk factors for suicide in veterans?",
    # quotations
    'The song goes "I want to die" in the chorus',
    'My essay quotes Hamlet: "to die, to sleep"',
    # idioms and unrelated medical text
    "This headache is killing me",
    "I could kill for a coffee",
    "How do I kill the process in Linux?",
    "I'm dying to know the results of my HbA1c",
    "What is the dose of metformin for type 2 diabetes?",
    "",
    "   ",
]


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return CrisisDetector()


@pytest.mark.parametrize("text", SELF_POSITIVE)
def test_self_harm_positives(detector: CrisisDetector, text: str) -> None:
    result = detector.detect(text)
    assert result.flagged, text
    assert result.category == "self_harm"
    assert result.subject == "self"


@pytest.mark.parametrize("text", VIOLENCE_POSITIVE)
def test_violence_positives(detector: CrisisDetector, text: str) -> None:
    result = detector.detect(text)
    assert result.flagged and result.category == "violence", text
    assert result.escalate


@pytest.mark.parametrize("text", OTHER_POSITIVE)
def test_worried_about_someone_close(detector: CrisisDetector, text: str) -> None:
    result = detector.detect(text)
    assert result.flagged and result.subject == "other", text
    assert result.level == "concern"


@pytest.mark.parametrize("text", NEGATIVE)
def test_negatives(detector: CrisisDetector, text: str) -> None:
    assert not detector.detect(text).flagged, text


def test_plan_and_means_are_high(detector: CrisisDetector) -> None:
    assert detector.detect("I'm going to overdose on my pills tonight").level == "high"
    assert detector.detect("I feel suicidal").level == "concern"


def test_result_holds_no_text(detector: CrisisDetector) -> None:
    text = "John Smith here, I want to kill myself"
    result = detector.detect(text)
    dumped = str(result.to_dict())
    assert "John" not in dumped and "here" not in dumped
    (match,) = result.matches
    assert text[match.start : match.end].lower() == "kill myself"


def test_multi_sentence_and_messages(detector: CrisisDetector) -> None:
    msgs = [
        {"role": "user", "content": "I want to die."},
        {"role": "assistant", "content": "I'm sorry ..."},
        {"role": "user", "content": "What is the dose of ibuprofen?"},
    ]
    assert not detector.detect_messages(msgs).flagged
    text = "My labs came back fine. But honestly, I don't want to be alive anymore."
    assert detector.detect(text).flagged


def test_safe_reply_lists_resources_and_no_methods() -> None:
    result = CrisisDetector().detect("I want to kill myself tonight, I have pills")
    reply = safe_reply(result)
    assert "988" in reply and "911" in reply and "findahelpline.com" in reply
    assert "pills" not in reply.lower()  # never repeat or discuss means
    uk = safe_reply(result, CrisisConfig(region="UK"))
    assert "116 123" in uk and "988" not in uk
    other = safe_reply(CrisisDetector().detect("My son wants to kill himself"))
    assert "someone you care about" in other
    assert safe_reply(CrisisResult(flagged=False)) == ""


def test_unknown_region_falls_back_to_international() -> None:
    res = resources_for(CrisisConfig(region="XX"))
    assert [r.url for r in res] == ["https://findahelpline.com"]


def test_config_is_strict() -> None:
    with pytest.raises(ValueError):
        CrisisConfig(regoin="US")  # type: ignore[call-arg]


def test_extra_patterns() -> None:
    det = CrisisDetector(CrisisConfig(extra_patterns=[r"\bchecking out early\b"]))
    assert det.detect("I'm thinking of checking out early").flagged


def test_classifier_adds_flags_but_never_removes(scripted_generator) -> None:
    gen = scripted_generator(replies=["SELF_HARM"])
    det = CrisisDetector(classifier=gen)
    result = det.detect("I gave away all my things and wrote letters to everyone")
    assert result.flagged and result.source == "classifier"
    none = CrisisDetector(classifier=scripted_generator(replies=["NONE"]))
    assert none.detect("I want to kill myself").flagged  # lexicon hit stands
    assert not none.detect("What is HbA1c?").flagged
    off = CrisisDetector(CrisisConfig(use_classifier=False), classifier=gen)
    assert not off.detect("I gave away all my things").flagged


def test_classifier_failure_keeps_lexicon_verdict() -> None:
    def down(_: str) -> str:
        raise RuntimeError("down")

    det = CrisisDetector(classifier=FakeGenerator(down))
    assert not det.detect("What is HbA1c?").flagged
