"""Evaluation metrics, registered by name, each with a bootstrap 95% confidence interval.

Every metric is computed by an established library (scikit-learn for F1, sacrebleu and NLTK for
BLEU, rouge-score for ROUGE-L, NLTK for METEOR, SciPy for the bootstrap): numbers must be
comparable with papers, and hand-written re-implementations drift. A metric is either
*per-item* (a score per example, averaged — accuracy, exact match, ROUGE-L…) or *corpus-level*
(macro-F1, corpus BLEU), which the bootstrap recomputes on resampled item sets.

Metric functions take ``(predictions, references, items)``: predictions may be ``None`` for
outputs with no extractable answer (scored as wrong, never skipped, so invalid outputs cannot
raise accuracy).
"""

from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medmllm.errors import MissingDependencyError
from medmllm.registry import Registry

MetricFn = Callable[[Sequence[str | None], Sequence[str], Sequence[Any]], Any]


@dataclass(frozen=True)
class Metric:
    """A named metric.

    Attributes:
        name: registry name (also the key in results.json).
        fn: ``(predictions, references, items)`` → per-item scores (list, NaN = not applicable)
            when ``per_item`` is true, else one corpus-level float.
        per_item: whether ``fn`` returns one score per item.
        description: one line for `medmllm eval list --metrics` and the report.
    """

    name: str
    fn: MetricFn
    per_item: bool
    description: str


class MetricUnavailableError(MissingDependencyError):
    """A metric's data or package is missing (e.g. METEOR without WordNet)."""


METRICS: Registry[Metric] = Registry("metric")
# Names that expand to several metrics in a task's ``metrics`` list.
GROUPS: dict[str, list[str]] = {
    "bleu": ["bleu1", "bleu2", "bleu3", "bleu4", "sacrebleu"],
    "vqa_accuracy": ["vqa_closed_accuracy", "vqa_open_accuracy"],
}


