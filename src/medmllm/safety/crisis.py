"""Crisis detection: self-harm / suicide and violence risk, and safe-messaging replies.

Three layers, recall first:

1. a lexicon of regular expressions for first-person risk statements (ideation, intent, plans,
   self-harm, threats of violence), including slang ("kms", "unalive") and statements whose risk
   *is* a negation ("I don't want to live anymore");
2. context rules that keep common false alarms out: negations ("I'm not suicidal", "denies SI"),
   third-person clinical or academic questions ("treatment of a patient with suicidal
   ideation"), quotations (song lyrics, a book) and idioms ("this headache is killing me");
   a worried friend or relative ("my brother wants to kill himself") is flagged with
   ``subject="other"`` so the reply explains how to help;
3. optionally a classifier :class:`~medmllm.models.generator.Generator` asked for one label; it
   can add a flag the lexicon missed but never removes one.

A flagged result maps to a safe-messaging reply (:func:`safe_reply`): empathic, no method
details, and escalation resources for the configured region. Results hold rule ids and
character spans, never the matched text, so they can be logged without PHI.

Example:
    >>> from medmllm.safety.crisis import CrisisDetector
    >>> result = CrisisDetector().detect("I don't want to live anymore")
    >>> result.flagged, result.category, result.subject
    (True, 'self_harm', 'self')
    >>> CrisisDetector().detect("I'm not suicidal, just tired").flagged
    False
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.models.generator import Generator

log = logging.getLogger(__name__)

Category = Literal["self_harm", "violence"]
Level = Literal["none", "concern", "high"]
Subject = Literal["self", "other"]


# -- lexicon ----------------------------------------------------------------------------------
# Each rule: (id, category, pattern, negatable). ``negatable=False`` marks statements whose risk
# is itself phrased as a negation, so a nearby "not" must not cancel them.
_SELF = r"(?:myself|my\s*self|me|himself|herself|themselves|themself)"
_Rule = tuple[str, Category, str, bool]
_RULES: tuple[_Rule, ...] = (
    # -- suicide / self-harm, first person ----------------------------------------------------
    (
        "sh.kill_myself",
        "self_harm",
        rf"\b(?:kill|off|unalive|hang|shoot|drown)(?:ing)?\s+{_SELF}\b",
        True,
    ),
    ("sh.kms", "self_harm", r"\b(?:kms|unalive|sewerslide|sewer\s*slide)\b", True),
    ("sh.suicidal", "self_harm", r"\bsuicid(?:al|e)\b", True),
    (
        "sh.want_die",
        "self_harm",
        r"\b(?:want|wanna|wanting|going|gonna|ready|plan(?:ning)?)\s+(?:to\s+)?die\b",
        True,
    ),
    (
        "sh.wish_dead",
        "self_harm",
        r"\bwish\s+(?:i\s+(?:was|were)\s+dead|i\s+(?:was|were)n'?t\s+(?:here|alive|born)|i\s+could\s+(?:die|disappear)|to\s+die)\b",
        True,
    ),
    (
        "sh.end_life",
        "self_harm",
        r"\b(?:end|take|ending|taking)\s+(?:my\s+(?:own\s+)?life|it\s+all|my\s+own\s+life)\b",
        True,
    ),
    (
        "sh.self_harm",
        "self_harm",
        rf"\b(?:self[-\s]?harm(?:ing)?|cut(?:ting)?\s+{_SELF}|hurt(?:ing)?\s+{_SELF}|burn(?:ing)?\s+{_SELF}|starv(?:e|ing)\s+{_SELF})\b",
        True,
    ),
    (
        "sh.overdose",
        "self_harm",
        r"\b(?:overdose|od)\s+on\b|\btake\s+(?:all|every\s+one)\s+of\s+my\s+(?:pills|meds|medication)\b",
        True,
    ),
    ("sh.jump", "self_harm", r"\bjump\s+(?:off|from|in\s+front\s+of)\b", True),
    (
        "sh.better_off",
        "self_harm",
        r"\b(?:better\s+off\s+(?:dead|without\s+me)|(?:world|everyone|they)\s+(?:would\s+be|is|are)\s+better\s+(?:off\s+)?without\s+me)\b",
        False,
    ),
    (
        "sh.no_reason",
        "self_harm",
        r"\b(?:no|not\s+any|n'?t\s+(?:see|have)\s+(?:a|any))\s+(?:reason|point)\s+(?:to|in)\s+(?:live|living|going\s+on|being\s+alive)\b",
        False,
    ),
    (
        "sh.not_live",
        "self_harm",
        r"\b(?:do\s*n[o']?t|don'?t|no\s+longer)\s+want\s+to\s+(?:live|be\s+alive|be\s+here|exist|wake\s+up)\b",
        False,
    ),
    (
        "sh.unsure_live",
        "self_harm",
        r"\bnot\s+(?:sure|certain)\s+(?:if\s+|whether\s+)?i\s+(?:want|wanna)\s+to\s+(?:live|be\s+alive|be\s+here|go\s+on)\b",
        False,
    ),
    (
        "sh.cant_go_on",
        "self_harm",
        r"\b(?:can'?t|cannot|can\s+not)\s+(?:go\s+on|keep\s+going|do\s+this\s+anymore|take\s+it\s+anymore)\b",
        False,
    ),
    ("sh.not_wake", "self_harm", r"\b(?:never|not)\s+wake\s+up\b", False),
    (
        "sh.goodbye",
        "self_harm",
        r"\b(?:suicide\s+note|goodbye\s+(?:note|letter)|saying\s+goodbye\s+to\s+everyone)\b",
        True,
    ),
    # -- violence toward others, first person ---------------------------------------------------
    (
        "vi.kill_other",
        "violence",
        r"\b(?:kill|murder|shoot|stab|strangle|hurt|beat\s+up|attack)\s+(?:him|her|them|you|my\s+\w+|that\s+\w+|everyone|everybody|people|somebody|someone)\b",
        True,
    ),
    ("vi.shoot_up", "violence", r"\bshoot\s+up\s+(?:the|my|a)\s+\w+", True),
    ("vi.bomb", "violence", r"\b(?:bomb|blow\s+up)\s+(?:the|my|a)\s+\w+", True),
    ("vi.make_pay", "violence", r"\bmake\s+(?:him|her|them)\s+(?:pay|suffer)\b", True),
)
_COMPILED = tuple((rid, cat, re.compile(pat, re.I), neg) for rid, cat, pat, neg in _RULES)

# Means, plans and timing raise ideation to "high" (imminent) risk.
_HIGH = re.compile(
    r"\b(?:tonight|today|right\s+now|this\s+(?:week|weekend)|tomorrow|plan(?:ned)?|i\s+have\s+a\s+plan|"
    r"gun|rifle|pistol|pills|rope|noose|bridge|razor|blade|stockpil\w*|note|goodbye|"
    r"already\s+(?:took|taken|cut)|bought)\b",
    re.I,
)
_NEGATION = re.compile(
    r"\b(?:not|never|no|nor|without|deny|denies|denied|denying|negative\s+for|"
    r"n'?t|dont|wont|cant|isnt|arent|wasnt)\b|n't\b",
    re.I,
)
# "not sure", "can't stop thinking about" keep the statement positive.
_NEGATION_EXEMPT = re.compile(
    r"\b(?:not\s+(?:sure|certain)|(?:can'?t|cannot)\s+stop|no\s+longer|not\s+anymore\s+afraid)\b",
    re.I,
)
_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:but|though|although|however|yet)\b", re.I)

# Third person: generic / clinical subjects are informational, a close person is a concern.
_CLOSE_WORDS = frozenset(
    [
        "friend",
        "friends",
        "brother",
        "sister",
        "mom",
        "mum",
        "mother",
        "dad",
        "father",
        "son",
        "daughter",
        "husband",
        "wife",
        "partner",
        "boyfriend",
        "girlfriend",
        "child",
        "kid",
        "teen",
        "roommate",
        "colleague",
        "coworker",
        "cousin",
        "grandmother",
        "grandfather",
        "grandma",
        "grandpa",
        "aunt",
        "uncle",
        "student",
        "classmate",
        "neighbor",
        "neighbour",
        "bff",
    ]
)
_GENERIC_WORDS = frozenset(
    [
        "patient",
        "patients",
        "pt",
        "pts",
        "client",
        "clients",
        "someone",
        "somebody",
        "people",
        "person",
        "persons",
        "individual",
        "individuals",
        "adolescents",
        "adolescent",
        "teenagers",
        "children",
        "veterans",
        "character",
        "protagonist",
        "population",
        "cohort",
        "users",
        "user",
        "men",
        "women",
        "youth",
    ]
)
_PRONOUN_WORDS = frozenset(["he", "she", "they", "he's", "she's", "they're", "his", "their"])
_FEEL = frozenset(
    [
        "i'm",
        "im",
        "am",
        "feel",
        "feeling",
        "felt",
        "was",
        "been",
        "get",
        "getting",
        "so",
        "very",
        "really",
    ]
)
_FIRST_WORDS = frozenset(["i", "i'm", "im", "i've", "ive", "i'd", "i'll", "me", "myself"])
_CLOSE_PERSON = re.compile(
    r"\bmy\s+(?:best\s+)?(?:" + "|".join(sorted(_CLOSE_WORDS)) + r")\b", re.I
)
# Texts about care, research or fiction: a bare "he/she" there is not someone the writer knows.
_INFORMATIONAL = re.compile(
    r"\b(?:patients?|pt|clients?|treatment|management|manage|assess\w*|screen\w*|risk\s+factors?|"
    r"ideation|guidelines?|prevalence|novel|book|movie|film|song|lyrics|story|character|poem|"
    r"play|episode|history\s+of|diagnos\w*|study|studies|rates?|risk|prevention|statistics|teens)\b",
    re.I,
)

# Quoted spans: dropped unless framed as the user's own thought or a close person's words.
_QUOTE = re.compile(r"\"[^\"]+\"|“[^”]+”|(?<!\w)'[^']{3,}'(?!\w)")
_SELF_FRAME = re.compile(
    r"\bi\s+(?:keep\s+)?(?:think(?:ing)?|tell\s+myself|told\s+myself|say(?:ing)?\s+to\s+myself|"
    r"wrote|feel|felt|hear\s+myself)\b",
    re.I,
)
# Idioms that use the same words without risk.
_IDIOM = re.compile(
    r"\b(?:(?:is|are|was|it'?s|you'?re|they'?re)\s+killing\s+me|kill\s+(?:the|this|a)\s+"
    r"(?:process|job|task|server|lights|engine|time|mood|vibe)|kill(?:ing)?\s+it\b|"
    r"could\s+kill\s+for|dying\s+(?:to|for|of\s+laughter)|dead\s+(?:tired|serious)|"
    r"killer\s+\w+|suicide\s+(?:squad|doors?|lane|run)|to\s+die\s+for)\b",
    re.I,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class CrisisMatch:
    """One lexicon hit: the rule id and where it is (no matched text, so it is PHI-free)."""

    rule: str
    category: Category
    start: int
    end: int


@dataclass(frozen=True)
class CrisisResult:
    """The verdict on one text.

    Attributes:
        flagged: whether a safe-messaging reply should replace or precede a normal answer.
        category: ``"self_harm"`` or ``"violence"`` when flagged.
        level: ``"none"``, ``"concern"`` (ideation, or a worried third party) or ``"high"``
            (a plan, means or timing; escalate to a human).
        subject: ``"self"`` (the writer) or ``"other"`` (someone close to the writer).
        matches: the lexicon hits that led to the verdict.
        source: ``"lexicon"``, ``"classifier"`` or ``""`` when not flagged.
    """

    flagged: bool
    category: Category | None = None
    level: Level = "none"
    subject: Subject = "self"
    matches: tuple[CrisisMatch, ...] = field(default_factory=tuple)
    source: str = ""

    @property
    def escalate(self) -> bool:
        """Whether a human should be alerted now (imminent risk)."""
        return self.flagged and self.level == "high"

    def to_dict(self) -> dict[str, object]:
        return {
            "flagged": self.flagged,
            "category": self.category,
            "level": self.level,
            "subject": self.subject,
            "escalate": self.escalate,
            "rules": [m.rule for m in self.matches],
            "source": self.source,
        }


NOT_FLAGGED = CrisisResult(flagged=False)


# -- resources and replies --------------------------------------------------------------------
class Resource(BaseModel):
    """A crisis service shown to the user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Service name shown to the user.")
    contact: str = Field(description="How to reach it (number, text code).")
    url: str = Field("", description="Web page of the service (may be empty).")


