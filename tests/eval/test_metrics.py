"""Metrics agree with their reference libraries; CIs and baselines behave."""

from __future__ import annotations

import math

import pytest

from medmllm.errors import UnknownNameError
from medmllm.eval import metrics as M


class _It:
    def __init__(self, answer_type: str = "", context: str | None = None) -> None:
        self.meta = {"answer_type": answer_type} if answer_type else {}
        self.context = context


def test_accuracy_counts_invalid_as_wrong() -> None:
    assert M.accuracy(["A", None, "B"], ["A", "A", "C"], []) == [1.0, 0.0, 0.0]


def test_macro_f1_matches_sklearn() -> None:
    from sklearn.metrics import f1_score

    preds, refs = ["A", "B", "A", None, "C"], ["A", "B", "B", "C", "C"]
    expected = f1_score(
        refs,
        ["A", "B", "A", "<invalid>", "C"],
        labels=["A", "B", "C"],
        average="macro",
        zero_division=0,
    )
    assert M.macro_f1(preds, refs, []) == pytest.approx(expected)


def test_bleu_matches_references() -> None:
    import sacrebleu
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    preds = ["the heart is normal in size", "no acute disease"]
    refs = ["heart size is normal", "no acute cardiopulmonary disease"]
    got = M.METRICS.get("bleu2").fn(preds, refs, [])
    hyp = [M._tokens(p) for p in preds]
    ref = [[M._tokens(r)] for r in refs]
    assert got == pytest.approx(
        corpus_bleu(ref, hyp, weights=(0.5, 0.5), smoothing_function=SmoothingFunction().method1)
    )
    assert M.METRICS.get("sacrebleu").fn(preds, refs, []) == pytest.approx(
        sacrebleu.corpus_bleu(preds, [refs]).score / 100
    )


def test_rouge_l_matches_rouge_score() -> None:
    from rouge_score import rouge_scorer

    expected = (
        rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        .score("lungs are clear", "the lungs are clear")["rougeL"]
        .fmeasure
    )
    assert M.rouge_l(["the lungs are clear"], ["lungs are clear"], []) == [pytest.approx(expected)]


def test_meteor_reports_unavailable_or_scores() -> None:
    result = M.score("meteor", ["lungs clear"], ["the lungs are clear"], [_It()])
    if M.wordnet_available():
        assert 0 < result["value"] <= 1
    else:
        assert result["value"] is None and "WordNet" in result["unavailable"]
        assert "medmllm.eval.wordnet" in result["unavailable"]  # the fix, not just the fault


def test_vqa_closed_and_open() -> None:
    items = [_It("CLOSED"), _It("CLOSED"), _It("OPEN"), _It("OPEN")]
    preds = ["Yes, there is.", "no", "the right lung", "liver"]
    refs = ["yes", "yes", "Right lung", "spleen"]
    closed = M.vqa_closed(preds, refs, items)
    assert closed[:2] == [1.0, 0.0] and all(math.isnan(x) for x in closed[2:])
    opened = M.vqa_open(preds, refs, items)
    assert opened[2:] == [1.0, 0.0]
    assert M.token_recall(["right side lung"], ["right lung"], [_It()]) == [1.0]


def test_score_has_ci_around_value() -> None:
    result = M.score("accuracy", ["A"] * 30 + ["B"] * 30, ["A"] * 60, [None] * 60)
    assert result["value"] == 0.5 and result["n"] == 60
    low, high = result["ci"]
    assert low < 0.5 < high and high - low < 0.4


def test_corpus_metric_ci() -> None:
    preds = ["A", "B", "C", "A", "B", "C", "A", "A"]
    refs = ["A", "B", "C", "B", "B", "C", "C", "A"]
    result = M.score("macro_f1", preds, refs, [None] * 8)
    assert result["ci"][0] <= result["value"] <= result["ci"][1]


def test_majority_baseline_and_distribution() -> None:
    base = M.majority_baseline(["A", "A", "B", "C"])
    assert base["value"] == 0.5 and base["label"] == "A"
    assert M.distribution(["A", None, "A"]) == {"A": 2, "invalid": 1}


def test_groups_expand_and_unknown_metric() -> None:
    assert M.expand(["bleu", "rouge_l"])[:2] == ["bleu1", "bleu2"]
    with pytest.raises(UnknownNameError, match="Did you mean 'accuracy'"):
        M.expand(["acuracy"])


def test_hallucination_lexical_support(monkeypatch: pytest.MonkeyPatch) -> None:
    from medmllm.eval import hallucination

    monkeypatch.setattr(hallucination, "_rag_check", lambda: None)
    assert hallucination.method() == "lexical"
    share = M.hallucination(
        ["The lungs are clear. The patient has a fractured femur."],
        ["The lungs are clear and the heart is normal."],
        [_It()],
    )
    assert share == [0.5]


@pytest.mark.slow
def test_hallucination_uses_rag_grounding_when_present() -> None:
    pytest.importorskip("medmllm.rag.grounding")
    from medmllm.eval import hallucination

    assert hallucination.method() == "rag.grounding"
    share = M.hallucination(
        ["The lungs are clear. A dragon was seen in the mediastinum."],
        ["The lungs are clear and the heart is normal."],
        [_It()],
    )
    assert 0.5 <= share[0] <= 1.0


def test_wordnet_installer_copies_real_files_and_adds_lexnames(tmp_path) -> None:
    """`make setup` runs it: a fresh clone gets METEOR without a manual step (issue 19)."""
    from medmllm.errors import DataNotFoundError
    from medmllm.eval.wordnet import NEEDED, install_wordnet, lexnames_text

    source = tmp_path / "debian"
    source.mkdir()
    for name in NEEDED:
        (source / name).write_text(f"{name}\n")
    (source / "link").symlink_to(source / "data.noun")
    dest = install_wordnet(tmp_path / "nltk_data", source=source)
    assert dest == tmp_path / "nltk_data" / "corpora" / "wordnet"
    assert all((dest / name).read_text() == f"{name}\n" for name in NEEDED)
    assert not any(p.is_symlink() for p in dest.iterdir())  # NLTK rejects links
    lines = (dest / "lexnames").read_text().splitlines()
    assert len(lines) == 45 and lines[0] == "00\tadj.all\t3" and lines[44] == "44\tadj.ppl\t3"
    assert "18\tnoun.person\t1" in lexnames_text() and "43\tverb.weather\t2" in lexnames_text()
    (source / "index.sense").unlink()
    with pytest.raises(DataNotFoundError, match=r"index\.sense"):
        install_wordnet(tmp_path / "other", source=source)