def metric(name: str, *, per_item: bool, description: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering ``fn`` as a metric (plugins use it the same way)."""

    def wrap(fn: MetricFn) -> MetricFn:
        METRICS.register(name, Metric(name, fn, per_item, description))
        return fn

    return wrap


def expand(names: Sequence[str]) -> list[str]:
    """Expand metric groups (``bleu`` → ``bleu1..4`` + ``sacrebleu``), checking each name."""
    out: list[str] = []
    for name in names:
        for member in GROUPS.get(name, [name]):
            METRICS.get(member)  # unknown names fail here, with "did you mean"
            if member not in out:
                out.append(member)
    return out


# -- text normalisation (SQuAD-style, as VQA and exact-match papers use) ---------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str | None) -> str:
    """Lower-case, drop punctuation and articles, squeeze spaces."""
    if text is None:
        return ""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def _tokens(text: str | None) -> list[str]:
    return normalize(text).split()


# -- classification ---------------------------------------------------------------------------
@metric("accuracy", per_item=True, description="Share of items answered correctly.")
def accuracy(preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]) -> list[float]:
    return [float(p is not None and p == r) for p, r in zip(preds, refs, strict=True)]


@metric("macro_f1", per_item=False, description="F1 averaged over gold classes (scikit-learn).")
def macro_f1(preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]) -> float:
    from sklearn.metrics import f1_score

    labels = sorted(set(refs))
    y_pred = ["<invalid>" if p is None else p for p in preds]
    return float(f1_score(list(refs), y_pred, labels=labels, average="macro", zero_division=0))


@metric("exact_match", per_item=True, description="Normalised prediction equals the reference.")
def exact_match(
    preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]
) -> list[float]:
    return [
        float(p is not None and normalize(p) == normalize(r))
        for p, r in zip(preds, refs, strict=True)
    ]


# -- VQA -------------------------------------------------------------------------------------
def _answer_type(item: Any, ref: str) -> str:
    declared = str(getattr(item, "meta", {}).get("answer_type", "")).upper()
    if declared in ("OPEN", "CLOSED"):
        return declared
    return "CLOSED" if normalize(ref) in ("yes", "no") else "OPEN"


def _closed_match(pred: str | None, ref: str) -> float:
    # Closed answers are judged on the first yes/no word: "Yes, there is …" is a "yes".
    words = _tokens(pred)
    first = next((w for w in words if w in ("yes", "no")), words[0] if words else "")
    return float(first == normalize(ref) or normalize(pred) == normalize(ref))


@metric(
    "vqa_closed_accuracy",
    per_item=True,
    description="VQA closed (yes/no) questions: the answer's yes/no matches.",
)
def vqa_closed(
    preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]
) -> list[float]:
    return [
        _closed_match(p, r) if _answer_type(it, r) == "CLOSED" else float("nan")
        for p, r, it in zip(preds, refs, items, strict=True)
    ]


@metric(
    "vqa_open_accuracy",
    per_item=True,
    description="VQA open questions: the normalised reference appears in the answer.",
)
def vqa_open(preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]) -> list[float]:
    out = []
    for p, r, it in zip(preds, refs, items, strict=True):
        if _answer_type(it, r) != "OPEN":
            out.append(float("nan"))
            continue
        ref, pred = normalize(r), normalize(p)
        out.append(float(bool(ref) and (pred == ref or f" {ref} " in f" {pred} ")))
    return out


@metric(
    "token_recall",
    per_item=True,
    description="Share of the reference's tokens present in the answer (open VQA).",
)
def token_recall(
    preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]
) -> list[float]:
    out = []
    for p, r in zip(preds, refs, strict=True):
        ref = Counter(_tokens(r))
        if not ref:
            out.append(float("nan"))
            continue
        overlap = sum((ref & Counter(_tokens(p))).values())
        out.append(overlap / sum(ref.values()))
    return out


# -- generation ------------------------------------------------------------------------------
def _nltk_bleu(n: int) -> MetricFn:
    def fn(preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]) -> float:
        from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

        weights = tuple([1.0 / n] * n)
        hyps = [_tokens(p) for p in preds]
        references = [[_tokens(r)] for r in refs]
        return float(
            corpus_bleu(
                references, hyps, weights=weights, smoothing_function=SmoothingFunction().method1
            )
        )

    return fn


for _n in (1, 2, 3, 4):
    metric(
        f"bleu{_n}",
        per_item=False,
        description=f"Cumulative corpus BLEU-{_n} on normalised tokens (NLTK, smoothing 1).",
    )(_nltk_bleu(_n))


@metric("sacrebleu", per_item=False, description="Corpus BLEU-4 by sacrebleu (0-1 scale).")
def sacrebleu_metric(
    preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]
) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu([p or "" for p in preds], [list(refs)]).score) / 100.0


@metric("rouge_l", per_item=True, description="ROUGE-L F1 (rouge-score, with stemming).")
def rouge_l(preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [
        float(scorer.score(r, p or "")["rougeL"].fmeasure) for p, r in zip(preds, refs, strict=True)
    ]


def wordnet_available() -> bool:
    """Whether NLTK can open WordNet (METEOR needs it for synonym matching)."""
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return True
    except LookupError:
        return False


@metric("meteor", per_item=True, description="METEOR (NLTK; needs the WordNet corpus).")
def meteor(preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]) -> list[float]:
    if not wordnet_available():
        raise MetricUnavailableError(
            "METEOR is unavailable: NLTK cannot find the WordNet corpus",
            hint="run `python -m medmllm.eval.wordnet` (`make setup` does: it copies Debian's "
            "WordNet 3.0 into the venv's nltk_data), or `python -m nltk.downloader wordnet` "
            "online",
        )
    from nltk.translate.meteor_score import meteor_score

    return [float(meteor_score([_tokens(r)], _tokens(p))) for p, r in zip(preds, refs, strict=True)]


@metric(
    "hallucination",
    per_item=True,
    description="Share of generated sentences not supported by the reference/context.",
)
def hallucination(
    preds: Sequence[str | None], refs: Sequence[str], items: Sequence[Any]
) -> list[float]:
    from medmllm.eval.hallucination import unsupported_share

    out = []
    for p, r, it in zip(preds, refs, items, strict=True):
        sources = [r] + ([it.context] if getattr(it, "context", None) else [])
        out.append(unsupported_share(p or "", sources))
    return out


# -- confidence intervals --------------------------------------------------------------------
def bootstrap_ci(
    values: Sequence[float] | None = None,
    *,
    statistic: Callable[[np.ndarray], float] | None = None,
    n: int | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval (SciPy).

    Either ``values`` (per-item scores; the statistic is their mean) or ``statistic`` on an
    index array of length ``n`` (corpus-level metrics recomputed on each resample).
    """
    from scipy.stats import bootstrap

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate samples (all 0 or all 1) are fine here
        if values is not None:
            data = np.asarray(values, dtype=float)
            if data.size < 2 or np.all(data == data[0]):
                v = float(data.mean()) if data.size else float("nan")
                return (v, v)
            res = bootstrap(
                (data,),
                np.mean,
                n_resamples=n_resamples,
                confidence_level=level,
                method="percentile",
                rng=rng,
            )
        else:
            assert statistic is not None and n is not None
            if n < 2:
                v = statistic(np.arange(n))
                return (v, v)
            res = bootstrap(
                (np.arange(n),),
                lambda idx: statistic(idx.astype(int)),
                n_resamples=n_resamples,
                confidence_level=level,
                method="percentile",
                vectorized=False,
                rng=rng,
            )
    low, high = res.confidence_interval
    return (float(low), float(high))


def score(
    name: str,
    preds: Sequence[str | None],
    refs: Sequence[str],
    items: Sequence[Any],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """One metric with its CI: ``{"value", "ci": [low, high], "n"}``.

    An unavailable metric returns ``{"value": None, "unavailable": "<why and how to fix>"}``
    instead of failing the run.
    """
    m = METRICS.get(name)
    try:
        if m.per_item:
            per = np.asarray(m.fn(preds, refs, items), dtype=float)
            valid = per[~np.isnan(per)]
            if valid.size == 0:
                return {"value": None, "ci": None, "n": 0}
            return {
                "value": float(valid.mean()),
                "ci": list(bootstrap_ci(valid, seed=seed)),
                "n": int(valid.size),
            }
        value = float(m.fn(preds, refs, items))
        p, r, it = list(preds), list(refs), list(items)

        def stat(idx: np.ndarray) -> float:
            return float(m.fn([p[i] for i in idx], [r[i] for i in idx], [it[i] for i in idx]))

        ci = bootstrap_ci(statistic=stat, n=len(p), n_resamples=300, seed=seed)
        return {"value": value, "ci": list(ci), "n": len(p)}
    except MetricUnavailableError as exc:
        return {"value": None, "ci": None, "n": 0, "unavailable": str(exc)}


def majority_baseline(refs: Sequence[str], *, seed: int = 0) -> dict[str, Any]:
    """Accuracy of always giving the most frequent gold answer, with its CI.

    This is the number an accuracy must beat to mean anything: a model that always answers "A"
    scores exactly the share of "A" answers.
    """
    if not refs:
        return {"value": None, "label": None, "ci": None}
    label, _ = Counter(refs).most_common(1)[0]
    hits = [float(r == label) for r in refs]
    return {
        "value": float(np.mean(hits)),
        "label": label,
        "ci": list(bootstrap_ci(hits, seed=seed)),
    }


def distribution(values: Sequence[str | None]) -> dict[str, int]:
    """Counts per answer (``None`` → ``"invalid"``), sorted by key."""
    counts = Counter("invalid" if v is None else str(v) for v in values)
    return dict(sorted(counts.items()))