class CrisisConfig(BaseModel):
    """Settings of the crisis check and its replies."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field("US", description="Key of `resources` used in replies; falls back to INTL.")
    resources: dict[str, list[Resource]] = Field(
        default_factory=lambda: dict(DEFAULT_RESOURCES),
        description="Crisis services per region code (US, UK, EU, INTL …).",
    )
    use_classifier: bool = Field(
        True, description="Ask the classifier generator (when one is given) about unflagged texts."
    )
    extra_patterns: list[str] = Field(
        default_factory=list,
        description="Additional self-harm regular expressions (case-insensitive) of a site.",
    )


DEFAULT_RESOURCES: dict[str, list[Resource]] = {
    "US": [
        Resource(name="Emergency services", contact="call 911"),
        Resource(
            name="988 Suicide & Crisis Lifeline",
            contact="call or text 988",
            url="https://988lifeline.org",
        ),
        Resource(
            name="Crisis Text Line",
            contact="text HOME to 741741",
            url="https://www.crisistextline.org",
        ),
    ],
    "UK": [
        Resource(name="Emergency services", contact="call 999"),
        Resource(name="Samaritans", contact="call 116 123", url="https://www.samaritans.org"),
        Resource(name="Shout", contact="text SHOUT to 85258", url="https://giveusashout.org"),
    ],
    "EU": [Resource(name="Emergency services", contact="call 112")],
    "INTL": [
        Resource(
            name="Find a Helpline (free, confidential, by country)",
            contact="online directory",
            url="https://findahelpline.com",
        ),
    ],
}


def resources_for(config: CrisisConfig | None = None) -> list[Resource]:
    """The region's services followed by the international directory."""
    config = config or CrisisConfig()
    local = config.resources.get(config.region.upper(), [])
    intl = [r for r in config.resources.get("INTL", []) if r not in local]
    return [*local, *intl]


