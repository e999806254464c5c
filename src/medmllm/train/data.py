"""Training data: builders from the public medical data, and any local JSONL/CSV or HF dataset.

Every recipe takes rows of one *format*:

- ``text``: ``{"text"}`` — continued pre-training (packed).
- ``prompt_completion``: ``{"prompt", "completion"}`` strings — instructions, task SFT.
- ``preference``: ``{"prompt", "chosen", "rejected"}`` strings — DPO, reward models.

Builders (:data:`BUILDERS`) turn the shared data folder into those rows:

==================  =============================================================================
``medquad_cpt``     MedQuAD answers as documents (title, question, answer) → ``text``
``pubmedqa_cpt``    PubMedQA abstracts (contexts only, training split) → ``text``
``medquad_ift``     MedQuAD question → answer → ``prompt_completion``
``mts_dialog``      MTS-Dialog dialogue → clinical-note section (``split`` train/tune/validation;
                    ``augmented`` adds the back-translations of the training rows used)
``mcqa``            MedMCQA/MedQA **training split** → answer letter + text (+ rationale)
``mcqa_pairs``      MCQA: correct answer vs a distractor (constructed preference pairs)
``medquad_pairs``   MedQuAD: the answer vs another question's answer (constructed, off-topic)
==================  =============================================================================

The MCQA and PubMedQA builders hold rows apart for evaluation by a deterministic hash split
(:func:`split_ids`); recipes write the split into the run folder (``split.json``) so a test can
check that no evaluated row was trained on.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.errors import ConfigError, DataFormatError, DataNotFoundError
from medmllm.eval.split import SPLIT_FILE  # the eval side reads what training writes here
from medmllm.registry import Registry

Format = Literal["text", "prompt_completion", "preference"]
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "prompt_completion": ("prompt", "completion"),
    "preference": ("prompt", "chosen", "rejected"),
}
MCQA_FILES = ("mcqa/medmcqa_dev.jsonl", "mcqa/medqa_dev.jsonl")
PUBMEDQA_FILE = "pubmedqa/pqal_dev.jsonl"
MEDQUAD_FILE = "corpus/medquad/medquad_docs.jsonl"
MTS_FILE = "train/mts_dialog/mts_dialog_train_val.jsonl"
MTS_AUGMENTED_FILE = "train/mts_dialog/mts_dialog_augmented_train.jsonl"
MTS_SPLITS = ("train", "tune", "validation")


class DataConfig(BaseModel):
    """Where a recipe's rows come from: a builder over the shared data, a local file or a hub id."""

    model_config = ConfigDict(extra="forbid")

    builder: str | None = Field(
        None, description="A built-in builder (medquad_cpt, mcqa, mts_dialog, …; see BUILDERS)."
    )
    path: str | None = Field(None, description="A local .jsonl/.json/.csv file of rows.")
    hf_id: str | None = Field(None, description="A Hugging Face dataset id (needs network/cache).")
    hf_config: str | None = Field(None, description="The Hugging Face dataset config name.")
    split: str = Field(
        "train", description="Split: of the HF dataset, or of MTS-Dialog (train, tune, validation)."
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Column renames for path/hf_id rows, recipe field → column "
        "(e.g. {prompt: question, completion: answer}).",
    )
    limit: int | None = Field(None, ge=1, description="Use at most N rows (after shuffling).")
    eval_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of MCQA/PubMedQA rows held apart for evaluation (never trained on).",
    )
    split_seed: int = Field(20261128, description="Seed of the train/held-apart hash split.")
    tune_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="MTS-Dialog: share of training dialogues held apart as the tune split "
        "(hyper-parameters are chosen on it; split: tune), never trained on.",
    )
    augmented: bool = Field(
        False,
        description="MTS-Dialog train split: add the FR and ES back-translations of the training "
        "rows used (never of a tune or validation dialogue).",
    )
    rationale: bool = Field(True, description="MCQA: append the rationale where rows have one.")
    files: list[str] | None = Field(
        None, description="MCQA builders: files under the shared data folder (default: both)."
    )
    shared_dir: str | None = Field(
        None, description="The shared data folder (default: MEDMLLM_SHARED_DATA or ../shared/data)."
    )


class Dataset(BaseModel):
    """Rows of one format plus what a run folder should record about them."""

    rows: list[dict[str, Any]] = Field(description="The training rows.")
    format: str = Field(description="text, prompt_completion or preference.")
    source: str = Field(description="Where the rows came from (builder name or file).")
    split: dict[str, Any] | None = Field(
        None, description="Train / held-apart ids for builders that split (written to split.json)."
    )


