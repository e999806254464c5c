"""``medmllm index build|list|search|rm|starter``: manage retrieval indexes (thin over rag/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

index_app = typer.Typer(
    name="index",
    help="Build, list, search and remove retrieval indexes (for ask --index).",
    no_args_is_help=True,
)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _summary(report) -> str:
    return (
        f"index {report.name!r} ({report.kind}): {report.doc_count} docs "
        f"(+{report.docs_added} new, {report.docs_updated} updated, "
        f"{report.docs_unchanged} unchanged), {report.chunk_count} chunks, "
        f"{report.chunks_from_cache} embeddings from cache, {report.seconds:.1f} s "
        f"→ {report.folder}"
    )


def _check_numbers(**values: int | None) -> None:
    """Checked before the corpus is read (a large folder should not be loaded for nothing)."""
    from medmllm.errors import InvalidRequestError

    for name, value in values.items():
        low = 0 if name == "chunk_overlap" else 1
        if value is not None and value < low:
            flag = "--" + name.replace("_", "-")
            raise InvalidRequestError(f"{flag} must be >= {low}, got {value}", hint="see --help")


FROM_OPT = typer.Option(..., "--from", help="JSONL file or folder of .txt/.md/.pdf.")


@index_app.command("build")
def build(
    name: str = typer.Argument(..., help="Index name (letters, digits, '.', '_', '-')."),
    source: Path = FROM_OPT,
    fmt: str | None = typer.Option(
        None, "--format", help="jsonl, dir, medquad or pubmedqa (default: guessed)."
    ),
    retriever: str | None = typer.Option(
        None, "--retriever", "-r", help="bm25, dense or hybrid (default: hybrid, or the index's)."
    ),
    embedding_model: str | None = typer.Option(
        None,
        "--embedding-model",
        help="sentence-transformers id/folder (default: embedded MiniLM).",
    ),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Replace the index instead of adding documents to it."
    ),
    id_field: str = typer.Option("id", "--id-field", help="JSONL field holding the id."),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field holding the text."),
    title_field: str = typer.Option("title", "--title-field", help="JSONL field: title."),
    url_field: str = typer.Option("url", "--url-field", help="JSONL field: url."),
    chunk_tokens: int | None = typer.Option(None, "--chunk-tokens", help="Words per chunk."),
    chunk_overlap: int | None = typer.Option(None, "--chunk-overlap", help="Overlap in words."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Embedding batch size."),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="Named retriever settings: minilm (default, offline) or medcpt (MedCPT query and "
        "article encoders from the hub).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    wait: float = typer.Option(
        600.0, "--wait", help="Seconds to wait while another process writes NAME (then exit 2)."
    ),
) -> None:
    """Index documents into NAME (adds to an existing index unless --rebuild)."""
    _check_numbers(chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, batch_size=batch_size)
    from medmllm.rag.chunk import ChunkConfig
    from medmllm.rag.corpus import load_corpus
    from medmllm.rag.index import build_index, check_name
    from medmllm.rag.retriever import RetrieverConfig, preset_config

    check_name(name)
    if preset is not None:
        preset_config(preset)  # unknown preset: fail before reading the corpus
    options = {}
    if (fmt or "jsonl") == "jsonl":
        options = {
            "id_field": id_field,
            "text_field": text_field,
            "title_field": title_field,
            "url_field": url_field,
        }
    docs, load_report = load_corpus(source, fmt, **options)
    for path, reason in load_report.skipped[:10]:
        err.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(reason)}", soft_wrap=True)
    if load_report.skipped:
        err.print(f"[yellow]skipped {len(load_report.skipped)} file(s)/row(s) in total[/]")
    retriever_options = {
        key: value
        for key, value in (
            ("kind", retriever),
            ("embedding_model", embedding_model),
            ("batch_size", batch_size),
        )
        if value is not None
    }
    if retriever == "pgvector":  # the database copy is named like the local index
        retriever_options["pg_index"] = name
    chunk_options = {
        key: value
        for key, value in (("max_tokens", chunk_tokens), ("overlap", chunk_overlap))
        if value is not None
    }
    from pydantic import ValidationError

    from medmllm.validation import config_error

    try:
        retriever_config: RetrieverConfig | None
        if preset is not None:
            retriever_config = preset_config(preset, **retriever_options)
        else:
            retriever_config = RetrieverConfig(**retriever_options) if retriever_options else None
        chunk_config = ChunkConfig(**chunk_options) if chunk_options else None
    except ValidationError as exc:
        raise config_error(exc, "index option", hint="see medmllm index build --help") from None
    if retriever_config is not None:
        from medmllm.rag.retriever import RETRIEVERS

        RETRIEVERS.get(retriever_config.kind)  # unknown kind → did-you-mean before any work
    report = build_index(
        name,
        docs,
        retriever=retriever_config,
        chunking=chunk_config,
        rebuild=rebuild,
        sources=[str(Path(source).resolve())],
        progress=not quiet,
        lock_timeout=wait,
        on_wait=lambda pid: err.print(
            f"index {name!r} is being written by another process (pid {pid}); waiting up to "
            f"{wait:.0f} s…"
        ),
    )
    report.skipped = load_report.skipped
    console.print(_summary(report), soft_wrap=True)
    if report.ids_disambiguated:
        err.print(
            f"[yellow]warning:[/] {report.ids_disambiguated} document(s) have the same relative "
            "path as one from another folder; both kept (the new one's id ends in @<hash>)"
        )
    if report.docs_updated:
        err.print(
            f"[yellow]warning:[/] {report.docs_updated} document(s) already in {name!r} with the "
            "same id were replaced by the new version"
        )


@index_app.command("starter")
def starter(
    name: str = typer.Option("starter", "--name", help="Index name for the starter pack."),
    retriever: str = typer.Option("hybrid", "--retriever", "-r", help="bm25, dense or hybrid."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Index the built-in starter knowledge pack (common conditions and drugs)."""
    from medmllm.rag.starter import build_starter_index

    console.print(_summary(build_starter_index(name, kind=retriever, progress=not quiet)))


