"""Human evaluation: blinded annotation sheets out, filled sheets in, agreement statistics.

``export_sheet`` writes one row per (system, item) answer in a shuffled order with an opaque
``sheet_id``; which system wrote what is kept in a separate key file that raters never see.
``import_sheets`` reads the filled sheets (one file per rater, CSV or JSONL), validates every
score (the error names the file, row and column), and computes:

* inter-rater agreement per criterion: Cohen's kappa for each pair of raters (scikit-learn,
  quadratic weights because the scale is ordinal), Fleiss' kappa across all raters (NLTK's
  multi-rater pi, which is Fleiss' kappa) and Krippendorff's alpha with the interval metric
  (NLTK; it also uses items that only some raters scored);
* judge–human agreement: quadratic-weighted Cohen's kappa and Spearman correlation between
  the LLM judge's rounded scores and the raters' median.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import warnings
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from medmllm.errors import DataFormatError, DataNotFoundError, OutputExistsError
from medmllm.eval.judge import CRITERIA, SCALE
from medmllm.jsonl import iter_jsonl

SHEET_COLUMNS = ["sheet_id", "question", "reference", "answer", *CRITERIA, "comment"]


def export_sheet(
    runs: dict[str, dict[str, Any]],
    questions: dict[str, dict[str, str]],
    path: str | Path,
    *,
    task: str,
    seed: int = 0,
    limit: int | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write a blinded sheet (``.csv`` or ``.jsonl``) and its key file (``<sheet>.key.json``).

    Args:
        runs: system name → results.json of a generative run.
        questions: item id → {"question", "reference"} (see :func:`judge.judge_questions`).
        path: the sheet file to write.
        task: the task whose answers are rated.
        seed: shuffles the rows (same seed, same sheet).
        limit: rate only the first N items of each system.
        overwrite: replace an existing sheet or key (else :class:`OutputExistsError`: a second
            export would orphan the sheets already handed to raters).
    """
    path, key_path = check_sheet_targets(path, overwrite=overwrite)
    rows, key = [], {}
    for system, results in runs.items():
        items = [r for r in results["tasks"][task]["items"] if r.get("output")][:limit]
        for row in items:
            sheet_id = hashlib.sha256(f"{seed}|{system}|{row['id']}".encode()).hexdigest()[:12]
            q = questions.get(row["id"], {})
            rows.append(
                {
                    "sheet_id": sheet_id,
                    "question": q.get("question", ""),
                    "reference": q.get("reference", ""),
                    "answer": row["output"],
                    **dict.fromkeys(CRITERIA, ""),
                    "comment": "",
                }
            )
            key[sheet_id] = {"system": system, "item_id": row["id"]}
    random.Random(seed).shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=SHEET_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    key_path.write_text(json.dumps({"task": task, "seed": seed, "key": key}, indent=1))
    return path, key_path


