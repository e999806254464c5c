"""Issue 13: tokens are counted before the model is called; chat trims old turns, RAG packs the
passages that fit, a question that cannot fit is refused with the limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medmllm.assistant import Assistant
from medmllm.errors import ContextLengthError
from medmllm.rag.chunk import Chunk
from medmllm.rag.retriever import Hit
from tests.models.window_backend import WindowGenerator

REPO = Path(__file__).resolve().parents[2]


def test_a_question_that_cannot_fit_is_refused_with_the_limit() -> None:
    gen = WindowGenerator(window=60)
    with pytest.raises(ContextLengthError, match="context window of 60 tokens"):
        Assistant(gen).ask("why " * 80, max_tokens=10)
    assert gen.prompts == []  # refused before the model was called


def test_chat_drops_the_oldest_turns_instead_of_dying() -> None:
    gen = WindowGenerator(window=120)
    bot = Assistant(gen, keep_history=True)
    dropped = []
    for turn in range(12):
        answer = bot.ask(
            f"question number {turn} about my persistent cough and fever", max_tokens=16
        )
        dropped.append(answer.extra.get("history_dropped", 0))
    assert sum(dropped) > 0 and dropped[0] == 0
    last_prompt = gen.prompts[-1]
    assert gen.count_tokens(last_prompt) + 16 <= 120
    assert last_prompt[-1].content.startswith("question number 11")  # the new question stays
    assert any("question number 10" in m.content for m in last_prompt)  # the newest turns stay


class _Ranked:
    def __init__(self, n: int, words: int) -> None:
        self.hits = [
            Hit(
                doc_id=f"d{i}",
                chunk=Chunk(
                    id=f"d{i}:0",
                    doc_id=f"d{i}",
                    text=" ".join([f"passage{i}"] * words),
                    start=0,
                    end=words,
                ),
                score=1.0 / (i + 1),
                source="synthetic",
            )
            for i in range(n)
        ]

    def search(self, query: str, k: int = 5) -> list[Hit]:
        return self.hits[:k]


def test_rag_packs_the_best_passages_that_fit_and_counts_the_rest() -> None:
    gen = WindowGenerator(window=400)
    answer = Assistant(gen, retriever=_Ranked(10, 60), k=10).ask("cough?", max_tokens=20)
    kept = [p["doc_id"] for p in answer.extra["passages"]]
    assert 0 < len(kept) < 10 and kept == [f"d{i}" for i in range(len(kept))]  # best first
    assert answer.extra["passages_dropped"] == 10 - len(kept)
    assert gen.count_tokens(gen.prompts[-1]) + 20 <= 400


def test_everything_fits_nothing_reported() -> None:
    answer = Assistant(WindowGenerator(window=4000), retriever=_Ranked(3, 5), k=3).ask("x?")
    assert "passages_dropped" not in answer.extra and "history_dropped" not in answer.extra


_CHAT = """
import sys
from medmllm.cli.main import main
from medmllm.models.generator import BACKENDS
from tests.models.window_backend import WindowGenerator
BACKENDS.register("window-test", WindowGenerator)
sys.exit(main(["chat", "--backend", "window-test", "--max-tokens", "16"]))
"""


def test_chat_cli_survives_a_message_too_long_and_keeps_going(isolated_home: Path) -> None:
    lines = ["hello there", "why " * 200, "and now a short one", "/exit"]
    result = subprocess.run(
        [sys.executable, "-c", _CHAT], input="\n".join(lines) + "\n", capture_output=True,
        text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"},
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Drink water and rest.") == 2
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    assert "context window of 120 tokens" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_hf_backend_counts_tokens_and_refuses_before_generating() -> None:
    """The embedded model through transformers: its window, its chat-template token count."""
    from medmllm.models.generator import load_generator

    gen = load_generator("hf")
    try:
        window = gen.context_window()
        assert window is not None and window >= 2048
        short = gen.count_tokens([{"role": "user", "content": "What is HbA1c?"}])
        assert short is not None and 5 < short < 60
        with pytest.raises(ContextLengthError, match=f"context window of {window} tokens"):
            gen.chat([{"role": "user", "content": "cough " * (window + 10)}], max_tokens=8)
    finally:
        gen.close()
