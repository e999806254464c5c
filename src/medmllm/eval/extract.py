"""Robust answer extraction from generated text.

Small models rarely answer "B" and stop: they write "The correct answer is (B) Mamelons",
"b.", "Answer: B" or repeat an option's text. The patterns below go from the most explicit
("the answer is X", which chain-of-thought prompts ask for) to the loosest (an option's text),
and return ``None`` when nothing is found, so that the runner counts the item as *invalid*
instead of guessing (a guess would silently inflate accuracy towards the majority letter).
"""

from __future__ import annotations

import re

_FINAL = re.compile(
    r"(?:final\s+answer|answer\s+is|answer\s*:|correct\s+(?:option|choice)\s+is|option)"
    r"\s*[:\-]?\s*\(?\**\s*([A-Z])\b\)?",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^\s*[\(\[\*]*\s*([A-Z])\s*(?:[\)\]\.:\*,]|$|\s)")
_YESNO = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)
_YESNO_FINAL = re.compile(r"answer\s+is\s*[:\-]?\s*\**\s*(yes|no|maybe)\b", re.IGNORECASE)


def extract_letter(text: str, options: dict[str, str] | None) -> str | None:
    """The chosen option letter, or None if the text names no option unambiguously.

    Example:
        >>> extract_letter("The answer is (C).", {"A": "x", "B": "y", "C": "z"})
        'C'
    """
    valid = set(options or {})
    if not text or not valid:
        return None
    finals = [m.group(1).upper() for m in _FINAL.finditer(text)]
    finals = [f for f in finals if f in valid]
    if finals:
        return finals[-1]  # chain-of-thought: the last stated answer wins
    lead = _LEADING.match(text)
    if lead and lead.group(1).upper() in valid:
        letter = lead.group(1)
        # a lone lowercase "a" starting a sentence is an article, not option A
        if letter.isupper() or re.match(r"^\s*[a-z]\s*[\)\.:]", text):
            return letter.upper()
    lowered = text.lower()
    hits = [k for k, v in (options or {}).items() if v.strip() and v.strip().lower() in lowered]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:  # prefer the longest option text that appears (e.g. "Incisal ridge")
        hits.sort(key=lambda k: len((options or {})[k]), reverse=True)
        if len((options or {})[hits[0]]) > len((options or {})[hits[1]]):
            return hits[0]
    return None


def extract_yesno(text: str, options: dict[str, str] | None = None) -> str | None:
    """The letter of the yes/no/maybe option the text gives (first plain occurrence)."""
    if not text:
        return None
    match = _YESNO_FINAL.search(text) or _YESNO.search(text)
    if match is None:
        return None
    word = match.group(1).lower()
    if options is None:
        return word
    for letter, value in options.items():
        if value.strip().lower() == word:
            return letter
    return None


def extract_free(text: str) -> str | None:
    """Free-text answers: the first non-empty line, trimmed of a leading 'Answer:'."""
    for line in (text or "").splitlines():
        line = re.sub(r"^\s*(?:the\s+)?answer\s*(?:is|:)\s*", "", line, flags=re.IGNORECASE)
        line = line.strip().strip("*").strip()
        if line:
            return line
    return None


def extract(answer_type: str, text: str, options: dict[str, str] | None) -> str | None:
    """Dispatch on the task's ``answer_type`` (letter, yesno or free)."""
    if answer_type == "yesno":
        return extract_yesno(text, options)
    if answer_type == "free":
        return extract_free(text)
    return extract_letter(text, options)
