"""Documents to index, and the loaders that read them from JSONL, folders and the shared data.

A :class:`Document` is the unit a user thinks in (a guideline page, a PDF, an FAQ answer); it keeps
its id, title and url so that answers can cite it. Loaders never guess silently: a malformed JSONL
line stops with its line number, an unreadable file in a folder is skipped *and counted* in the
:class:`LoadReport`, and a source with no text at all raises :class:`EmptyCorpusError`.

Example:
    >>> from medmllm.rag.corpus import load_corpus
    >>> docs, report = load_corpus("notes/", fmt="dir")  # doctest: +SKIP
    >>> report.skipped  # files that could not be read  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmllm.errors import DataFormatError, DataNotFoundError, EmptyCorpusError
from medmllm.jsonl import iter_jsonl
from medmllm.registry import Registry

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
PDF_SUFFIX = ".pdf"


@dataclass
class Document:
    """One source document.

    Attributes:
        id: unique, stable id (a JSONL field, the file path relative to the folder, a PMID…).
        text: the full text; chunk offsets refer to it.
        title: shown in citations; also prepended to every chunk so that a chunk from the middle
            of a page still says what it is about.
        url: where a reader can check the source (printed under the answer).
        source: the collection or file it came from.
        metadata: anything else worth keeping (qtype, year…); JSON-serialisable.
    """

    id: str
    text: str
    title: str = ""
    url: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "source": self.source,
            "text": self.text,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Document:
        return cls(
            id=str(row["id"]),
            text=row["text"],
            title=row.get("title", ""),
            url=row.get("url", ""),
            source=row.get("source", ""),
            metadata=row.get("metadata") or {},
        )


@dataclass
class LoadReport:
    """What a loader read and what it had to skip (printed after ``medmllm index build``)."""

    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def skip(self, path: Path | str, reason: str) -> None:
        # debug, not warning: the caller prints the report (the CLI did, and every line twice)
        log.debug("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))


Loader = Callable[..., Iterable[Document]]
LOADERS: Registry[Loader] = Registry("corpus format")


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """Yield (line number, object); a malformed line stops with its number and the fix."""
    if not path.is_file():
        raise DataNotFoundError(f"corpus file not found: {path}", hint="pass an existing --from")
    yield from iter_jsonl(path)


@LOADERS.register("jsonl")
def load_jsonl(
    path: Path,
    *,
    id_field: str = "id",
    text_field: str = "text",
    title_field: str = "title",
    url_field: str = "url",
    source_field: str = "source",
    report: LoadReport | None = None,
) -> Iterable[Document]:
    """Generic JSONL: one object per line, field names mapped by the ``*_field`` arguments.

    Rows without the id or text field are errors (with the line number), not silent skips:
    a wrong ``--text-field`` would otherwise index nothing and say nothing.
    """
    report = report if report is not None else LoadReport()
    mapped = {id_field, text_field, title_field, url_field, source_field}
    for lineno, row in _read_jsonl(path):
        for key in (id_field, text_field):
            if key not in row:
                raise DataFormatError(
                    f"{path}:{lineno}: no field {key!r} (fields: {', '.join(sorted(row))})",
                    hint="map your field names with --id-field/--text-field",
                )
        text = row[text_field]
        if not isinstance(text, str) or not text.strip():
            report.skip(f"{path}:{lineno}", "empty text")
            continue
        report.loaded += 1
        yield Document(
            id=str(row[id_field]),
            text=text,
            title=str(row.get(title_field) or ""),
            url=str(row.get(url_field) or ""),
            source=str(row.get(source_field) or path.name),
            metadata={k: v for k, v in row.items() if k not in mapped},
        )


def _read_text_file(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise ValueError("binary content (NUL bytes)")
    return raw.decode("utf-8")


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return "\n\n".join((page.extract_text() or "") for page in reader.pages)


def _walk_files(root: Path, report: LoadReport) -> list[Path]:
    """Every regular file under ``root``; unreadable folders and broken links are reported."""
    import os

    def unreadable(exc: OSError) -> None:
        report.skip(exc.filename or root, f"unreadable folder: {exc.strerror or exc}")

    files = []
    for folder, _, names in os.walk(root, onerror=unreadable):
        for name in names:
            file = Path(folder) / name
            if file.is_symlink() and not file.exists():
                report.skip(file, "broken symlink")
            elif file.is_file():
                files.append(file)
    return sorted(files)


@LOADERS.register("dir")
def load_dir(path: Path, *, report: LoadReport | None = None, **_: Any) -> Iterable[Document]:
    """A folder (searched recursively) of .txt, .md and .pdf files; one document per file.

    Unreadable files (binary, bad encoding, broken PDF), unreadable sub-folders and broken
    symlinks are skipped and counted in the report, because one bad attachment should not stop
    indexing a guideline folder. Other suffixes are ignored on purpose (images, spreadsheets)
    and counted too. The id is the path relative to the folder; the url (``file://`` + the
    resolved path) tells two folders' ``doc1.txt`` apart when both go into one index
    (:func:`medmllm.rag.index.build_index` keeps both).
    """
    report = report if report is not None else LoadReport()
    if not path.is_dir():
        raise DataNotFoundError(f"corpus folder not found: {path}", hint="pass an existing --from")
    for file in _walk_files(path, report):
        suffix = file.suffix.lower()
        if suffix not in (*TEXT_SUFFIXES, PDF_SUFFIX):
            report.skip(file, f"unsupported file type {suffix or '(none)'!r}")
            continue
        try:
            text = _read_pdf(file) if suffix == PDF_SUFFIX else _read_text_file(file)
        except Exception as exc:  # pypdf raises many types; any of them means "unreadable"
            report.skip(file, f"unreadable: {type(exc).__name__}: {exc}")
            continue
        if not text.strip():
            report.skip(file, "no text")
            continue
        report.loaded += 1
        rel = file.relative_to(path).as_posix()
        first = text.strip().splitlines()[0].lstrip("# ").strip()
        yield Document(
            id=rel,
            text=text,
            title=first[:120] if suffix != PDF_SUFFIX else file.stem,
            url=file.resolve().as_uri(),
            source=path.name,
        )


@LOADERS.register("medquad")
def load_medquad(path: Path, *, report: LoadReport | None = None, **_: Any) -> Iterable[Document]:
    """MedQuAD as RAG documents: the ``answer`` is the text (never the question field).

    MedQuAD question ids repeat (8,143 distinct ids for 10,000 rows in ../shared/data, even
    within one collection), so the document id is ``<qid>@<line>``; the qid stays in metadata.
    """
    report = report if report is not None else LoadReport()
    for lineno, row in _read_jsonl(path):
        try:
            text, doc_id = row["answer"], row["id"]
        except KeyError as exc:
            raise DataFormatError(
                f"{path}:{lineno}: MedQuAD row without {exc.args[0]!r}",
                hint="use --format jsonl with --text-field for other JSONL files",
            ) from None
        report.loaded += 1
        yield Document(
            id=f"{doc_id}@{lineno}",
            text=text,
            title=row.get("title", ""),
            url=row.get("url", ""),
            source=row.get("source", "MedQuAD"),
            metadata={
                "qid": str(doc_id),
                "qtype": row.get("qtype", ""),
                "collection": row.get("collection", ""),
            },
        )


@LOADERS.register("pubmedqa")
def load_pubmedqa(path: Path, *, report: LoadReport | None = None, **_: Any) -> Iterable[Document]:
    """PubMedQA: one document per abstract passage (``contexts``), id ``<pmid>-<i>``.

    The question and the answer label are *not* indexed: retrieval must find the evidence, not
    the question itself.
    """
    report = report if report is not None else LoadReport()
    for lineno, row in _read_jsonl(path):
        if "pmid" not in row or "contexts" not in row:
            raise DataFormatError(
                f"{path}:{lineno}: PubMedQA row needs 'pmid' and 'contexts'",
                hint="use --format jsonl with --text-field for other JSONL files",
            )
        pmid = str(row["pmid"])
        labels = row.get("labels") or []
        for i, context in enumerate(row["contexts"]):
            report.loaded += 1
            yield Document(
                id=f"{pmid}-{i}",
                text=context,
                title=labels[i].title() if i < len(labels) else f"PMID {pmid}",
                url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/",
                source="PubMedQA",
                metadata={"pmid": pmid},
            )


def detect_format(path: Path) -> str:
    """Guess the format: a folder is ``dir``; JSONL is sniffed from its first object's keys."""
    if path.is_dir():
        return "dir"
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise DataFormatError(
            f"cannot tell the format of {path}",
            hint="pass --format jsonl|dir|medquad|pubmedqa",
        )
    for _, row in _read_jsonl(path):
        if "contexts" in row and "pmid" in row:
            return "pubmedqa"
        if "answer" in row and "qtype" in row:
            return "medquad"
        return "jsonl"
    return "jsonl"


