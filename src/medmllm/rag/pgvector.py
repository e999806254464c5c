"""The ``pgvector`` retriever: chunks, embeddings and full-text search in PostgreSQL.

Same ``search(query, k) -> list[Hit]`` as bm25 / dense / hybrid, for corpora that outgrow a local
faiss file or that several services must read while it is updated. Per index, two tables in the
``medmllm`` schema:

* ``ix_<hash>_docs``   — one row per document id (title, url, content hash);
* ``ix_<hash>_chunks`` — one row per chunk: the chunk as JSON, its text, a generated ``tsvector``
  (GIN index; ``ts_rank_cd`` is the lexical ranking), and its ``vector(dim)`` embedding (HNSW
  index, cosine). Deleting a document cascades to its chunks.

``medmllm.indexes`` lists the indexes (config, dimension, completeness) and
``medmllm.schema_migrations`` the applied schema versions; :data:`MIGRATIONS` are applied in order
under an advisory lock, so two processes never migrate at once.

Search modes (``RetrieverConfig.pg_mode``): ``dense`` (HNSW, or exact with ``pg_exact``),
``lexical`` (full-text, any query word), ``hybrid`` — both rankings fused by weighted
reciprocal rank **inside one SQL statement**, so one snapshot serves both sides. Hybrid weighs
the full-text side by ``pg_lexical_weight`` with ``pg_rrf_k``, not the local hybrid's
``bm25_weight``/``rrf_k``: ``ts_rank_cd`` ranks far worse than BM25 and needs a smaller weight
(tuned in bench/pgvector.py). Dense is the default: tuned hybrid does not beat it on MedQuAD R@1.

Writes (:meth:`PgVectorRetriever.add_chunks`, :meth:`~PgVectorRetriever.delete`) run in one
transaction per batch: readers see the index before or after a batch, never half a document.
Adding a document id that exists replaces it; two writers adding the same id serialise on its
document row (``INSERT … ON CONFLICT DO UPDATE`` locks it), so exactly one version's chunks remain.

The DSN comes from the caller or ``MEDMLLM_PG_DSN`` and is never written to a manifest.
Connections are pooled (psycopg 3 ``ConnectionPool``), after one plain connection attempt with a
short timeout: an unreachable server gives one line naming host and port, not a retry storm.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from medmllm.errors import (
    DatabaseConnectionError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidRequestError,
    MissingDependencyError,
    VectorExtensionError,
)
from medmllm.rag.chunk import Chunk
from medmllm.rag.embed import (
    EmbeddingCache,
    Encoder,
    embed_with_cache,
    passage_encoder,
    query_encoder,
)
from medmllm.rag.retriever import RETRIEVERS, BaseRetriever, Hit, RetrieverConfig

DSN_ENV = "MEDMLLM_PG_DSN"
INFO_FILE = "pgvector.json"
CONNECT_TIMEOUT_S = 5
_LOCK_ID = 0x6D65646D  # advisory lock key for schema migrations ("medm")

#: Versioned schema changes, applied in order; never edit an entry, append a new version.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "index registry",
        """
        CREATE TABLE IF NOT EXISTS medmllm.indexes (
            name text PRIMARY KEY,
            tables text NOT NULL UNIQUE,
            config jsonb NOT NULL,
            embedding_model text NOT NULL,
            dim integer NOT NULL CHECK (dim > 0),
            complete boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """,
    ),
]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingDependencyError(
            "the pgvector retriever needs psycopg 3", hint="pip install 'medmllm[pg]'"
        ) from None
    return psycopg


def resolve_dsn(dsn: str | None = None) -> str:
    """``dsn`` or ``$MEDMLLM_PG_DSN``; an error naming both when neither is set."""
    dsn = dsn or os.environ.get(DSN_ENV)
    if not dsn:
        raise InvalidRequestError(
            "no PostgreSQL DSN given",
            hint=f"pass --dsn postgresql://user@host:5432/db or set {DSN_ENV}",
        )
    return dsn


def describe_dsn(dsn: str) -> str:
    """``host:port/db`` of a DSN (no password), for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "<unparsable DSN>"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def _connect_once(dsn: str) -> Any:
    psycopg = _psycopg()
    try:
        return psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseConnectionError(
            f"cannot connect to PostgreSQL at {describe_dsn(dsn)}: {reason}",
            hint=f"check the server is running and the DSN (--dsn or {DSN_ENV})",
        ) from None


def ensure_schema(conn: Any, dsn: str) -> int:
    """Create the vector extension if allowed, apply pending :data:`MIGRATIONS`; the version."""
    psycopg = _psycopg()
    has_vector = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if not has_vector:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            where = describe_dsn(dsn)
            db = where.rsplit("/", 1)[-1]
            raise VectorExtensionError(
                f"database {where} has no 'vector' extension and it cannot be created here "
                f"({str(exc).strip().splitlines()[0]})",
                hint=f"as a superuser run: psql -d {db} -c 'CREATE EXTENSION vector;' "
                "(install pgvector on the server first if it is missing)",
            ) from None
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS medmllm")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS medmllm.schema_migrations (version integer PRIMARY KEY, "
            "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM medmllm.schema_migrations")
        current = int(row.fetchone()[0])
        for version, description, statement in MIGRATIONS:
            if version > current:
                conn.execute(statement)
                conn.execute(
                    "INSERT INTO medmllm.schema_migrations (version, description) VALUES (%s, %s)",
                    (version, description),
                )
                current = version
    return current


