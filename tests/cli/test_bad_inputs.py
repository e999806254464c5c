"""Acceptance (issue 13): every CLI command against a table of bad inputs, as a user runs them.

Each case is a subprocess (``python -m medmllm.cli.main …``). It must exit 2 (or 130), print
exactly one ``error:`` line, and no ``Traceback`` anywhere in stdout or stderr. No case loads a
model: options and inputs are validated before any model or index work, and where a generator is
needed the fake test backend stands in. Cases run in parallel threads to keep the file fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE = "tests.fakes:FakeGenerator"
BUILTIN = "medmcqa"

TASK = """\
name: {name}
output_type: multiple_choice
dataset:
  path: {path}
prompt:
  template: |-
    Question: {{{{ question }}}}
    {{{{ options_text }}}}
    Answer:
metrics: [accuracy]
"""

# (case id, argv with {placeholders}, environment override or None)
CASES: list[tuple[str, list[str], dict[str, str] | None]] = [
    # -- usage errors of the CLI framework --------------------------------------------------
    ("unknown-command", ["bogus"], None),
    ("unknown-subcommand", ["index", "buildd", "x"], None),
    ("ask-unknown-option", ["ask", "hi", "--bogus"], None),
    ("ask-missing-argument", ["ask"], None),
    ("ask-max-tokens-abc", ["ask", "hi", "--max-tokens", "abc"], None),
    ("ask-max-tokens-missing-value", ["ask", "hi", "--max-tokens"], None),
    ("ask-temperature-abc", ["ask", "hi", "--temperature", "warm"], None),
    ("ask-k-abc", ["ask", "hi", "--index", "x", "-k", "abc"], None),
    ("ask-extra-argument", ["ask", "hi", "there"], None),
    ("chat-max-tokens-abc", ["chat", "--max-tokens", "abc"], None),
    ("models-unknown-option", ["models", "--bogus"], None),
    ("index-search-missing", ["index", "search"], None),
    ("index-search-k-abc", ["index", "search", "x", "q", "-k", "abc"], None),
    ("index-build-missing-name", ["index", "build"], None),
    ("index-build-missing-from", ["index", "build", "n"], None),
    ("index-rm-missing", ["index", "rm"], None),
    ("eval-limit-abc", ["eval", "--tasks", BUILTIN, "--limit", "abc"], None),
    ("eval-fewshot-abc", ["eval", "--tasks", BUILTIN, "--fewshot", "x"], None),
    ("eval-seed-abc", ["eval", "--tasks", BUILTIN, "--seed", "x"], None),
    ("eval-limit-no-value", ["eval", "--tasks", BUILTIN, "--limit"], None),
    ("eval-report-no-argument", ["eval", "report"], None),
    ("eval-judge-missing-task", ["eval", "judge", "{tmp}/run"], None),
    ("eval-import-missing-key", ["eval", "import-sheets", "{tmp}/s.csv"], None),
    ("experiment-missing", ["experiment"], None),
    ("train-unknown-option", ["train", "--bogus"], None),
    # -- names starting with '-' ------------------------------------------------------------
    ("index-build-dash-name-option", ["index", "build", "-weird", "--from", "{corpus}"], None),
    ("index-build-dash-name", ["index", "build", "--from", "{corpus}", "--", "-weird"], None),
    ("index-search-dash-name", ["index", "search", "--", "-x", "query"], None),
    ("index-rm-dash-name", ["index", "rm", "--", "-x"], None),
    ("eval-tasks-dash", ["eval", "--tasks", "-x"], None),
    # -- numbers out of range, checked before any work ----------------------------------------
    ("ask-max-tokens-0", ["ask", "hi", "--max-tokens", "0"], None),
    ("ask-max-tokens-negative", ["ask", "hi", "--max-tokens", "-5"], None),
    ("ask-temperature-negative", ["ask", "hi", "--temperature", "-1"], None),
    ("ask-k-0", ["ask", "hi", "--index", "starter", "-k", "0"], None),
    ("ask-empty-question", ["ask", "   "], None),
    ("chat-max-tokens-0", ["chat", "--max-tokens", "0"], None),
    ("index-search-k-0", ["index", "search", "x", "q", "-k", "0"], None),
    ("index-search-empty-query", ["index", "search", "x", " "], None),
    ("index-search-unknown", ["index", "search", "nosuch", "q"], None),
    ("index-rm-unknown", ["index", "rm", "nosuch"], None),
    (
        "index-chunk-tokens-0",
        ["index", "build", "n", "--from", "{corpus}", "--chunk-tokens", "0"],
        None,
    ),
    (
        "index-chunk-overlap-neg",
        ["index", "build", "n", "--from", "{corpus}", "--chunk-overlap", "-3"],
        None,
    ),
    (
        "index-batch-size-0",
        ["index", "build", "n", "--from", "{corpus}", "--batch-size", "0"],
        None,
    ),
    ("index-unknown-retriever", ["index", "build", "n", "--from", "{corpus}", "-r", "bm26"], None),
    ("eval-limit-0", ["eval", "--tasks", BUILTIN, "--limit", "0"], None),
    ("eval-limit-negative", ["eval", "--tasks", BUILTIN, "--limit", "-1"], None),
    ("eval-fewshot-negative", ["eval", "--tasks", BUILTIN, "--fewshot", "-1"], None),
    ("eval-seed-negative", ["eval", "--tasks", BUILTIN, "--seed", "-1"], None),
    (
        "eval-gen-max-tokens-0",
        ["eval", "--tasks", BUILTIN, "--mode", "gen", "--max-tokens", "0"],
        None,
    ),
    ("eval-samples-0", ["eval", "--tasks", BUILTIN, "--samples", "0"], None),
    ("eval-batch-size-0", ["eval", "--tasks", BUILTIN, "--batch-size", "0"], None),
    ("eval-rag-k-0", ["eval", "--tasks", BUILTIN, "--rag", "x", "--rag-k", "0"], None),
    ("eval-unknown-mode", ["eval", "--tasks", BUILTIN, "--mode", "xyz"], None),
    ("eval-unknown-task", ["eval", "--tasks", "medmcqb"], None),
    ("eval-no-task", ["eval"], None),
    ("eval-judge-limit-0", ["eval", "judge", "{run}", "--task", "synth", "--limit", "0"], None),
    (
        "eval-judge-limit-negative",
        ["eval", "judge", "{run}", "--task", "synth", "--limit", "-1"],
        None,
    ),
    (
        "eval-export-limit-0",
        [
            "eval",
            "export-sheet",
            "{run}",
            "--task",
            "synth",
            "--limit",
            "0",
            "-o",
            "{tmp}/out/s.csv",
        ],
        None,
    ),
    ("experiment-unknown", ["experiment", "vision-encoder"], None),
    ("experiment-bad-preset", ["experiment", "alignment", "--preset", "tpu"], None),
    ("experiment-bad-phase", ["experiment", "alignment", "--phase", "test"], None),
    ("experiment-phase-not-multimodal", ["experiment", "training-stages", "--phase", "tune"], None),
    # -- environment and file-system faults ----------------------------------------------------
    ("home-is-a-file-index-list", ["index", "list"], {"MEDMLLM_HOME": "{afile}"}),
    ("home-under-a-file", ["index", "list"], {"MEDMLLM_HOME": "{afile}/sub"}),
    ("home-unwritable", ["index", "list"], {"MEDMLLM_HOME": "/proc/medmllm-home"}),
    (
        "home-is-a-file-build",
        ["index", "build", "n", "--from", "{corpus}", "-r", "bm25"],
        {"MEDMLLM_HOME": "{afile}"},
    ),
    (
        "home-is-a-file-eval",
        ["eval", "--task-file", "{task}", "--backend", FAKE],
        {"MEDMLLM_HOME": "{afile}"},
    ),
    (
        "eval-out-is-a-file",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "-o", "{afile}"],
        None,
    ),
    (
        "eval-out-under-a-file",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "-o", "{afile}/run"],
        None,
    ),
    (
        "eval-out-unwritable",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "-o", "/proc/run"],
        None,
    ),
    (
        "eval-data-is-a-folder",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "--data", "{adir}"],
        None,
    ),
    (
        "eval-data-missing",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "--data", "{tmp}/nope.jsonl"],
        None,
    ),
    ("report-out-is-a-folder", ["eval", "report", "{run}", "-o", "{adir}"], None),
    # -- malformed inputs -------------------------------------------------------------------------
    ("index-binary-jsonl", ["index", "build", "n", "--from", "{binary}"], None),
    ("index-empty-jsonl", ["index", "build", "n", "--from", "{empty}"], None),
    ("index-not-json", ["index", "build", "n", "--from", "{notjson}"], None),
    ("index-json-array-rows", ["index", "build", "n", "--from", "{arrays}"], None),
    ("index-missing-source", ["index", "build", "n", "--from", "{tmp}/nope.jsonl"], None),
    ("index-unknown-suffix", ["index", "build", "n", "--from", "{csv}"], None),
    (
        "index-unknown-format",
        ["index", "build", "n", "--from", "{corpus}", "--format", "pdfs"],
        None,
    ),
    (
        "index-wrong-text-field",
        ["index", "build", "n", "--from", "{corpus}", "--text-field", "body"],
        None,
    ),
    ("index-empty-folder", ["index", "build", "n", "--from", "{adir}"], None),
    ("index-binary-folder", ["index", "build", "n", "--from", "{bindir}"], None),
    ("eval-task-file-binary", ["eval", "--task-file", "{binary_yaml}"], None),
    ("eval-task-file-empty", ["eval", "--task-file", "{empty_yaml}"], None),
    ("eval-task-file-syntax", ["eval", "--task-file", "{bad_yaml}"], None),
    ("eval-task-file-extra-key", ["eval", "--task-file", "{extra_yaml}"], None),
    ("eval-task-file-missing", ["eval", "--task-file", "{tmp}/nope.yaml"], None),
    (
        "eval-task-file-builtin-name",
        ["eval", "--task-file", "{shadow_task}", "--backend", FAKE],
        None,
    ),
    (
        "eval-data-binary",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "--data", "{binary}"],
        None,
    ),
    (
        "eval-data-empty",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "--data", "{empty}"],
        None,
    ),
    (
        "eval-data-not-json",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "--data", "{notjson}"],
        None,
    ),
    ("eval-data-two-tasks", ["eval", "--tasks", "medmcqa,pubmedqa", "--data", "{corpus}"], None),
    (
        "eval-fewshot-over-pool",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "--fewshot", "500", "-q"],
        None,
    ),
    (
        "eval-backend-no-module",
        ["eval", "--task-file", "{task}", "--backend", "nosuchmod:Gen"],
        None,
    ),
    (
        "eval-backend-no-class",
        ["eval", "--task-file", "{task}", "--backend", "tests.fakes:Nope"],
        None,
    ),
    (
        "eval-backend-not-generator",
        ["eval", "--task-file", "{task}", "--backend", "json:JSONDecoder"],
        None,
    ),
    (
        "eval-backend-not-a-class",
        ["eval", "--task-file", "{task}", "--backend", "os.path:join"],
        None,
    ),
    ("ask-backend-typo", ["ask", "hi", "--backend", "llamacp"], None),
    ("eval-report-wrong-shape", ["eval", "report", "{wrong_run}"], None),
    ("eval-report-tasks-not-dicts", ["eval", "report", "{wrong_run2}"], None),
    ("eval-report-not-json", ["eval", "report", "{notjson_run}"], None),
    ("eval-report-missing", ["eval", "report", "{tmp}/nope"], None),
    ("eval-judge-wrong-shape", ["eval", "judge", "{wrong_run2}", "--task", "synth"], None),
    ("eval-judge-unknown-task", ["eval", "judge", "{run}", "--task", "nosuch"], None),
    (
        "eval-export-unknown-task",
        ["eval", "export-sheet", "{run}", "--task", "nosuch", "-o", "{tmp}/out/s2.csv"],
        None,
    ),
    (
        "eval-out-holds-another-run",
        ["eval", "--task-file", "{task}", "--backend", FAKE, "-o", "{run}"],
        None,
    ),
    (
        "export-two-systems-same-name",
        [
            "eval",
            "export-sheet",
            "{run}",
            "{run_twin}",
            "--task",
            "synth",
            "-o",
            "{tmp}/out/s3.csv",
        ],
        None,
    ),
    (
        "export-sheet-exists",
        ["eval", "export-sheet", "{run}", "--task", "synth", "-o", "{sheet}"],
        None,
    ),
    ("import-key-not-json", ["eval", "import-sheets", "{sheet}", "--key", "{notjson}"], None),
    ("import-key-wrong-shape", ["eval", "import-sheets", "{sheet}", "--key", "{empty_obj}"], None),
    ("import-key-missing", ["eval", "import-sheets", "{sheet}", "--key", "{tmp}/nope.json"], None),
    ("import-sheet-missing", ["eval", "import-sheets", "{tmp}/nope.csv", "--key", "{key}"], None),
    ("import-sheet-bad-columns", ["eval", "import-sheets", "{bad_sheet}", "--key", "{key}"], None),
    (
        "import-sheet-bad-score",
        ["eval", "import-sheets", "{bad_score_sheet}", "--key", "{key}"],
        None,
    ),
    ("import-sheet-binary", ["eval", "import-sheets", "{binary}", "--key", "{key}"], None),
    ("import-sheet-blank", ["eval", "import-sheets", "{blank_sheet}", "--key", "{key}"], None),
    (
        "import-sheet-unknown-ids",
        ["eval", "import-sheets", "{foreign_sheet}", "--key", "{key}"],
        None,
    ),
]


def _write_fixtures(tmp: Path) -> dict[str, str]:
    """Synthetic bad (and a few good) inputs; returns the placeholder values."""
    p: dict[str, Path] = {"tmp": tmp}
    p["corpus"] = tmp / "corpus.jsonl"
    p["corpus"].write_text('{"id": "a", "text": "Asthma is treated with inhalers."}\n')
    data = tmp / "q.jsonl"
    with data.open("w") as fh:
        for i in range(6):
            row = {"id": f"q{i}", "question": f"Question {i}?", "options": {"A": "x", "B": "y"},
                   "answer": "AB"[i % 2]}  # fmt: skip
            fh.write(json.dumps(row) + "\n")
    p["task"] = tmp / "synth.yaml"
    p["task"].write_text(TASK.format(name="synth", path=data))
    p["shadow_task"] = tmp / "shadow.yaml"
    p["shadow_task"].write_text(TASK.format(name=BUILTIN, path=data))
    p["afile"] = tmp / "a-file"
    p["afile"].write_text("not a folder")
    p["adir"] = tmp / "a-dir"
    p["adir"].mkdir()
    p["bindir"] = tmp / "bin-dir"
    p["bindir"].mkdir()
    (p["bindir"] / "x.txt").write_bytes(b"\x00\x01\x02binary")
    p["binary"] = tmp / "binary.jsonl"
    p["binary"].write_bytes(bytes(range(256)) * 4)
    p["binary_yaml"] = tmp / "binary.yaml"
    p["binary_yaml"].write_bytes(b"\xff\xfe\x00\x00" + bytes(range(200)))
    p["empty"] = tmp / "empty.jsonl"
    p["empty"].write_text("")
    p["empty_yaml"] = tmp / "empty.yaml"
    p["empty_yaml"].write_text("")
    p["bad_yaml"] = tmp / "bad.yaml"
    p["bad_yaml"].write_text("name: [unclosed\n")
    p["extra_yaml"] = tmp / "extra.yaml"
    p["extra_yaml"].write_text(TASK.format(name="extra", path=data) + "colour: blue\n")
    p["notjson"] = tmp / "notjson.jsonl"
    p["notjson"].write_text("this is not json\n")
    p["arrays"] = tmp / "arrays.jsonl"
    p["arrays"].write_text("[1, 2]\n")
    p["csv"] = tmp / "corpus.csv"
    p["csv"].write_text("id,text\na,b\n")
    p["empty_obj"] = tmp / "empty-obj.json"
    p["empty_obj"].write_text("{}")
    # a small generative run of the synthetic task, written by hand
    p["run"] = tmp / "run"
    p["run"].mkdir()
    items = [{"id": f"q{i}", "gold": "A", "pred": "A", "output": "A", "correct": True}
             for i in range(3)]  # fmt: skip
    section = {"task": "synth", "n": 3, "items": items, "metrics": {}}
    results = {"schema_version": 1, "model": {"backend": "fake", "model": "m"}, "config": {},
               "environment": {}, "tasks": {"synth": section}}  # fmt: skip
    (p["run"] / "results.json").write_text(json.dumps(results))
    for name, content in (
        ("wrong_run", json.dumps({"tasks": []})),
        ("wrong_run2", json.dumps({"tasks": {"synth": 1}})),
        ("notjson_run", "{not json"),
    ):
        p[name] = tmp / name
        p[name].mkdir()
        (p[name] / "results.json").write_text(content)
    p["run_twin"] = tmp / "twin" / "run"
    p["run_twin"].mkdir(parents=True)
    (p["run_twin"] / "results.json").write_text(json.dumps(results))
    p["key"] = tmp / "study.key.json"
    key = {"s1": {"system": "run", "item_id": "q0"}}
    p["key"].write_text(json.dumps({"task": "synth", "seed": 0, "key": key}))
    header = "sheet_id,question,reference,answer,accuracy,completeness,harm,grounding,comment\n"
    p["sheet"] = tmp / "r1.csv"
    p["sheet"].write_text(header + "s1,q,r,a,4,4,5,5,\n")
    p["bad_sheet"] = tmp / "bad.csv"
    p["bad_sheet"].write_text("id,score\ns1,4\n")
    p["bad_score_sheet"] = tmp / "r2.csv"
    p["bad_score_sheet"].write_text(header + "s1,q,r,a,9,4,5,5,\n")
    p["blank_sheet"] = tmp / "r3.csv"
    p["blank_sheet"].write_text(header + "s1,q,r,a,,,,,\n")
    p["foreign_sheet"] = tmp / "r4.csv"
    p["foreign_sheet"].write_text(header + "zz9,q,r,a,4,4,5,5,\n")
    return {k: str(v) for k, v in p.items()}


def _run_case(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["CASE_CWD"],
        timeout=120,
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    values = _write_fixtures(tmp)
    base = dict(os.environ)
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"), base.get("PYTHONPATH", "")])
    base.update(MEDMLLM_HOME=str(tmp / "home"), COLUMNS="200", CASE_CWD=str(tmp))
    base.pop("MEDMLLM_DEBUG", None)

    def job(case: tuple[str, list[str], dict[str, str] | None]):
        name, argv, override = case
        env = dict(base)
        env.update({k: v.format(**values) for k, v in (override or {}).items()})
        env["MEDMLLM_HOME"] = env["MEDMLLM_HOME"].replace(str(tmp / "home"), str(tmp / name))
        return name, _run_case([a.format(**values) for a in argv], env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(job, CASES))
    # everything the cases printed, for `grep Traceback` (MEDMLLM_BAD_INPUTS_LOG keeps it)
    log = Path(os.environ.get("MEDMLLM_BAD_INPUTS_LOG") or tmp / "captured.txt")
    log.write_text(
        "".join(f"== {n}\n{r.stdout}{r.stderr}" for n, r in results.items()), encoding="utf-8"
    )
    return results


def test_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_bad_input(case: str, outcomes: dict[str, subprocess.CompletedProcess]) -> None:
    result = outcomes[case]
    everything = result.stdout + result.stderr
    assert result.returncode in (2, 130), (result.returncode, everything[-3000:])
    assert "Traceback" not in everything, everything[-3000:]
    lines = [ln for ln in everything.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, everything[-3000:]