def load_corpus(
    path: str | Path, fmt: str | None = None, **options: Any
) -> tuple[list[Document], LoadReport]:
    """Load every document of ``path`` with the named format (guessed when None).

    Args:
        path: a JSONL file or a folder.
        fmt: ``jsonl``, ``dir``, ``medquad``, ``pubmedqa`` or a registered plugin format.
        **options: loader options, e.g. ``text_field="body"`` for ``jsonl``.

    Returns:
        The documents (a repeated id keeps the last one, counted in the report) and the report.

    Raises:
        EmptyCorpusError: nothing with text was found.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"corpus path not found: {path}", hint="pass an existing --from")
    fmt = fmt or detect_format(path)
    loader = LOADERS.get(fmt)
    report = LoadReport()
    docs: dict[str, Document] = {}
    for doc in loader(path, report=report, **options):
        if doc.id in docs:
            report.skip(f"{path} id {doc.id!r}", "duplicate id: the later document replaces it")
        docs[doc.id] = doc
    if not docs:
        reasons = f"; skipped {len(report.skipped)} file(s)/row(s)" if report.skipped else ""
        raise EmptyCorpusError(
            f"no documents with text found in {path} (format {fmt!r}){reasons}",
            hint="check --from and --format (folders take .txt, .md and .pdf files)",
        )
    return list(docs.values()), report