class _Pools:
    """One pool per DSN per process (opened after a successful plain connection)."""

    def __init__(self) -> None:
        self._pools: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, dsn: str) -> Any:
        with self._lock:
            pool = self._pools.get(dsn)
            if pool is None:
                with _connect_once(dsn) as conn:
                    ensure_schema(conn, dsn)
                from pgvector.psycopg import register_vector
                from psycopg_pool import ConnectionPool

                pool = ConnectionPool(
                    dsn,
                    min_size=1,
                    max_size=8,
                    kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
                    configure=register_vector,
                    reconnect_timeout=CONNECT_TIMEOUT_S * 2,
                    open=True,
                )
                self._pools[dsn] = pool
            return pool

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


POOLS = _Pools()


def _tables(name: str) -> str:
    """Table-name stem for index ``name`` (any index name fits PostgreSQL's 63-byte limit)."""
    return "ix_" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _doc_hash(chunks: Sequence[Chunk]) -> str:
    digest = hashlib.sha256()
    for c in chunks:
        digest.update(json.dumps(c.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


# Any query word (OR), English stemming: AND (plainto_tsquery) would miss most natural questions.
_TSQUERY_SQL = (
    "to_tsquery('english', coalesce(nullif(array_to_string(array(SELECT quote_literal(l) "
    "FROM unnest(tsvector_to_array(to_tsvector('english', %(q)s))) AS l), ' | '), ''), ''))"
)


@RETRIEVERS.register("pgvector")
class PgVectorRetriever(BaseRetriever):
    """Chunks in PostgreSQL: HNSW cosine search, full-text search and RRF hybrid in SQL.

    Args:
        config: retriever settings (``pg_index`` names the index in the database).
        dsn: PostgreSQL DSN; default ``$MEDMLLM_PG_DSN``.
    """

    kind = "pgvector"

    def __init__(self, config: RetrieverConfig, dsn: str | None = None) -> None:
        super().__init__(config)
        self._dsn = dsn
        self.name = config.pg_index
        self.cached = 0
        stem = _tables(self.name)
        self._docs_table, self._chunks_table = f"{stem}_docs", f"{stem}_chunks"

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        return resolve_dsn(self._dsn)

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        from psycopg.pq import TransactionStatus
        from psycopg_pool import PoolTimeout

        pool = POOLS.get(self.dsn)
        try:
            conn = pool.getconn(timeout=CONNECT_TIMEOUT_S * 2)
        except PoolTimeout:  # the server went away after the pool was opened
            raise DatabaseConnectionError(
                f"lost the connection to PostgreSQL at {describe_dsn(self.dsn)}",
                hint=f"check the server is running and the DSN (--dsn or {DSN_ENV})",
            ) from None
        try:
            yield conn
        finally:
            # A read leaves its transaction open; end it here, or the pool logs a "rolling back
            # returned connection" warning each time. Writes commit in `conn.transaction()`.
            if conn.info.transaction_status == TransactionStatus.INTRANS:
                conn.rollback()
            pool.putconn(conn)  # the pool rolls back anything else unfinished (an error)

    def _sql(self, template: str) -> Any:
        from psycopg import sql

        return sql.SQL(template).format(
            docs=sql.Identifier("medmllm", self._docs_table),
            chunks=sql.Identifier("medmllm", self._chunks_table),
            hnsw=sql.Identifier(f"{self._chunks_table}_hnsw"),
            gin=sql.Identifier(f"{self._chunks_table}_tsv"),
        )

    @property
    def encoder(self) -> Encoder:
        return passage_encoder(self.config)

    @property
    def query_encoder(self) -> Encoder:
        return query_encoder(self.config)

    # -- schema --------------------------------------------------------------------------------
    def stored_dim(self) -> int | None:
        """The vector dimension of this index in the database (None: no such index)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT dim FROM medmllm.indexes WHERE name = %s", (self.name,)
            ).fetchone()
        return int(row[0]) if row else None

    def stored_config(self) -> dict[str, Any] | None:
        """The retriever config stored with this index (None: no such index)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT config FROM medmllm.indexes WHERE name = %s", (self.name,)
            ).fetchone()
        return dict(row[0]) if row else None

    def _check_dim(self, dim: int) -> None:
        stored = self.stored_dim()
        if stored is not None and stored != dim:
            raise IndexMismatchError(
                f"pgvector index {self.name!r} at {describe_dsn(self.dsn)} holds {stored}-dim "
                f"vectors but embedding model {self.config.embedding_model!r} makes {dim}-dim ones",
                hint="use the model the index was built with, or drop the index and migrate "
                "again: medmllm index migrate NAME --to pgvector --replace",
            )

    def create(self, dim: int, *, replace: bool = False) -> None:
        """Create this index's tables (``replace`` drops existing ones first)."""
        if not replace:
            self._check_dim(dim)
        config = self.config.model_dump_json()
        with self._conn() as conn, conn.transaction():
            if replace:
                conn.execute(self._sql("DROP TABLE IF EXISTS {chunks}, {docs}"))
                conn.execute("DELETE FROM medmllm.indexes WHERE name = %s", (self.name,))
            conn.execute(
                "INSERT INTO medmllm.indexes (name, tables, config, embedding_model, dim) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (self.name, _tables(self.name), config, self.config.embedding_model, dim),
            )
            conn.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {docs} (doc_id text PRIMARY KEY, "
                    "content_hash text NOT NULL, n_chunks integer NOT NULL, "
                    "updated_at timestamptz NOT NULL DEFAULT now())"
                )
            )
            conn.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {chunks} (id bigserial PRIMARY KEY, "
                    "doc_id text NOT NULL REFERENCES {docs} (doc_id) ON DELETE CASCADE, "
                    "position integer NOT NULL, chunk jsonb NOT NULL, body text NOT NULL, "
                    "tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED, "
                    f"embedding vector({int(dim)}) NOT NULL, UNIQUE (doc_id, position))"
                )
            )
            conn.execute(self._sql("CREATE INDEX IF NOT EXISTS {gin} ON {chunks} USING gin (tsv)"))

    def finish(self) -> None:
        """Build the HNSW index if missing (fast after a bulk load) and mark the index complete.

        One committed transaction: without it the pool rolled both statements back, so the
        index was searched by sequential scan and never marked complete."""
        with self._conn() as conn, conn.transaction():
            conn.execute(
                self._sql(
                    "CREATE INDEX IF NOT EXISTS {hnsw} ON {chunks} USING hnsw "
                    "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
                )
            )
            conn.execute(
                "UPDATE medmllm.indexes SET complete = true, updated_at = now() WHERE name = %s",
                (self.name,),
            )

    def drop(self) -> None:
        """Remove this index from the database."""
        with self._conn() as conn, conn.transaction():
            conn.execute(self._sql("DROP TABLE IF EXISTS {chunks}, {docs}"))
            conn.execute("DELETE FROM medmllm.indexes WHERE name = %s", (self.name,))

    # -- writes --------------------------------------------------------------------------------
    def doc_hashes(self) -> dict[str, str]:
        """Content hash of every stored document (what a resumed migration can skip)."""
        with self._conn() as conn:
            rows = conn.execute(self._sql("SELECT doc_id, content_hash FROM {docs}")).fetchall()
        return dict(rows)

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> int:
        """Add or replace the documents of ``chunks`` (grouped by doc id) in one transaction.

        Returns:
            The number of documents written.
        """
        by_doc: dict[str, list[tuple[Chunk, np.ndarray]]] = {}
        for chunk, vector in zip(chunks, vectors, strict=True):
            by_doc.setdefault(chunk.doc_id, []).append((chunk, vector))
        upsert = self._sql(
            "INSERT INTO {docs} (doc_id, content_hash, n_chunks) VALUES (%s, %s, %s) "
            "ON CONFLICT (doc_id) DO UPDATE SET content_hash = EXCLUDED.content_hash, "
            "n_chunks = EXCLUDED.n_chunks, updated_at = now()"
        )
        clear = self._sql("DELETE FROM {chunks} WHERE doc_id = %s")
        copy = self._sql("COPY {chunks} (doc_id, position, chunk, body, embedding) FROM STDIN")
        with self._conn() as conn, conn.transaction():
            # Sorted ids: two writers lock document rows in the same order (no deadlock).
            for doc_id in sorted(by_doc):
                items = by_doc[doc_id]
                conn.execute(upsert, (doc_id, _doc_hash([c for c, _ in items]), len(items)))
                conn.execute(clear, (doc_id,))
            with conn.cursor().copy(copy) as out:
                for doc_id in sorted(by_doc):
                    for position, (chunk, vector) in enumerate(by_doc[doc_id]):
                        out.write_row(
                            (
                                doc_id,
                                position,
                                json.dumps(chunk.to_dict()),
                                chunk.indexed_text,
                                np.asarray(vector, dtype=np.float32),
                            )
                        )
        return len(by_doc)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove documents (and their chunks); returns how many existed."""
        with self._conn() as conn, conn.transaction():
            cur = conn.execute(
                self._sql("DELETE FROM {docs} WHERE doc_id = ANY(%s)"), (list(doc_ids),)
            )
            return cur.rowcount

    def embed(self, chunks: Sequence[Chunk]) -> np.ndarray:
        """Passage vectors for ``chunks`` through the shared embedding cache."""
        cache = EmbeddingCache(self.config.embedding_model, self.config.max_seq_length)
        vectors, self.cached = embed_with_cache(
            self.encoder,
            [c.indexed_text for c in chunks],
            [c.hash for c in chunks],
            cache,
            batch_size=self.config.batch_size,
        )
        return vectors

    def build(self, chunks: list[Chunk], *, progress: bool = True) -> None:
        """Replace the index in the database with ``chunks``."""
        vectors = self.embed(chunks)
        self.create(self.encoder.dim, replace=True)
        for start in range(0, len(chunks), 2000):
            self.add_chunks(chunks[start : start + 2000], vectors[start : start + 2000])
        self.finish()

    def count(self) -> tuple[int, int]:
        """(documents, chunks) stored."""
        with self._conn() as conn:
            docs = conn.execute(self._sql("SELECT count(*) FROM {docs}")).fetchone()[0]
            chunks = conn.execute(self._sql("SELECT count(*) FROM {chunks}")).fetchone()[0]
        return int(docs), int(chunks)

    # -- search --------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first (see the module doc for modes)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("the search query is empty", hint='e.g. "asthma inhaler"')
        if k < 1:
            raise InvalidRequestError(f"k must be >= 1, got {k}", hint="pass -k 5")
        return self._search(query.strip(), k)

    def _search(self, query: str, k: int) -> list[Hit]:
        mode = self.config.pg_mode
        n = max(k, self.config.candidates)
        params: dict[str, Any] = {"q": query, "k": k, "n": n, "rrf_k": self.config.pg_rrf_k}
        if mode != "lexical":
            params["vec"] = self.query_encoder.encode_query(query).astype(np.float32)
        # Exact: an ORDER BY the HNSW index cannot serve. `enable_indexscan = off` alone still let
        # the planner pick the index on a 100k-row table (bench: recall 0.94 "exact").
        order = "(embedding <=> %(vec)s) + 0" if self.config.pg_exact else "embedding <=> %(vec)s"
        if mode == "dense":
            statement = (
                "SELECT chunk, 1 - (embedding <=> %(vec)s) AS score FROM {chunks} "
                f"ORDER BY {order}, id LIMIT %(k)s"
            )
        elif mode == "lexical":
            statement = (
                f"WITH q AS (SELECT {_TSQUERY_SQL} AS tsq) "
                "SELECT chunk, ts_rank_cd(tsv, q.tsq) AS score FROM {chunks}, q "
                "WHERE tsv @@ q.tsq ORDER BY score DESC, id LIMIT %(k)s"
            )
        else:
            params["wd"], params["wl"] = self.config.dense_weight, self.config.pg_lexical_weight
            statement = (
                f"WITH q AS (SELECT {_TSQUERY_SQL} AS tsq), "
                "dense AS (SELECT id, row_number() OVER (ORDER BY dist, id) AS rank FROM "
                "(SELECT id, embedding <=> %(vec)s AS dist FROM {chunks} "
                f"ORDER BY {order}, id LIMIT %(n)s) d), "
                "lexical AS (SELECT id, row_number() OVER (ORDER BY r DESC, id) AS rank FROM "
                "(SELECT id, ts_rank_cd(tsv, q.tsq) AS r FROM {chunks}, q WHERE tsv @@ q.tsq "
                "ORDER BY r DESC, id LIMIT %(n)s) l), "
                "fused AS (SELECT id, sum(s) AS score FROM ("
                "SELECT id, %(wd)s::float8 / (%(rrf_k)s + rank) AS s FROM dense UNION ALL "
                "SELECT id, %(wl)s::float8 / (%(rrf_k)s + rank) FROM lexical) u GROUP BY id) "
                "SELECT c.chunk, f.score FROM fused f JOIN {chunks} c USING (id) "
                "ORDER BY f.score DESC, f.id LIMIT %(k)s"
            )
        with self._conn() as conn, conn.transaction():
            if self.config.pg_exact:  # no index scan: a sequential scan + sort is exact
                conn.execute("SET LOCAL enable_indexscan = off")
            else:
                conn.execute(f"SET LOCAL hnsw.ef_search = {int(max(self.config.pg_ef_search, n))}")
            rows = conn.execute(self._sql(statement), params).fetchall()
        return [Hit.of(Chunk.from_dict(chunk), float(score)) for chunk, score in rows]

    # -- index folder --------------------------------------------------------------------------
    def save(self, folder: Path) -> list[str]:
        """A pointer file (index name, dimension; never the DSN)."""
        info = {"pg_index": self.name, "embedding_model": self.config.embedding_model}
        (folder / INFO_FILE).write_text(json.dumps(info))
        return [INFO_FILE]

    def load(self, folder: Path, chunks: list[Chunk]) -> None:
        """Connect and check the index exists with the model's dimension."""
        self.chunks = list(chunks)
        self.attach()

    def attach(self) -> None:
        """Check the index exists in the database and matches the query model's dimension."""
        if self.stored_dim() is None:
            raise IndexNotFoundError(
                f"no pgvector index {self.name!r} at {describe_dsn(self.dsn)}",
                hint=f"copy a local index there: medmllm index migrate {self.name} --to pgvector "
                "--dsn DSN",
            )
        self._check_dim(self.query_encoder.dim)