def safe_reply(result: CrisisResult, config: CrisisConfig | None = None) -> str:
    """A safe-messaging reply: empathic, no method details, help now, resources listed.

    Follows the usual safe-messaging guidance: take the person seriously, do not judge or argue,
    say help is available, encourage contacting a person now, and never discuss means.
    """
    if not result.flagged:
        return ""
    lines: list[str] = []
    if result.category == "violence":
        lines.append(
            "It sounds like you are under a lot of strain and may feel close to hurting someone. "
            "Thank you for saying it. If anyone is in immediate danger, call emergency services "
            "now. If you can, put distance between yourself and anything that could be used to "
            "hurt someone, and reach out to a crisis line: they also help people with urges to "
            "harm others, confidentially."
        )
    elif result.subject == "other":
        lines.append(
            "I'm sorry you are facing this; it is frightening to worry about someone you care "
            "about. If they are in immediate danger, call emergency services now and stay with "
            "them if it is safe. It helps to ask them directly and calmly whether they are "
            "thinking about suicide, to listen without judging, and to help them contact a "
            "crisis line. You can call one yourself for advice, too."
        )
    else:
        lines.append(
            "I'm really sorry you are feeling this way. You don't have to face it alone, and "
            "help is available right now."
        )
        if result.level == "high":
            lines.append(
                "If you are in immediate danger or have already hurt yourself, please call "
                "emergency services now, or go to the nearest emergency department. If you can, "
                "move away from anything you could use to hurt yourself and stay near someone."
            )
        lines.append(
            "Please reach out to someone you trust, or talk to a trained counsellor. It is "
            "free and confidential:"
        )
    for res in resources_for(config):
        lines.append(f"- {res.name}: {res.contact}" + (f" ({res.url})" if res.url else ""))
    lines.append(
        "I'm an AI assistant and can't provide crisis care, but these people can, any time."
    )
    return "\n".join(lines)


