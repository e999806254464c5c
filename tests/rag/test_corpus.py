"""Corpus loaders: field mapping, line numbers in errors, skipped files counted, empty corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.errors import DataFormatError, DataNotFoundError, EmptyCorpusError, UnknownNameError
from medmllm.rag.corpus import detect_format, load_corpus


def _pdf_bytes(text: str) -> bytes:
    """A minimal one-page PDF showing ``text`` (written by hand; pypdf reads it back)."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_jsonl_with_field_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [
        {"key": 1, "body": "Asthma text.", "name": "Asthma", "qtype": "info"},
        {"key": 2, "body": "  "},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    docs, report = load_corpus(path, "jsonl", id_field="key", text_field="body", title_field="name")
    assert [d.id for d in docs] == ["1"]
    assert docs[0].title == "Asthma" and docs[0].metadata == {"qtype": "info"}
    assert report.loaded == 1 and len(report.skipped) == 1  # the blank text is counted


def test_jsonl_malformed_line_names_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n\n{"id": 2, "text": oops}\n')
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:3"):
        load_corpus(path, "jsonl")


def test_jsonl_missing_text_field_suggests_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": 1, "body": "x"}\n')
    with pytest.raises(DataFormatError, match="--text-field") as info:
        load_corpus(path, "jsonl")
    assert "c.jsonl:1" in str(info.value)


def test_folder_reads_txt_md_pdf_and_skips_binary(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Gout causes joint pain.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# Migraine\nThrobbing headache.")
    (tmp_path / "c.pdf").write_bytes(_pdf_bytes("Asthma inhaler guidance"))
    (tmp_path / "d.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (tmp_path / "e.pdf").write_bytes(b"%PDF-1.4 truncated garbage")
    (tmp_path / "f.png").write_bytes(b"\x89PNG")
    docs, report = load_corpus(tmp_path, "dir")
    by_id = {d.id: d for d in docs}
    assert set(by_id) == {"a.txt", "sub/b.md", "c.pdf"}
    assert by_id["sub/b.md"].title == "Migraine"
    assert "Asthma inhaler guidance" in by_id["c.pdf"].text
    skipped = {Path(p).name for p, _ in report.skipped}
    assert skipped == {"d.txt", "e.pdf", "f.png"}


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EmptyCorpusError, match="no documents"):
        load_corpus(tmp_path, "dir")


def test_empty_jsonl_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(EmptyCorpusError):
        load_corpus(path, "jsonl")


def test_missing_path_and_unknown_format(tmp_path: Path, docs_jsonl: Path) -> None:
    with pytest.raises(DataNotFoundError):
        load_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(UnknownNameError, match="jsonl"):
        load_corpus(docs_jsonl, "jsnl")


def test_medquad_and_pubmedqa_formats(tmp_path: Path) -> None:
    mq = tmp_path / "mq.jsonl"
    mq.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "What is X?",
                "answer": "X is a thing.",
                "qtype": "information",
                "title": "X",
                "url": "u",
                "source": "S",
            }
        )
        + "\n"
    )
    pq = tmp_path / "pq.jsonl"
    pq.write_text(
        json.dumps(
            {
                "pmid": "9",
                "question": "Q?",
                "contexts": ["c one", "c two"],
                "labels": ["BACKGROUND", "RESULTS"],
                "final_decision": "yes",
            }
        )
        + "\n"
    )
    assert detect_format(mq) == "medquad" and detect_format(pq) == "pubmedqa"
    docs, _ = load_corpus(mq)
    assert docs[0].id == "q1@1" and docs[0].text == "X is a thing."
    assert "What is X" not in docs[0].text
    docs, _ = load_corpus(pq)
    assert [d.id for d in docs] == ["9-0", "9-1"] and docs[1].title == "Results"
