"""The runner on synthetic tasks with test doubles (no model, no network)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medmllm.errors import InvalidRequestError, UnsupportedInputError
from medmllm.eval.runner import EvalOptions, run_eval
from medmllm.eval.task import Task, load_task
from medmllm.models.generator import LoglikelihoodRequest
from tests.eval.eval_helpers import MC_TASK, write_task
from tests.fakes import FakeGenerator

GOLDS = "AAAAAABBBCCD"


def position_score(request: LoglikelihoodRequest) -> float:
    """Prefers whichever option sits at letter A (+2) and knows the answer a bit (+1.5)."""
    i = int(re.search(r"symptom (\d+)", request.context).group(1))
    letter = request.continuation.strip()
    text = re.search(rf"^{letter}\. (.*)$", request.context, re.M).group(1)
    return (2.0 if letter == "A" else 0.0) + (1.5 if text == f"option {GOLDS[i]}{i}" else 0)


def position_biased(fail_after: int | None = None) -> FakeGenerator:
    return FakeGenerator(scores=position_score, model="position-biased", fail_after=fail_after)


def _task(tmp_path: Path, mcqa_file: Path) -> Task:
    return Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))


def test_mc_reports_baseline_distribution_and_calibration(tmp_path, mcqa_file) -> None:
    res = run_eval([_task(tmp_path, mcqa_file)], position_biased(), cache_path=":memory:")
    s = res["tasks"]["synth"]
    assert s["n"] == 12
    assert s["metrics"]["accuracy"]["value"] == pytest.approx(0.5)  # = share of gold "A"
    assert s["majority_baseline"]["accuracy"]["value"] == pytest.approx(0.5)
    assert s["majority_baseline"]["accuracy"]["label"] == "A"
    assert s["prediction_distribution"] == {"A": 12}
    assert s["gold_distribution"] == {"A": 6, "B": 3, "C": 2, "D": 1}
    assert "acc_norm" in s["metrics"] and "ci" in s["metrics"]["accuracy"]
    assert 0 <= s["calibration"]["ece"] <= 1 and s["calibration"]["bins"]


def test_option_rotation_debiasing_removes_position_bias(tmp_path, mcqa_file) -> None:
    model = position_biased()
    res = run_eval(
        [_task(tmp_path, mcqa_file)], model, EvalOptions(debias=True), cache_path=":memory:"
    )
    s = res["tasks"]["synth"]
    assert s["metrics"]["accuracy"]["value"] == pytest.approx(0.5)
    deb = s["debiased"]
    assert deb["metrics"]["accuracy"]["value"] == pytest.approx(1.0)
    assert deb["prediction_distribution"] == {"A": 6, "B": 3, "C": 2, "D": 1}
    assert deb["rotations"] == 4 and deb["cost_factor"] == 4
    assert model.n_scored == 12 * 4 * 4  # items × rotations × options
    assert s["timing"]["model_calls"] == 12 * 16


def test_killed_run_resumes_with_identical_results(tmp_path, mcqa_file) -> None:
    cache = tmp_path / "calls.sqlite"
    full = run_eval(
        [_task(tmp_path, mcqa_file)],
        position_biased(),
        EvalOptions(batch_size=2),
        cache_path=tmp_path / "other.sqlite",
    )
    with pytest.raises(KeyboardInterrupt):
        run_eval(
            [_task(tmp_path, mcqa_file)],
            position_biased(fail_after=20),
            EvalOptions(batch_size=2),
            cache_path=cache,
        )
    resumed_model = position_biased()
    resumed = run_eval(
        [_task(tmp_path, mcqa_file)], resumed_model, EvalOptions(batch_size=2), cache_path=cache
    )
    assert resumed["run"]["cache"]["hits"] == 16  # the two batches finished before the kill
    assert resumed_model.n_scored == 48 - 16  # nothing computed twice
    strip = lambda r: {k: v for k, v in r["tasks"]["synth"].items() if k != "timing"}  # noqa: E731
    assert strip(resumed) == strip(full)
    again = position_biased()
    run_eval([_task(tmp_path, mcqa_file)], again, EvalOptions(batch_size=2), cache_path=cache)
    assert again.n_scored == 0


def test_fewshot_prefix_is_shared_and_exemplars_excluded(tmp_path, mcqa_file, scripted_generator):
    gen = scripted_generator(scores={" A": -1.0})
    res = run_eval([_task(tmp_path, mcqa_file)], gen, EvalOptions(fewshot=2), cache_path=":memory:")
    s = res["tasks"]["synth"]
    assert s["fewshot"] == 2 and s["fewshot_ids"] == ["q0", "q1"] and s["n"] == 10
    contexts = [r.context for call in gen.calls for r in call[1]]
    prefix = contexts[0][: contexts[0].rindex("Question: ")]  # everything before the item
    assert prefix.count("Answer: A\n\n") == 2 and all(c.startswith(prefix) for c in contexts)


def test_generative_mode_counts_invalid(tmp_path, mcqa_file) -> None:
    gen = FakeGenerator(["The answer is A.", "no idea", "B) option", "hmm"])
    res = run_eval(
        [_task(tmp_path, mcqa_file)], gen, EvalOptions(mode="gen", limit=8), cache_path=":memory:"
    )
    s = res["tasks"]["synth"]
    assert s["invalid"] == 4
    assert s["prediction_distribution"] == {"A": 2, "B": 2, "invalid": 4}
    assert "Answer with the letter" in gen.calls[0][1][0]["content"]


def test_self_consistency_majority_vote(tmp_path, mcqa_file) -> None:
    gen = FakeGenerator(["so the answer is B", "the answer is B", "The answer is C"])
    res = run_eval(
        [_task(tmp_path, mcqa_file)],
        gen,
        EvalOptions(mode="cot", samples=3, limit=2),
        cache_path=":memory:",
    )
    s = res["tasks"]["synth"]
    assert s["prediction_distribution"] == {"B": 2}
    assert s["items"][0]["probs"] == {
        "A": 0.0,
        "B": pytest.approx(2 / 3, abs=1e-5),
        "C": pytest.approx(1 / 3, abs=1e-5),
        "D": 0.0,
    }
    seeds = [c[2]["seed"] for c in gen.calls[:3]]
    assert seeds == [1234, 1235, 1236] and gen.calls[0][2]["temperature"] == 0.7
    assert "step by step" in gen.calls[0][1][0]["content"]
    assert "calibration" in s


def test_rag_queries_question_only(tmp_path, mcqa_file, scripted_generator) -> None:
    class Hit:
        def __init__(self, text):
            self.chunk = type("C", (), {"text": text})()

    class Retriever:
        def __init__(self):
            self.queries = []

        def search(self, query, k):
            self.queries.append(query)
            return [Hit(f"passage {j} about {query[:10]}") for j in range(k)]

    retriever = Retriever()
    gen = scripted_generator(scores={" A": -1.0})
    res = run_eval(
        [_task(tmp_path, mcqa_file)],
        gen,
        EvalOptions(limit=2, rag_k=2),
        cache_path=":memory:",
        retriever=retriever,
    )
    assert res["tasks"]["synth"]["rag"] is True
    assert (
        retriever.queries[0].startswith("A 30-year-old man")
        and "option" not in retriever.queries[0]
    )
    assert "[1] passage 0" in gen.calls[0][1][0].context


def test_bias_swaps_flip_rate(tmp_path, mcqa_file, scripted_generator) -> None:
    def sex_sensitive(r: LoglikelihoodRequest) -> float:
        return position_score(r) + (5.0 if "woman" in r.context and r.continuation == " B" else 0)

    res = run_eval(
        [_task(tmp_path, mcqa_file)],
        FakeGenerator(scores=sex_sensitive),
        EvalOptions(bias=True),
        cache_path=":memory:",
    )
    bias = res["tasks"]["synth"]["bias"]
    assert bias["sex"]["n"] == 12 and bias["sex"]["flip_rate"]["value"] == 1.0
    assert bias["sex"]["prediction_distribution"]["female"] == {"B": 12}
    assert bias["age"]["n"] == 12 and bias["age"]["flip_rate"]["value"] == 0.0
    assert bias["race_ethnicity"]["accuracy_gap"] == 0.0


def test_vqa_needs_an_image_model(bench_dir, monkeypatch) -> None:
    monkeypatch.setenv("MEDMLLM_SLAKE_DIR", str(bench_dir / "slake"))
    with pytest.raises(UnsupportedInputError, match="text-only"):
        run_eval(["slake"], FakeGenerator(["yes"]), EvalOptions(mode="gen"), cache_path=":memory:")
    with pytest.raises(UnsupportedInputError, match="text-only"):
        run_eval(["slake"], FakeGenerator(), EvalOptions(mode="mc"), cache_path=":memory:")
    # mc mode scores a VQA item's options with its image: SLAKE rows have none
    with pytest.raises(InvalidRequestError, match=r"no options.*--mode gen"):
        images = FakeGenerator(supports_images=True)
        run_eval(["slake"], images, EvalOptions(mode="mc"), cache_path=":memory:")


def test_vqa_and_report_tasks(bench_dir, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEDMLLM_SLAKE_DIR", str(bench_dir / "slake"))
    monkeypatch.setenv("MEDMLLM_IUXRAY_DIR", str(bench_dir / "iuxray"))
    (bench_dir / "slake/imgs/xmlab2/source.jpg").write_bytes(b"\x89PNG broken")
    gen = FakeGenerator(
        ["Yes", "The right lung.", "The lungs are clear. A dragon is seen."], supports_images=True
    )
    res = run_eval(
        ["slake", "report_generation"],
        gen,
        EvalOptions(mode="gen"),
        cache_path=":memory:",
        out_dir=tmp_path / "out",
    )
    slake = res["tasks"]["slake"]
    assert slake["n"] == 2 and slake["skipped"] == {"corrupt_image": 1} and slake["filtered"] == 1
    assert slake["metrics"]["vqa_closed_accuracy"]["value"] == 1.0
    assert slake["metrics"]["vqa_open_accuracy"]["value"] == 1.0
    assert gen.images[0][0].endswith("source.jpg")
    rep = res["tasks"]["report_generation"]
    assert {"bleu1", "bleu4", "sacrebleu", "rouge_l", "meteor", "hallucination"} <= set(
        rep["metrics"]
    )
    assert rep["hallucination_method"] in ("lexical", "rag.grounding")
    assert 0 < rep["metrics"]["hallucination"]["value"] <= 1
    assert rep["majority_baseline"]["rouge_l"]["label"]
    saved = json.loads((tmp_path / "out/results.json").read_text())
    assert saved["tasks"]["slake"]["metrics"] == slake["metrics"]
    assert "<img" in (tmp_path / "out/report.html").read_text()


def test_results_record_config_versions_and_items(tmp_path, mcqa_file, scripted_generator):
    res = run_eval(
        [_task(tmp_path, mcqa_file)],
        scripted_generator(scores={" A": -1.0}),
        EvalOptions(limit=3, seed=7),
        cache_path=":memory:",
        out_dir=tmp_path / "o",
    )
    assert res["config"]["seed"] == 7 and res["config"]["limit"] == 3
    assert res["environment"]["versions"]["medmllm"]
    assert "git_commit" in res["environment"]
    items = res["tasks"]["synth"]["items"]
    assert [i["id"] for i in items] == ["q0", "q1", "q2"] and items[0]["correct"] is True
    assert set(items[0]["probs"]) == {"A", "B", "C", "D"}


def test_bad_options() -> None:
    with pytest.raises(InvalidRequestError, match="--mode"):
        EvalOptions(mode="zeroshot")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="--limit"):
        EvalOptions(limit=0)


def test_pubmedqa_without_context(tmp_path, scripted_generator) -> None:
    path = tmp_path / "pq.jsonl"
    path.write_text(
        json.dumps(
            {
                "pmid": "1",
                "question": "Does X work?",
                "contexts": ["ABSTRACT"],
                "final_decision": "no",
            }
        )
        + "\n"
    )
    task = load_task("pubmedqa")
    task.data_override = [path]
    gen = scripted_generator(scores={" no": -0.1})
    res = run_eval([task], gen, EvalOptions(include_context=False), cache_path=":memory:")
    assert res["tasks"]["pubmedqa"]["metrics"]["accuracy"]["value"] == 1.0
    assert "ABSTRACT" not in gen.calls[0][1][0].context
    assert [r.continuation for r in gen.calls[0][1]] == [" yes", " no", " maybe"]


def test_mc_items_are_scored_longest_first_and_returned_in_file_order(
    tmp_path, mcqa_file, scripted_generator
) -> None:
    """Length-sorted scoring must not reorder predictions; an empty item list is fine too."""
    from medmllm.eval.cache import CachedGenerator, CallCache
    from medmllm.eval.runner import Evaluator

    task = _task(tmp_path, mcqa_file)
    gen = scripted_generator(scores={" A": -1.0})
    res = run_eval([task], gen, EvalOptions(batch_size=3), cache_path=":memory:")
    ids = [row["id"] for row in res["tasks"]["synth"]["items"]]
    assert ids == [json.loads(line)["id"] for line in mcqa_file.read_text().splitlines()]
    evaluator = Evaluator(CachedGenerator(gen, CallCache(None)), EvalOptions())
    assert evaluator.predict(task, [], []) == []