# -- detection --------------------------------------------------------------------------------
CLASSIFIER_PROMPT = (
    "You screen messages sent to a health assistant. Does the writer express a risk of "
    "suicide or self-harm (SELF_HARM), of violence toward others (VIOLENCE), or neither (NONE)? "
    "Questions about a patient, negations and quotations are NONE. "
    "Answer with exactly one word: SELF_HARM, VIOLENCE or NONE.\n\nMessage: {text}"
)


class CrisisDetector:
    """Lexicon + context rules, with an optional classifier generator for recall.

    Args:
        config: regions, resources and classifier use; defaults to :class:`CrisisConfig`.
        classifier: a generator asked for a one-word label on texts the lexicon did not flag
            (it can add a flag, never remove one).
    """

    def __init__(
        self, config: CrisisConfig | None = None, classifier: Generator | None = None
    ) -> None:
        self.config = config or CrisisConfig()
        self.classifier = classifier
        self._extra = tuple(
            (f"sh.extra{i}", "self_harm", re.compile(p, re.I), True)
            for i, p in enumerate(self.config.extra_patterns)
        )

    def detect(self, text: str) -> CrisisResult:
        """Classify one message (a user turn, a question)."""
        if not isinstance(text, str) or not text.strip():
            return NOT_FLAGGED
        result = self._lexicon(text)
        if result.flagged or self.classifier is None or not self.config.use_classifier:
            return result
        return self._classify(text)

    def detect_messages(self, messages: Sequence[dict[str, str]]) -> CrisisResult:
        """The verdict on the latest user turn of a chat (earlier turns were checked before)."""
        for msg in reversed(messages):
            if msg.get("role") == "user":
                return self.detect(msg.get("content", ""))
        return NOT_FLAGGED

    def reply(self, result: CrisisResult) -> str:
        """The safe-messaging reply for ``result`` with this detector's resources."""
        return safe_reply(result, self.config)

    # -- layers -------------------------------------------------------------------------------
    def _lexicon(self, text: str) -> CrisisResult:
        norm = text.replace("’", "'").replace("‘", "'")
        matches: list[CrisisMatch] = []
        subjects: set[Subject] = set()
        high = False
        fiction_or_clinical = bool(_INFORMATIONAL.search(norm))
        for start, sentence in _sentences(norm):
            for span_start, span, framed_other in _unquoted_views(sentence):
                offset = start + span_start
                for rule, cat, s, e in self._sentence_matches(span):
                    who = "other" if framed_other else _speaker(span, s, e, fiction_or_clinical)
                    if who is None:
                        continue
                    matches.append(CrisisMatch(rule, cat, offset + s, offset + e))
                    subjects.add(who)
                    high = high or bool(_HIGH.search(span))
        if not matches:
            return NOT_FLAGGED
        subject: Subject = "self" if "self" in subjects else "other"
        category: Category = (
            "self_harm" if any(m.category == "self_harm" for m in matches) else "violence"
        )
        if category == "violence":
            high = True  # any credible threat toward others goes to a human
        level: Level = "high" if high and subject == "self" else "concern"
        return CrisisResult(True, category, level, subject, tuple(matches), "lexicon")

    def _sentence_matches(self, span: str) -> list[tuple[str, Category, int, int]]:
        idioms = [m.span() for m in _IDIOM.finditer(span)]
        out: list[tuple[str, Category, int, int]] = []
        for rule, cat, pattern, negatable in (*_COMPILED, *self._extra):
            for m in pattern.finditer(span):
                if any(s <= m.start() < e or s < m.end() <= e for s, e in idioms):
                    continue
                if negatable and _negated(span, m.start()):
                    continue
                out.append((rule, cat, m.start(), m.end()))  # type: ignore[arg-type]
        return out

    def _classify(self, text: str) -> CrisisResult:
        assert self.classifier is not None
        try:
            reply = self.classifier.chat(
                [{"role": "user", "content": CLASSIFIER_PROMPT.format(text=text[:2000])}],
                max_tokens=4,
                temperature=0.0,
            ).text
        except Exception as exc:  # the lexicon verdict stands if the classifier fails
            log.warning("crisis classifier failed (%s); lexicon verdict kept", type(exc).__name__)
            return NOT_FLAGGED
        label = reply.strip().upper().replace("-", "_")
        if label.startswith("SELF_HARM"):
            return CrisisResult(True, "self_harm", "concern", "self", (), "classifier")
        if label.startswith("VIOLENCE"):
            return CrisisResult(True, "violence", "high", "self", (), "classifier")
        return NOT_FLAGGED


