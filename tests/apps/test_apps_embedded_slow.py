"""End to end with the embedded model (SmolLM2-135M GGUF on llama.cpp): every app answers valid
JSON through the Python API and the CLI. Quality is not asserted — the 135M model is weak — only
that the pipelines hold together and their output validates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medmllm.apps import APPS, run_app
from medmllm.errors import UnsupportedInputError
from tests.engines import require_llama_cpp

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gen():
    require_llama_cpp()
    from medmllm.models.generator import load_generator

    g = load_generator("llamacpp", n_ctx=4096, n_threads=1)  # robust on a shared machine
    yield g
    g.close()


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory):
    import os

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("MEDMLLM_HOME")
    os.environ["MEDMLLM_HOME"] = str(home)

    from medmllm.rag.index import open_index
    from medmllm.rag.starter import build_starter_index

    build_starter_index(kind="bm25", progress=False)
    yield open_index("starter")
    if old is not None:
        os.environ["MEDMLLM_HOME"] = old


def _valid(name: str, out) -> dict:
    data = json.loads(out.model_dump_json())
    APPS.get(name).response.model_validate(data)
    return data


def test_diagnosis(gen, starter) -> None:
    case = (
        "62-year-old man with type 2 diabetes, two hours of crushing chest pain radiating to "
        "the left arm, sweating, BP 150/90, HR 104."
    )
    data = _valid("diagnosis", run_app("diagnosis", {"case": case}, gen, starter))
    assert data["differential"] and data["citations"]


def test_report_dialogue_and_image_error(gen, shared_data: Path, tmp_path: Path) -> None:
    from medmllm.apps.report import load_mts_dialog

    row = load_mts_dialog(
        shared_data / "train" / "mts_dialog" / "mts_dialog_train_val.jsonl", limit=1
    )[0]
    data = _valid(
        "report",
        run_app("report", {"text": row["dialogue"], "section": row["section_header"]}, gen),
    )
    assert data["text"]
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (8, 8)).save(image)
    with pytest.raises(UnsupportedInputError, match="text-only"):
        run_app("report", {"image": str(image)}, gen)


def test_education(gen, starter) -> None:
    data = _valid(
        "education",
        run_app(
            "education", {"topic": "type 2 diabetes metformin", "n_questions": 1}, gen, starter
        ),
    )
    assert len(data["items"][0]["options"]) == 4 and data["citations"]


def test_mental_health(gen) -> None:
    data = _valid(
        "mental_health", run_app("mental_health", {"message": "I have been stressed at work"}, gen)
    )
    assert data["reply"] and not data["crisis"]["flagged"]
    crisis = _valid(
        "mental_health", run_app("mental_health", {"message": "I want to kill myself"}, gen)
    )
    assert crisis["source"] == "crisis_protocol"


def test_surgery(gen, starter) -> None:
    data = _valid(
        "surgery",
        run_app(
            "surgery",
            {"action": "ask", "question": "When should antibiotics be given?"},
            gen,
            starter,
        ),
    )
    assert data["answer"] and data["citations"]
    assert run_app("surgery", {"action": "start", "case_id": "slow-1"}, gen).phase == "sign_in"


def test_agent_constrained_call(gen) -> None:
    from medmllm.agent.loop import Agent, AgentConfig
    from medmllm.agent.tools import TOOLS, builtin_tools

    builtin_tools()
    tools = [TOOLS.get(n) for n in ("bmi", "gcs", "cockcroft_gault")]
    out = Agent(gen, tools, AgentConfig(max_steps=2)).run(
        "A man weighs 80 kg and is 180 cm tall. What is his BMI?"
    )
    assert out.trace and out.trace[0].action in {
        "bmi",
        "gcs",
        "cockcroft_gault",
        "final_answer",
        "ask_user",
    }
    assert all(s.action != "invalid" for s in out.trace)  # constrained: every step parses


CLI_CASES = {
    "diagnosis": ["45-year-old woman with fever, dysuria and flank pain"],
    "report": [
        "Doctor: What brings you in? Patient: A dry cough for two weeks.",
        "-s",
        "section=CC",
    ],
    "education": [
        "Metformin is the usual first medicine for type 2 diabetes.",
        "-s",
        "n_questions=1",
    ],
    "mental_health": ["I feel nervous before my surgery"],
    "surgery": ["-s", "action=start", "-s", "case_id=cli-1"],
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_app_end_to_end(name: str, tmp_path: Path) -> None:
    require_llama_cpp()
    import os

    args = list(CLI_CASES[name])
    if name == "education":  # the text is a passage here, not a topic
        args = ["--set", f"passage={args[0]}", *args[1:]]
    out = subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", "app", name, *args, "-b", "llamacpp"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MEDMLLM_HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    APPS.get(name).response.model_validate(json.loads(out.stdout))