@index_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List indexes with their retriever, size and embedding model."""
    from medmllm.errors import MedMLLMError
    from medmllm.rag.index import list_indexes, read_manifest

    rows: list[dict[str, Any]] = []
    for name in list_indexes():
        try:
            m = read_manifest(name)
            rows.append(
                {
                    "name": name,
                    "retriever": m.retriever.kind,
                    "docs": m.doc_count,
                    "chunks": m.chunk_count,
                    "embedding_model": m.embedding_model,
                    "updated_at": m.updated_at,
                }
            )
        except MedMLLMError as exc:
            rows.append({"name": name, "error": exc.message})
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        console.print("no indexes yet: medmllm index build NAME --from PATH (or index starter)")
        return
    table = Table("name", "retriever", "docs", "chunks", "embedding model", "updated")
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], f"[red]broken: {row['error']}[/]", "", "", "", "")
        else:
            table.add_row(
                row["name"],
                row["retriever"],
                str(row["docs"]),
                str(row["chunks"]),
                row["embedding_model"] or "-",
                row["updated_at"],
            )
    console.print(table)


@index_app.command("search")
def search(
    name: str = typer.Argument(..., help="Index name."),
    query: str = typer.Argument(..., help="What to search for."),
    k: int = typer.Option(5, "-k", "--top-k", help="Number of results (>= 1)."),
    embedding_model: str | None = typer.Option(
        None, "--embedding-model", help="Refuse to search if the index used another model."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    dsn: str | None = typer.Option(
        None, "--dsn", help="Search the pgvector copy of NAME in this PostgreSQL database."
    ),
    mode: str | None = typer.Option(
        None, "--mode", help="pgvector: dense (default), hybrid or lexical."
    ),
    exact: bool = typer.Option(False, "--exact", help="pgvector: exact instead of HNSW search."),
) -> None:
    """Search an index and print the best passages with their sources."""
    from medmllm.errors import InvalidRequestError
    from medmllm.rag.index import open_index

    if not query.strip():
        raise InvalidRequestError("the search query is empty", hint='e.g. "asthma inhaler"')
    if k < 1:
        raise InvalidRequestError(f"-k must be >= 1, got {k}", hint="pass -k 5")
    if dsn is not None:
        from medmllm.rag.pg_migrate import open_pg_index

        hits = open_pg_index(name, dsn=dsn, mode=mode, exact=exact).search(query, k)
    else:
        hits = open_index(name, embedding_model=embedding_model).search(query, k)
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    if not hits:
        console.print("no matching passages")
    for n, hit in enumerate(hits, start=1):
        title = escape(hit.chunk.title or hit.doc_id)
        console.print(f"[bold]\\[{n}] {title}[/]  [dim]{hit.score:.4f} · {escape(hit.source)}[/]")
        text = hit.chunk.text
        console.print(f"    {text[:300]}{'…' if len(text) > 300 else ''}", markup=False)


@index_app.command("rm")
def rm(name: str = typer.Argument(..., help="Index name.")) -> None:  # waits for a writer
    """Delete an index."""
    from medmllm.rag.index import remove_index

    console.print(f"removed {remove_index(name)}")


@index_app.command("migrate")
def migrate(
    name: str = typer.Argument(..., help="Local index to copy."),
    to: str = typer.Option(..., "--to", help="Destination backend: pgvector."),
    dsn: str | None = typer.Option(
        None, "--dsn", help="PostgreSQL DSN (default: $MEDMLLM_PG_DSN)."
    ),
    target: str | None = typer.Option(None, "--as", help="Index name in the database."),
    replace: bool = typer.Option(False, "--replace", help="Drop the database copy first."),
    batch_docs: int = typer.Option(200, "--batch-docs", help="Documents per transaction."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Copy a local index into PostgreSQL + pgvector (vectors reused; rerun resumes)."""
    from medmllm.errors import InvalidRequestError
    from medmllm.rag.pg_migrate import migrate_index

    if to != "pgvector":
        raise InvalidRequestError(f"unknown migration target {to!r}", hint="use --to pgvector")
    r = migrate_index(
        name, dsn=dsn, target=target, replace=replace, batch_docs=batch_docs, progress=not quiet
    )
    console.print(
        f"migrated {r.name!r} → pgvector {r.target!r} at {r.where}: {r.docs_copied} docs copied, "
        f"{r.docs_skipped} already there, {r.docs_deleted} deleted, {r.chunks} chunks, "
        f"vectors {'reused' if r.vectors_reused else 'embedded'}, {r.seconds:.1f} s",
        soft_wrap=True,
    )


@index_app.command("gc")
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be removed."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remove embedding-cache vectors that no local index uses (replaced or deleted text)."""
    from dataclasses import asdict

    from medmllm.rag.cache_gc import collect_garbage

    report = collect_garbage(dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    verb = "would remove" if report.dry_run else "removed"
    console.print(
        f"embedding cache: {verb} {report.orphaned} orphaned vectors "
        f"({report.bytes_freed / 1e6:.1f} MB), kept {report.kept}",
        soft_wrap=True,
    )
    if report.skipped_indexes:
        err.print(
            f"[yellow]nothing deleted: unreadable index(es) {', '.join(report.skipped_indexes)}"
            " — repair or remove them first (their vectors would count as orphans)[/]"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