def _sentences(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for part in _SENTENCE.split(text):
        idx = text.find(part, pos)
        out.append((idx, part))
        pos = idx + len(part)
    return [(i, s) for i, s in out if s.strip()]


def _unquoted_views(sentence: str) -> list[tuple[int, str, bool]]:
    """The sentence without its quotations, plus quotations framed as own/close-person words.

    Returns (offset, text, framed_by_close_person) triples.
    """
    quotes = list(_QUOTE.finditer(sentence))
    if not quotes:
        return [(0, sentence, False)]
    outside = _QUOTE.sub(lambda m: " " * len(m.group()), sentence)
    views = [(0, outside, False)]
    own = bool(_SELF_FRAME.search(outside))
    close = bool(_CLOSE_PERSON.search(outside))
    for q in quotes:
        if own or close:
            views.append((q.start() + 1, q.group()[1:-1], close and not own))
    return views


def _negated(span: str, start: int) -> bool:
    """A negator earlier in the same clause, within five words of the match."""
    before = span[:start]
    clause = _CLAUSE_BREAK.split(before)[-1]
    window = " ".join(clause.split()[-5:])
    if not window or _NEGATION_EXEMPT.search(window + " " + span[start : start + 20]):
        return False
    return bool(_NEGATION.search(window))


def _speaker(span: str, start: int, end: int, informational: bool) -> Subject | None:
    """Who is at risk in this match: the writer, someone close (a concern), or nobody (None).

    The nearest person word before the match in its clause decides ("I think my brother wants
    to ..." -> brother); a reflexive inside the match ("kill myself") decides first.
    """
    inside = span[start:end].lower()
    if re.search(r"\b(?:myself|my\s*self|me)\b", inside):
        return "self"
    clause = _CLAUSE_BREAK.split(span[:start])[-1]
    words = re.findall(r"[a-z']+", clause.lower())
    if informational and inside.startswith("suicid") and (not words or words[-1] not in _FEEL):
        return None  # "risk factors for suicide", "assess suicide risk": a topic, not a state
    for word in reversed(words[-8:]):
        if word in _FIRST_WORDS:
            return "self"
        if word in _CLOSE_WORDS:
            return "other"
        if word in _GENERIC_WORDS:
            return None
        if word in _PRONOUN_WORDS:
            return None if informational else "other"
    if re.search(r"\b(?:himself|herself|themselves|themself)\b", inside):
        return None if informational else "other"
    return "self"  # bare statements ("want to die", "suicidal tonight") are the writer's