Builder = Callable[[DataConfig, Path], Dataset]
BUILDERS: Registry[Builder] = Registry("data builder")


# -- helpers -----------------------------------------------------------------------------------
def shared_dir(config: DataConfig) -> Path:
    """The shared data folder for builders (errors with the env variable to set)."""
    if config.shared_dir:
        path = Path(config.shared_dir).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"shared data folder not found: {path}")
        return path
    from medmllm.config import shared_data_dir

    found = shared_data_dir()
    assert found is not None  # required=True raises instead
    return found


def _read(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from medmllm.eval.readers import read_rows
    from medmllm.eval.task import DatasetSpec

    return read_rows(path, DatasetSpec(path=str(path)))


def split_ids(ids: list[str], eval_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Deterministic (train, held-apart) split of ``ids`` by a seeded hash; order-independent.

    The same id always lands on the same side for a given seed and fraction, whatever order or
    subset of the file is read.
    """
    ranked = sorted(set(ids), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    n_eval = round(len(ranked) * eval_fraction)
    held = set(ranked[:n_eval])
    return set(ranked) - held, held


def _limit(rows: list[dict[str, Any]], config: DataConfig, seed: int = 0) -> list[dict[str, Any]]:
    if config.limit is None or config.limit >= len(rows):
        return rows
    picked = random.Random(seed).sample(range(len(rows)), config.limit)
    return [rows[i] for i in sorted(picked)]


def _require(row: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if row.get(k) in (None, "")]
    if missing:
        raise DataFormatError(
            f"{where}: missing field(s) {', '.join(missing)} (has: {', '.join(sorted(row))})",
            hint="add the field, or map a column to it with data.fields",
        )


def mcqa_prompt(question: str, options: dict[str, str]) -> str:
    """The MCQA prompt, identical to the eval tasks' template (so training matches scoring)."""
    from medmllm.eval.prompting import options_text

    return f"Question: {question}\n{options_text(options)}\nAnswer:"


# -- builders ----------------------------------------------------------------------------------
@BUILDERS.register("medquad_cpt")
def medquad_cpt(config: DataConfig, shared: Path) -> Dataset:
    """MedQuAD answers as plain documents: title, question, answer."""
    rows = []
    for number, row in _read(shared / MEDQUAD_FILE):
        _require(row, ("question", "answer"), f"{MEDQUAD_FILE} row {number}")
        title = row.get("title") or ""
        rows.append({"text": f"{title}\n\n{row['question']}\n{row['answer']}".strip()})
    return Dataset(rows=_limit(rows, config), format="text", source="medquad_cpt")


@BUILDERS.register("medquad_ift")
def medquad_ift(config: DataConfig, shared: Path) -> Dataset:
    """MedQuAD consumer-health questions → answers (instructions)."""
    rows = []
    for number, row in _read(shared / MEDQUAD_FILE):
        _require(row, ("question", "answer"), f"{MEDQUAD_FILE} row {number}")
        rows.append({"prompt": row["question"], "completion": row["answer"]})
    return Dataset(rows=_limit(rows, config), format="prompt_completion", source="medquad_ift")


@BUILDERS.register("pubmedqa_cpt")
def pubmedqa_cpt(config: DataConfig, shared: Path) -> Dataset:
    """PubMedQA abstracts (contexts only, no answers) of the training split."""
    raw = _read(shared / PUBMEDQA_FILE)
    ids = [str(r.get("pmid")) for _, r in raw]
    train, held = split_ids(ids, config.eval_fraction, config.split_seed)
    rows = []
    for number, row in raw:
        _require(row, ("pmid", "contexts"), f"{PUBMEDQA_FILE} row {number}")
        if str(row["pmid"]) in train:
            rows.append({"text": "\n".join(row["contexts"])})
    split = {"files": [PUBMEDQA_FILE], "key": "pmid", "train": sorted(train), "held": sorted(held)}
    return Dataset(rows=_limit(rows, config), format="text", source="pubmedqa_cpt", split=split)


def mts_prompt(dialogue: str, section: str) -> str:
    """The dialogue → note-section instruction (shared by training and evaluation)."""
    return (
        "Write the clinical note section '"
        + section
        + "' for this doctor-patient dialogue.\n\n"
        + dialogue.strip()
    )


def _dialogue_key(dialogue: str) -> str:
    """A dialogue up to whitespace and case: the augmented file writes \\n where the main one
    writes \\r\\n, and two validation dialogues recur verbatim among the training rows."""
    return " ".join(dialogue.split()).lower()


def mts_split(config: DataConfig, shared: Path) -> dict[str, Any]:
    """The MTS-Dialog split, by dialogue: which rows train, tune and are held apart.

    Rows are named ``train:<id>`` / ``validation:<id>`` (the ids restart in each file split),
    which is also their ``id`` in the builder's rows, so an evaluation of those rows reads this
    split with :mod:`medmllm.eval.split` (key ``id``) and drops what was trained on. Training
    rows whose dialogue is also a validation dialogue are ``excluded`` (never trained on, never
    tuned on); the rest are split by a seeded hash of the dialogue, so a dialogue that occurs
    twice lands on one side.
    """
    raw = _read(shared / MTS_FILE)
    for number, row in raw:
        _require(row, ("dialogue", "section_header", "section_text"), f"{MTS_FILE} row {number}")
    held = {_dialogue_key(r["dialogue"]) for _, r in raw if r.get("split") == "validation"}
    train_rows = [r for _, r in raw if r.get("split", "train") == "train"]
    excluded = {f"train:{r['id']}" for r in train_rows if _dialogue_key(r["dialogue"]) in held}
    dialogues = [_dialogue_key(r["dialogue"]) for r in train_rows]
    fit, tune = split_ids(
        [d for d in dialogues if d not in held], config.tune_fraction, config.split_seed
    )
    by_side = {d: "tune" for d in tune} | {d: "train" for d in fit}
    sides: dict[str, list[str]] = {"train": [], "tune": []}
    for row, dialogue in zip(train_rows, dialogues, strict=True):
        if dialogue in by_side:
            sides[by_side[dialogue]].append(f"train:{row['id']}")
    return {
        "files": [MTS_FILE] + ([MTS_AUGMENTED_FILE] if config.augmented else []),
        "key": "id",  # item ids are split:id; a back-translation counts as its training row
        "train": sorted(sides["train"]),
        "tune": sorted(sides["tune"]),
        "held": sorted(f"validation:{r['id']}" for _, r in raw if r.get("split") == "validation"),
        "excluded": sorted(excluded),
    }


def _mts_augmented(shared: Path, train: set[str], originals: dict[str, str]) -> list[dict]:
    """Back-translations (``TR=EN-FR-EN 12``) of the training rows in ``train``.

    The file's un-prefixed rows repeat the training rows themselves, so they are skipped; a
    translation whose section header differs from its training row's means the ids no longer
    line up, which is refused rather than silently mixing rows.
    """
    rows = []
    for number, row in _read(shared / MTS_AUGMENTED_FILE):
        where = f"{MTS_AUGMENTED_FILE} row {number}"
        _require(row, ("ID", "dialogue", "section_header", "section_text"), where)
        tag, _, source = str(row["ID"]).rpartition(" ")
        if not tag.startswith("TR="):
            continue
        key = f"train:{source}"
        if originals.get(key) != row["section_header"]:
            raise DataFormatError(
                f"{where}: {row['ID']!r} does not match training row {source} "
                f"(header {row['section_header']!r} vs {originals.get(key)!r})",
                hint="the augmented file must be the back-translations of this training file",
            )
        if key in train:
            prompt = mts_prompt(row["dialogue"], row["section_header"])
            rows.append(
                {
                    "prompt": prompt,
                    "completion": row["section_text"],
                    "id": f"{key} {tag}",
                    "section_header": row["section_header"],
                }
            )
    return rows


@BUILDERS.register("mts_dialog")
def mts_dialog(config: DataConfig, shared: Path) -> Dataset:
    """MTS-Dialog dialogue → clinical-note section.

    ``split``: ``train`` (training dialogues minus the tune split and minus copies of validation
    dialogues; ``augmented`` adds their back-translations), ``tune`` (the held-apart share of
    training dialogues, for choosing settings) or ``validation`` (the official 100 rows).
    """
    if config.split not in MTS_SPLITS:
        raise ConfigError(
            f"data.split for mts_dialog must be one of {', '.join(MTS_SPLITS)}, "
            f"got {config.split!r}"
        )
    if config.augmented and config.split != "train":
        raise ConfigError(
            f"data.augmented does not apply to the {config.split} split of mts_dialog: only "
            "training rows have back-translations (and tune/validation rows are never augmented)",
            hint="drop data.augmented, or use data.split: train",
        )
    split = mts_split(config, shared)
    wanted = set(split["held"] if config.split == "validation" else split[config.split])
    rows = []
    originals: dict[str, str] = {}
    for _number, row in _read(shared / MTS_FILE):
        key = f"{row.get('split', 'train')}:{row.get('id')}"
        originals[key] = row["section_header"]
        if key in wanted:
            prompt = mts_prompt(row["dialogue"], row["section_header"])
            rows.append(
                {
                    "prompt": prompt,
                    "completion": row["section_text"],
                    "id": key,  # as split.json names it (medmllm.eval.split, key "id")
                    "section_header": row["section_header"],
                }
            )
    if config.split == "train" and config.augmented:
        rows += _mts_augmented(shared, wanted, originals)
    return Dataset(
        rows=_limit(rows, config), format="prompt_completion", source="mts_dialog", split=split
    )


def _mcqa_rows(config: DataConfig, shared: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    files = config.files or list(MCQA_FILES)
    raw: list[tuple[str, int, dict[str, Any]]] = []
    for name in files:
        for number, row in _read(shared / name):
            _require(row, ("id", "question", "options", "answer"), f"{name} row {number}")
            raw.append((name, number, row))
    keys = [f"{Path(name).stem}:{row['id']}" for name, _, row in raw]
    train, held = split_ids(keys, config.eval_fraction, config.split_seed)
    rows = []
    for key, (_name, _number, row) in zip(keys, raw, strict=True):
        if key in train:
            rows.append({**row, "_key": key})
    split = {"files": files, "key": "file_stem:id", "train": sorted(train), "held": sorted(held)}
    return rows, split


def _rationale(row: dict[str, Any]) -> str | None:
    for key in ("rationale", "explanation", "exp"):
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key].strip()
    return None


@BUILDERS.register("mcqa")
def mcqa(config: DataConfig, shared: Path) -> Dataset:
    """MCQA training split → prompt (eval template) and answer letter + text (+ rationale)."""
    raw, split = _mcqa_rows(config, shared)
    rows = []
    for row in raw:
        letter = row["answer"]
        completion = f" {letter}. {row['options'].get(letter, '')}".rstrip()
        rationale = _rationale(row) if config.rationale else None
        if rationale:
            completion += f"\nExplanation: {rationale}"
        rows.append(
            {"prompt": mcqa_prompt(row["question"], row["options"]), "completion": completion}
        )
    return Dataset(
        rows=_limit(rows, config), format="prompt_completion", source="mcqa", split=split
    )


@BUILDERS.register("mcqa_pairs")
def mcqa_pairs(config: DataConfig, shared: Path) -> Dataset:
    """Constructed pairs: the correct answer (chosen) vs a seeded random distractor (rejected)."""
    raw, split = _mcqa_rows(config, shared)
    rng = random.Random(config.split_seed)
    rows = []
    for row in raw:
        letter = row["answer"]
        wrong = rng.choice(sorted(k for k in row["options"] if k != letter))
        rows.append(
            {
                "prompt": mcqa_prompt(row["question"], row["options"]),
                "chosen": f" {letter}. {row['options'][letter]}",
                "rejected": f" {wrong}. {row['options'][wrong]}",
            }
        )
    return Dataset(rows=_limit(rows, config), format="preference", source="mcqa_pairs", split=split)


@BUILDERS.register("medquad_pairs")
def medquad_pairs(config: DataConfig, shared: Path) -> Dataset:
    """Constructed pairs: a question's answer (chosen) vs another topic's answer (rejected)."""
    qa = [(r["question"], r["answer"], r.get("title")) for _, r in _read(shared / MEDQUAD_FILE)]
    rng = random.Random(config.split_seed)
    rows = []
    for i, (question, answer, title) in enumerate(qa):
        j = rng.randrange(len(qa))
        while qa[j][2] == title and len(qa) > 1:  # off-topic: another focus
            j = rng.randrange(len(qa))
        if j == i:
            continue
        rows.append({"prompt": question, "chosen": answer, "rejected": qa[j][1]})
    return Dataset(rows=_limit(rows, config), format="preference", source="medquad_pairs")


# -- user data ---------------------------------------------------------------------------------
def _user_rows(config: DataConfig) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    if config.path:
        path = Path(config.path).expanduser()
        if not path.is_file():
            raise DataNotFoundError(f"dataset file not found: {path}", hint="check data.path")
        return _read(path), str(path)
    from medmllm.eval.readers import read_hf
    from medmllm.eval.task import DatasetSpec

    spec = DatasetSpec(hf_id=config.hf_id, hf_config=config.hf_config, split=config.split)
    return read_hf(spec), f"{config.hf_id}[{config.split}]"


def load_dataset(config: DataConfig, fmt: str) -> Dataset:
    """Rows of format ``fmt`` from ``config`` (builder, local file or hub id).

    Raises:
        ConfigError: none or several sources, or a builder of another format.
        DataFormatError: a row misses a field (names file and row) or the dataset is empty.
    """
    sources = [s for s in (config.builder, config.path, config.hf_id) if s]
    if len(sources) != 1:
        raise ConfigError(
            f"data needs exactly one of builder, path or hf_id (got {len(sources)})",
            hint=f"e.g. data: {{builder: mcqa}}; builders: {', '.join(BUILDERS.names())}",
        )
    wanted = FORMAT_FIELDS[fmt]
    if config.builder:
        dataset = BUILDERS.get(config.builder)(config, shared_dir(config))
        if dataset.format != fmt:
            raise ConfigError(
                f"data builder {config.builder!r} gives {dataset.format} rows, "
                f"this recipe needs {fmt}",
                hint="pick a builder of the recipe's format (see medmllm.train.data)",
            )
    else:
        raw, source = _user_rows(config)
        rows = []
        for number, row in raw:
            mapped = {field: row.get(config.fields.get(field, field)) for field in wanted}
            if fmt == "prompt_completion" and mapped["prompt"] is None and "messages" in row:
                mapped = _from_messages(row["messages"], f"{source} row {number}")
            _require(mapped, wanted, f"{source} row {number}")
            rows.append({k: str(v) for k, v in mapped.items()})
        dataset = Dataset(rows=_limit(rows, config), format=fmt, source=source)
    if not dataset.rows:
        raise DataFormatError(
            f"dataset {dataset.source} has no rows", hint="point data at a file with rows"
        )
    return dataset


def _from_messages(messages: Any, where: str) -> dict[str, Any]:
    """A chat transcript → prompt (all turns but the last) + completion (the last, assistant)."""
    if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
        raise DataFormatError(f"{where}: 'messages' must end with an assistant turn")
    prompt = "\n".join(str(m.get("content", "")) for m in messages[:-1])
    return {"prompt": prompt, "completion": messages[-1].get("content")}


def write_split(dataset: Dataset, run_dir: Path, adapter: str | None = None) -> Path | None:
    """Record the train / held-apart ids of a split builder in ``run_dir/split.json``.

    A run that continues an earlier stage (``adapter``) carries that stage's split along under
    ``earlier`` (flattened, oldest last): rows any stage trained on stay excluded when the final
    adapter is evaluated (:mod:`medmllm.eval.split`), e.g. PubMedQA CPT before MCQA SFT.
    """
    earlier = earlier_splits(adapter)
    if dataset.split is None and not earlier:
        return None
    own = dataset.split or {"files": [], "key": "id", "train": [], "held": []}
    record: dict[str, Any] = {"source": dataset.source, **own}
    if earlier:
        record["earlier"] = earlier
    path = run_dir / SPLIT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)
    return path


def earlier_splits(model: str | None) -> list[dict[str, Any]]:
    """The splits of the stages a model comes from (its run's split.json, flattened), so that
    the next stage's split carries them: text adapters and MedMLLM ``init_from`` alike."""
    from medmllm.eval.split import find_run_split

    found = find_run_split(model)
    if found is None:
        return []
    previous = json.loads(found.read_text(encoding="utf-8"))
    inherited = previous.pop("earlier", [])
    return [previous, *inherited]


def held_apart_rows(config: DataConfig, file: str) -> list[dict[str, Any]]:
    """The rows of one shared MCQA/PubMedQA file that training never sees (for evaluation)."""
    shared = shared_dir(config)
    raw = _read(shared / file)
    key = "pmid" if file == PUBMEDQA_FILE else "id"
    if file == PUBMEDQA_FILE:
        ids = [str(r.get(key)) for _, r in raw]
        _, held = split_ids(ids, config.eval_fraction, config.split_seed)
        return [r for _, r in raw if str(r[key]) in held]
    files = config.files or list(MCQA_FILES)
    keys = [f"{Path(f).stem}:{r['id']}" for f in files for _, r in _read(shared / f)]
    _, held = split_ids(keys, config.eval_fraction, config.split_seed)
    return [r for _, r in raw if f"{Path(file).stem}:{r['id']}" in held]
