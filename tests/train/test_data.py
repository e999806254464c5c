"""Data builders: formats, the held-apart split (never trained on), user files, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.errors import ConfigError, DataFormatError, DataNotFoundError
from medmllm.train import data
from medmllm.train.data import DataConfig, load_dataset


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_split_ids_deterministic_order_independent() -> None:
    ids = [f"q{i}" for i in range(100)]
    train, held = data.split_ids(ids, 0.2, 7)
    assert len(held) == 20 and not train & held and train | held == set(ids)
    assert data.split_ids(list(reversed(ids)), 0.2, 7) == (train, held)
    assert data.split_ids(ids, 0.2, 8)[1] != held


def test_user_file_formats_and_field_map(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"q": "why?", "a": "because"}] * 3)
    ds = load_dataset(
        DataConfig(path=str(path), fields={"prompt": "q", "completion": "a"}), "prompt_completion"
    )
    assert ds.rows[0] == {"prompt": "why?", "completion": "because"}
    chat = _jsonl(
        tmp_path / "c.jsonl",
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
    )
    ds = load_dataset(DataConfig(path=str(chat)), "prompt_completion")
    assert ds.rows == [{"prompt": "hi", "completion": "yo"}]
    csv = tmp_path / "t.csv"
    csv.write_text("text\nfirst doc\nsecond doc\n")
    assert len(load_dataset(DataConfig(path=str(csv), limit=1), "text").rows) == 1


def test_missing_field_names_file_and_row(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b"}, {"prompt": "c"}])
    with pytest.raises(DataFormatError, match=r"d\.jsonl row 2: missing field\(s\) completion"):
        load_dataset(DataConfig(path=str(path)), "prompt_completion")


def test_empty_dataset_and_bad_sources(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataFormatError, match="no rows"):
        load_dataset(DataConfig(path=str(empty)), "text")
    with pytest.raises(DataNotFoundError):
        load_dataset(DataConfig(path=str(tmp_path / "nope.jsonl")), "text")
    with pytest.raises(ConfigError, match="exactly one"):
        load_dataset(DataConfig(), "text")
    with pytest.raises(Exception, match="Did you mean"):
        load_dataset(DataConfig(builder="mcq", shared_dir=str(tmp_path)), "text")


def test_builder_of_wrong_format(shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="gives text rows"):
        load_dataset(DataConfig(builder="medquad_cpt", shared_dir=str(shared_data)), "preference")


def test_mcqa_training_split_never_holds_eval_rows(shared_data: Path) -> None:
    cfg = DataConfig(builder="mcqa", shared_dir=str(shared_data))
    ds = load_dataset(cfg, "prompt_completion")
    assert ds.split is not None
    held_rows = [r for f in data.MCQA_FILES for r in data.held_apart_rows(cfg, f)]
    assert len(held_rows) == 240 and len(ds.rows) == 960  # 20% of 1,200
    held_prompts = {data.mcqa_prompt(r["question"], r["options"]) for r in held_rows}
    train_prompts = {r["prompt"] for r in ds.rows}
    # a few MedMCQA questions are exact duplicates with other ids: compare ids, then text
    assert not set(ds.split["train"]) & set(ds.split["held"])
    assert len(train_prompts & held_prompts) <= 2
    first = ds.rows[0]
    assert first["prompt"].startswith("Question: ") and first["prompt"].endswith("Answer:")
    assert first["completion"][:4] in {" A. ", " B. ", " C. ", " D. "}
    pairs = load_dataset(
        DataConfig(builder="mcqa_pairs", shared_dir=str(shared_data)), "preference"
    )
    assert all(p["chosen"] != p["rejected"] for p in pairs.rows)
    assert {p["prompt"] for p in pairs.rows} == train_prompts


def test_mcqa_rationale_used_where_present(tmp_path: Path) -> None:
    (tmp_path / "mcqa").mkdir()
    row = {"question": "q?", "options": {"A": "x", "B": "y"}, "answer": "B", "exp": "since y"}
    _jsonl(tmp_path / "mcqa" / "m.jsonl", [{**row, "id": str(i)} for i in range(10)])
    cfg = DataConfig(builder="mcqa", shared_dir=str(tmp_path), files=["mcqa/m.jsonl"])
    ds = load_dataset(cfg, "prompt_completion")
    assert ds.rows[0]["completion"] == " B. y\nExplanation: since y"
    cfg = cfg.model_copy(update={"rationale": False})
    assert load_dataset(cfg, "prompt_completion").rows[0]["completion"] == " B. y"


def test_other_builders(shared_data: Path) -> None:
    base = {"shared_dir": str(shared_data), "limit": 5}
    assert len(load_dataset(DataConfig(builder="medquad_cpt", **base), "text").rows) == 5
    pub = load_dataset(DataConfig(builder="pubmedqa_cpt", **base), "text")
    assert pub.split and len(pub.split["held"]) == 100
    mts = load_dataset(DataConfig(builder="mts_dialog", **base), "prompt_completion")
    assert "dialogue" in mts.rows[0]["prompt"]
    val = load_dataset(
        DataConfig(builder="mts_dialog", split="validation", shared_dir=str(shared_data)),
        "prompt_completion",
    )
    assert len(val.rows) == 100
    pairs = load_dataset(DataConfig(builder="medquad_pairs", **base), "preference")
    assert all(p["chosen"] != p["rejected"] for p in pairs.rows)


def test_a_chained_run_carries_the_earlier_stages_splits(tmp_path: Path) -> None:
    """PubMedQA CPT, then MCQA SFT on its adapter: evaluating the SFT adapter must still drop
    the abstracts CPT trained on (the SFT split alone names no PubMedQA row)."""
    from medmllm.eval.split import read_split

    cpt = tmp_path / "runs" / "cpt"
    (cpt / "adapter").mkdir(parents=True)
    pubmed = {"files": [data.PUBMEDQA_FILE], "key": "pmid", "train": ["111"], "held": ["222"]}
    data.write_split(data.Dataset(rows=[], format="text", source="pubmedqa_cpt", split=pubmed), cpt)
    ift = tmp_path / "runs" / "ift"  # a stage without a split of its own still passes it on
    ift.mkdir()
    data.write_split(
        data.Dataset(rows=[], format="prompt_completion", source="medquad_ift"),
        ift,
        str(cpt / "adapter"),
    )
    (ift / "adapter").mkdir()
    sft = tmp_path / "runs" / "sft"
    sft.mkdir()
    mcqa = {"files": ["mcqa/medqa_dev.jsonl"], "key": "file_stem:id", "train": ["medqa_dev:7"],
            "held": ["medqa_dev:8"]}  # fmt: skip
    ds = data.Dataset(rows=[], format="prompt_completion", source="mcqa", split=mcqa)
    data.write_split(ds, sft, str(ift / "adapter"))
    written = json.loads((sft / "split.json").read_text())
    assert [e["source"] for e in written["earlier"]] == ["medquad_ift", "pubmedqa_cpt"]
    split = read_split(sft / "split.json")
    assert split.trained(Path("medqa_dev.jsonl"), "7") and not split.trained(None, "222")
    assert split.trained(Path("pqal_dev.jsonl"), "111")  # CPT's, two stages back
    assert split.known(None, "222") and not split.known(Path("x.jsonl"), "999")
    assert data.write_split(ds, tmp_path, None) is not None
    alone = data.Dataset(rows=[], format="text", source="medquad_cpt")
    assert data.write_split(alone, tmp_path / "runs", None) is None  # nothing to record
