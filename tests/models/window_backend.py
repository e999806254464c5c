"""A tiny-window Generator for context tests: one token per word, replies from a script.

``Echo`` answers with the text of the first passage in its prompt (what a model that trusts
its sources does), so a poisoned document reaches the answer.
"""

from __future__ import annotations

import re

from medmllm.models.generator import Message, StreamChunk, Usage
from tests.fakes import FakeGenerator


class WindowGenerator(FakeGenerator):
    backend = "window"

    def __init__(self, model: str | None = None, window: int = 120, **_: object) -> None:
        super().__init__(model=model or "window-model")
        self.window = window
        self.prompts: list[list[Message]] = []

    def context_window(self) -> int | None:
        return self.window

    def count_tokens(self, messages) -> int | None:
        return sum(len(Message.coerce(m).content.split()) + 2 for m in messages)

    def reply(self, messages: list[Message]) -> str:
        return "Drink water and rest."

    def _stream(self, messages, images, params):
        self.prompts.append(list(messages))
        text = self.reply(messages)
        yield StreamChunk(text)
        yield StreamChunk("", finish_reason="stop", usage=Usage(10, len(text.split())))


class Echo(WindowGenerator):
    def __init__(self, model: str | None = None, **kw: object) -> None:
        super().__init__(model, window=4096)

    def reply(self, messages: list[Message]) -> str:
        prompt = "\n".join(m.content for m in messages)
        found = re.search(r"^\[1\] (?:[^:\n]*: )?(.+)$", prompt, re.M)
        return (found.group(1) if found else "No passage.").strip() + " [1]"
