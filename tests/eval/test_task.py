"""Task files and loaders: every shipped task validates; each public format loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmllm.errors import ConfigError, DataFormatError, DataNotFoundError, UnknownNameError
from medmllm.eval.task import TASKS, TASKS_DIR, Task, TaskConfig, load_task
from tests.eval.eval_helpers import MC_TASK, write_task

SHIPPED = [
    "medqa",
    "medmcqa",
    "pubmedqa",
    "mmlu_medical",
    "bioasq_yesno",
    "vqa_rad",
    "slake",
    "pathvqa",
    "report_generation",
]


def test_every_shipped_task_file_validates() -> None:
    names = sorted(p.parent.name for p in TASKS_DIR.glob("*/task.yaml"))
    assert names == sorted(SHIPPED)
    for name in names:
        task = load_task(name)
        assert isinstance(task.config, TaskConfig)
        assert task.name == name
        from medmllm.eval.metrics import expand

        assert expand(task.config.metrics)  # every metric name is registered


def test_every_config_field_has_a_description() -> None:
    from medmllm.eval import task as T

    for model in (
        T.TaskConfig,
        T.DatasetSpec,
        T.FieldMap,
        T.PromptSpec,
        T.FewShotSpec,
        T.GenerationSpec,
    ):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_unknown_task_lists_close_names() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean 'medqa'.*Available: .*medmcqa"):
        load_task("medqaa")


def test_malformed_yaml_names_key_and_file(tmp_path: Path) -> None:
    path = write_task(
        tmp_path,
        "name: x\noutput_type: multiple_chioce\ndataset: {path: a.jsonl}\nprompt: {template: q}\n",
    )
    with pytest.raises(ConfigError) as err:
        Task.from_file(path)
    assert "output_type" in str(err.value) and str(path) in str(err.value)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = write_task(
        tmp_path,
        "output_type: generate\ndataset: {path: a.jsonl}\n"
        "prompt: {template: q}\nmetrix: [accuracy]\n",
    )
    with pytest.raises(ConfigError, match="metrix"):
        Task.from_file(path)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write_task(tmp_path, "name: x\n  output_type: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+ is not valid YAML"):
        Task.from_file(path)


def test_missing_field_names_row(tmp_path: Path, mcqa_file: Path) -> None:
    lines = mcqa_file.read_text().splitlines()
    lines[2] = lines[2].replace('"answer"', '"answr"')
    mcqa_file.write_text("\n".join(lines) + "\n")
    task = Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))
    with pytest.raises(DataFormatError, match=r"row 3: missing field 'answer'"):
        task.load_items()


def test_answer_not_among_options(tmp_path: Path, mcqa_file: Path) -> None:
    lines = mcqa_file.read_text().splitlines()
    lines[4] = lines[4].replace('"answer": "A"', '"answer": "E"')
    mcqa_file.write_text("\n".join(lines) + "\n")
    task = Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))
    with pytest.raises(DataFormatError, match=r"row 5: answer 'E' is not among the options"):
        task.load_items()


def test_invalid_json_line(tmp_path: Path, mcqa_file: Path) -> None:
    mcqa_file.write_text(mcqa_file.read_text() + "{not json\n")
    task = Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))
    with pytest.raises(DataFormatError, match=r"\.jsonl:13: not valid JSON"):
        task.load_items()


def test_missing_data_file_hints_flag(tmp_path: Path) -> None:
    task = Task.from_file(write_task(tmp_path, MC_TASK.format(path=tmp_path / "nope.jsonl")))
    with pytest.raises(DataNotFoundError, match="--data"):
        task.load_items()


def test_unset_env_var_in_path() -> None:
    task = load_task("slake")
    with pytest.raises(ConfigError, match="MEDMLLM_SLAKE_DIR"):
        task.data_paths()


def test_fewshot_exemplars_are_removed_from_items(tmp_path: Path, mcqa_file: Path) -> None:
    task = Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))
    task.config.fewshot.n = 3
    items, shots, report = task.load_items(limit=4)
    assert [s.id for s in shots] == ["q0", "q1", "q2"]
    assert [i.id for i in items] == ["q3", "q4", "q5", "q6"]
    assert report.n_rows == 12


def test_mmlu_csv(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMLLM_MMLU_DIR", str(bench_dir / "mmlu"))
    items, _, _ = load_task("mmlu_medical").load_items()
    assert len(items) == 12
    assert items[0].options == {"A": "Femur", "B": "Ulna", "C": "Stapes", "D": "Rib"}
    assert items[0].meta["subject"] == "anatomy" and items[1].answer == "B"
    assert items[-1].meta["subject"] == "professional_medicine"


def test_bioasq_keeps_yesno_only(bench_dir: Path) -> None:
    task = load_task("bioasq_yesno")
    task.data_override = [bench_dir / "bioasq/bioasq_yesno.json"]
    items, _, report = task.load_items()
    assert [i.id for i in items] == ["syn1", "syn2", "syn4"]
    assert [i.answer for i in items] == ["A", "B", "A"]
    assert report.filtered == 1 and "synthetic trial" in items[0].context


def test_slake_english_with_images(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMLLM_SLAKE_DIR", str(bench_dir / "slake"))
    items, _, report = load_task("slake").load_items()
    assert [i.id for i in items] == ["11", "12", "14"]
    assert report.filtered == 1
    assert all(Path(i.image).is_file() for i in items)
    assert items[1].meta["answer_type"] == "OPEN"


def test_pathvqa_records(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMLLM_PATHVQA_DIR", str(bench_dir / "pathvqa"))
    items, _, _ = load_task("pathvqa").load_items()
    assert [i.meta["answer_type"] for i in items] == ["CLOSED", "OPEN", "CLOSED"]
    assert items[0].image.endswith("test_0001.jpg")


def test_iuxray_annotation(bench_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMLLM_IUXRAY_DIR", str(bench_dir / "iuxray"))
    items, _, _ = load_task("report_generation").load_items()
    assert [i.id for i in items] == ["CXR1_IM-0001", "CXR2_IM-0002"]
    assert "lungs are clear" in items[0].answer and items[0].meta["n_views"] == 2


def test_missing_and_corrupt_images_are_skipped_and_counted(
    bench_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDMLLM_PATHVQA_DIR", str(bench_dir / "pathvqa"))
    (bench_dir / "pathvqa/images/test_0002.jpg").write_bytes(b"not a jpeg at all")
    (bench_dir / "pathvqa/images/test_0001.jpg").unlink()
    items, _, report = load_task("pathvqa").load_items()
    assert items == []
    assert report.skipped == {"missing_image": 2, "corrupt_image": 1}


def test_pubmedqa_ori_json_format(tmp_path: Path) -> None:
    import json

    path = tmp_path / "ori_pqal.json"
    path.write_text(
        json.dumps(
            {
                "123": {
                    "QUESTION": "unused",
                    "question": "Does X help?",
                    "contexts": ["Synthetic abstract."],
                    "final_decision": "maybe",
                }
            }
        )
    )
    task = load_task("pubmedqa")
    task.data_override = [path]
    items, _, _ = task.load_items()
    assert items[0].id == "123" and items[0].answer == "C"
    assert items[0].options == {"A": "yes", "B": "no", "C": "maybe"}


def test_registry_lists_shipped_tasks() -> None:
    assert set(SHIPPED) <= set(TASKS.names())


@pytest.mark.slow
def test_shared_data_loaders(shared_data: Path) -> None:
    expected = {"medmcqa": 1000, "medqa": 200, "pubmedqa": 500, "vqa_rad": 1152}
    for name, n in expected.items():
        items, _, report = load_task(name).load_items()
        assert len(items) + sum(report.skipped.values()) == n, name
    items, _, _ = load_task("vqa_rad").load_items(limit=5)
    assert all(Path(i.image).is_file() for i in items)
    items, _, _ = load_task("pubmedqa").load_items(limit=1)
    assert items[0].context and items[0].answer in "ABC"