def check_sheet_targets(path: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """The sheet and key paths; an existing one is refused unless ``overwrite``."""
    path = Path(path)
    key_path = path.with_name(path.stem + ".key.json")
    for existing in (path, key_path):
        if existing.exists() and not overwrite:
            raise OutputExistsError(
                f"{existing} already exists (sheets already given to raters need their key)",
                hint="choose another --out, or add --overwrite to replace sheet and key",
            )
    return path, key_path


def _read_sheet(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataNotFoundError(f"annotation sheet not found: {path}")
    if path.suffix == ".jsonl":
        return list(iter_jsonl(path))
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("sheet_id", *CRITERIA) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(
                f"{path}: missing column(s) {missing}",
                hint="fill the sheet from `medmllm eval export-sheet` without renaming columns",
            )
        return [(n, row) for n, row in enumerate(reader, start=2)]  # row 1 is the header


def import_sheets(paths: Sequence[str | Path]) -> dict[str, dict[str, dict[str, int]]]:
    """Filled sheets → rater → sheet_id → criterion → score (blank cells are skipped)."""
    ratings: dict[str, dict[str, dict[str, int]]] = {}
    stems = [Path(p).stem for p in paths]
    for raw in paths:
        path = Path(raw)
        # r1/study.csv and r2/study.csv are two raters, not one: qualify repeated names
        rater = path.stem if stems.count(path.stem) == 1 else f"{path.parent.name}/{path.stem}"
        if rater in ratings:
            raise DataFormatError(
                f"sheet {path} is given twice (rater {rater!r})", hint="pass each sheet once"
            )
        ratings[rater] = {}
        for n, row in _read_sheet(path):
            scores = {}
            for c in CRITERIA:
                cell = str(row.get(c, "") if row.get(c) is not None else "").strip()
                if not cell:
                    continue
                try:
                    value = int(float(cell))
                except ValueError:
                    value = -1
                if not SCALE[0] <= value <= SCALE[1]:
                    raise DataFormatError(
                        f"{path} row {n}: column '{c}' must be an integer {SCALE[0]}-{SCALE[1]}, "
                        f"got {cell!r}",
                        hint="fix the cell or leave it blank",
                    )
                scores[c] = value
            if scores:
                ratings[rater][str(row["sheet_id"])] = scores
    return ratings


def check_against_key(
    ratings: dict[str, dict[str, dict[str, int]]], key: dict[str, Any]
) -> list[str]:
    """Warnings (with counts) for blank sheets and sheet ids the key does not know.

    Raises:
        DataFormatError: no rating at all, or none of the rated ids is in the key (a key from
            another export).
    """
    warnings_out = []
    blank = [rater for rater, rows in ratings.items() if not rows]
    if blank:
        warnings_out.append(f"{len(blank)} sheet(s) hold no score: {', '.join(blank)}")
    rated = {sheet_id for rows in ratings.values() for sheet_id in rows}
    if not rated:
        raise DataFormatError(
            "the sheets hold no score at all", hint="fill the criteria columns with 1-5"
        )
    unknown = rated - set(key)
    if unknown == rated:
        raise DataFormatError(
            f"none of the {len(rated)} rated sheet ids is in the key file (a key from "
            "another export?)",
            hint="pass the .key.json written with these sheets",
        )
    if unknown:
        warnings_out.append(f"{len(unknown)} rated sheet id(s) not in the key were ignored")
        for rows in ratings.values():
            for sheet_id in unknown & set(rows):
                del rows[sheet_id]
    return warnings_out


def read_key(path: Path) -> dict[str, dict[str, str]]:
    """The ``key`` mapping of a ``.key.json`` (sheet id → system and item id), validated."""
    if not path.is_file():
        raise DataNotFoundError(f"key file not found: {path}", hint="pass the *.key.json")
    hint = "pass the .key.json written by `medmllm eval export-sheet`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"key file {path} is not valid JSON ({exc})", hint=hint) from None
    key = data.get("key") if isinstance(data, dict) else None
    if not isinstance(key, dict) or not all(
        isinstance(v, dict) and {"system", "item_id"} <= set(v) for v in key.values()
    ):
        raise DataFormatError(f"{path} is not a sheet key file (no valid 'key' map)", hint=hint)
    return key


def _num(value: float) -> float | None:
    """JSON-safe: an undefined kappa (e.g. every rater gave 5) becomes None, not NaN."""
    value = float(value)
    return None if math.isnan(value) else value


def _krippendorff_alpha(
    ratings: dict[str, dict[str, dict[str, int]]], criterion: str
) -> tuple[float | None, int] | None:
    """Krippendorff's alpha (interval metric) over every rating of ``criterion``.

    Unlike Fleiss' kappa it needs no complete design: items rated by some raters only count
    (NLTK's implementation; checked against the ``krippendorff`` package in the tests).
    Returns (alpha, items with at least two ratings), or None when nothing is pairable.
    """
    from nltk.metrics.agreement import AnnotationTask
    from nltk.metrics.distance import interval_distance

    triples = [
        (rater, sheet_id, scores[criterion])
        for rater, sheets in ratings.items()
        for sheet_id, scores in sheets.items()
        if criterion in scores
    ]
    per_item = Counter(item for _, item, _ in triples)
    pairable = sum(n >= 2 for n in per_item.values())
    if pairable == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = AnnotationTask(data=triples, distance=interval_distance).alpha()
        except ZeroDivisionError:  # every rating identical: agreement is undefined
            return None, pairable
    return _num(value), pairable


def agreement(
    ratings: dict[str, dict[str, dict[str, int]]],
    judge_scores: dict[str, dict[str, float | None]] | None = None,
) -> dict[str, Any]:
    """Cohen's kappa per rater pair, Fleiss' kappa, and judge–human agreement, per criterion.

    Args:
        ratings: from :func:`import_sheets`.
        judge_scores: sheet_id → criterion → judge score (optional).
    """
    from nltk.metrics.agreement import AnnotationTask
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    labels = list(range(SCALE[0], SCALE[1] + 1))
    out: dict[str, Any] = {"raters": sorted(ratings), "criteria": {}}
    for c in CRITERIA:
        entry: dict[str, Any] = {"cohen": {}}
        for a, b in combinations(sorted(ratings), 2):
            shared = [s for s in ratings[a] if c in ratings[a][s] and c in ratings[b].get(s, {})]
            if len(shared) >= 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # undefined kappa → NaN → None below
                    kappa = cohen_kappa_score(
                        [ratings[a][s][c] for s in shared],
                        [ratings[b][s][c] for s in shared],
                        labels=labels,
                        weights="quadratic",
                    )
                entry["cohen"][f"{a}~{b}"] = {
                    "kappa_quadratic": _num(kappa),
                    "n": len(shared),
                }
        # Fleiss: items rated by every rater (NLTK needs a complete design for pi)
        complete = (
            [
                s
                for s in set.intersection(*(set(r) for r in ratings.values()))
                if all(c in ratings[r][s] for r in ratings)
            ]
            if ratings
            else []
        )
        if len(ratings) >= 2 and len(complete) >= 2:
            task = AnnotationTask(
                data=[(r, s, ratings[r][s][c]) for r in ratings for s in complete]
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    entry["fleiss_kappa"] = _num(task.pi())
                except ZeroDivisionError:  # every rating identical: agreement is undefined
                    entry["fleiss_kappa"] = None
            entry["fleiss_n"] = len(complete)
        alpha = _krippendorff_alpha(ratings, c)
        if alpha is not None:
            entry["krippendorff_alpha"], entry["krippendorff_n"] = alpha
        if judge_scores:
            pairs = []
            for s in complete or sorted({s for r in ratings.values() for s in r}):
                humans = [ratings[r][s][c] for r in ratings if c in ratings[r].get(s, {})]
                judged = (judge_scores.get(s) or {}).get(c)
                if humans and judged is not None:
                    pairs.append((round(float(np.median(humans))), round(judged)))
            if len(pairs) >= 2:
                h, j = zip(*pairs, strict=True)
                rho = spearmanr(h, j).statistic if len(set(h)) > 1 and len(set(j)) > 1 else None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kappa = cohen_kappa_score(h, j, labels=labels, weights="quadratic")
                entry["judge_human"] = {
                    "kappa_quadratic": _num(kappa),
                    "spearman": None if rho is None else float(rho),
                    "n": len(pairs),
                }
        out["criteria"][c] = entry
    return out
