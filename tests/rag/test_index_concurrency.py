"""Issue 13: no lost update between concurrent writers, readers see complete versions, disk-full
leaves the previous index intact, and documents from two folders never replace each other."""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medmllm.errors import IndexLockedError
from medmllm.rag.corpus import Document, load_corpus
from medmllm.rag.index import build_index, indexes_root, lock_holder, open_index, write_lock
from medmllm.rag.retriever import RetrieverConfig

BM25 = RetrieverConfig(kind="bm25")
CTX = mp.get_context("fork")


def _writer(name: str, doc_id: str, start, errors) -> None:  # runs in a child process
    try:
        start.wait(10)
        text = f"Document {doc_id} about condition {doc_id} and its treatment."
        build_index(name, [Document(id=doc_id, text=text)], retriever=BM25, progress=False)
    except BaseException as exc:  # reported to the parent
        errors.put(f"{doc_id}: {type(exc).__name__}: {exc}")


def test_two_concurrent_writers_never_lose_a_document(isolated_home: Path) -> None:
    build_index("shared", [Document(id="seed", text="seed document text")], retriever=BM25,
                progress=False)  # fmt: skip
    errors = CTX.Queue()
    expected = {"seed"}
    for trial in range(20):
        start = CTX.Event()
        ids = [f"t{trial}a", f"t{trial}b"]
        procs = [CTX.Process(target=_writer, args=("shared", i, start, errors)) for i in ids]
        for proc in procs:
            proc.start()
        start.set()
        for proc in procs:
            proc.join(60)
            assert proc.exitcode == 0
        expected.update(ids)
        assert errors.empty(), errors.get()
        index = open_index("shared")
        held = {c.doc_id for c in index.retriever.chunks}
        assert held == expected, f"trial {trial}: lost {expected - held}"
    assert index.manifest.doc_count == 41


def _reader(name: str, stop, errors, counter) -> None:
    try:
        while not stop.is_set():
            hits = open_index(name).search("condition treatment", 3)
            assert hits, "no hits"
            with counter.get_lock():
                counter.value += 1
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")


def test_readers_keep_reading_complete_versions_during_writes(isolated_home: Path) -> None:
    docs = [Document(id=f"d{i}", text=f"condition {i} treatment notes") for i in range(20)]
    build_index("live", docs, retriever=BM25, progress=False)
    stop, errors, counter = CTX.Event(), CTX.Queue(), CTX.Value("i", 0)
    readers = [CTX.Process(target=_reader, args=("live", stop, errors, counter)) for _ in range(2)]
    for proc in readers:
        proc.start()
    for round_ in range(15):
        extra = Document(id=f"new{round_}", text=f"condition update {round_} treatment")
        build_index("live", [extra], retriever=BM25, progress=False)
    stop.set()
    for proc in readers:
        proc.join(30)
    assert errors.empty(), errors.get()
    assert counter.value > 0
    assert open_index("live").manifest.doc_count == 35
    versions = list((isolated_home / "index-versions").glob("live@*"))
    assert 1 <= len(versions) <= 2  # current + the previous one kept for slow readers


def test_second_writer_waits_then_fails_with_the_holder_pid(isolated_home: Path) -> None:
    build_index("busy", [Document(id="a", text="alpha text")], retriever=BM25, progress=False)
    waited: list[int | None] = []
    with write_lock("busy"):
        assert lock_holder("busy") == os.getpid()
        with pytest.raises(IndexLockedError, match=f"pid {os.getpid()}"):
            build_index("busy", [Document(id="b", text="beta text")], retriever=BM25,
                        progress=False, lock_timeout=0.3, on_wait=waited.append)  # fmt: skip
    assert waited == [os.getpid()]
    assert {c.doc_id for c in open_index("busy").retriever.chunks} == {"a"}


def test_stale_lock_of_a_dead_writer_is_recovered(isolated_home: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    lock = isolated_home / "locks" / "index-stale.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{dead} 2026-01-01T00:00:00+00:00\n")
    assert lock_holder("stale") is None
    build_index("stale", [Document(id="a", text="alpha")], retriever=BM25, lock_timeout=0,
                progress=False)  # fmt: skip
    assert lock.read_text().split()[0] == str(os.getpid())


def test_cli_second_writer_exits_2_with_one_error_line(isolated_home: Path, tmp_path: Path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "x", "text": "some text"}\n')
    with write_lock("held"):
        result = subprocess.run(
            [sys.executable, "-m", "medmllm.cli.main", "index", "build", "held", "--from",
             str(corpus), "-r", "bm25", "--wait", "0.2", "-q"],
            capture_output=True, text=True, env={**os.environ, "MEDMLLM_HOME": str(isolated_home)},
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "being written by another process" in result.stderr and "waiting" in result.stderr
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_disk_full_while_writing_keeps_the_previous_index(isolated_home: Path, monkeypatch):
    build_index("safe", [Document(id="a", text="alpha text")], retriever=BM25, progress=False)
    from medmllm.rag import index as index_module

    real = index_module._sha256

    def full_disk(path: Path) -> str:
        if path.name == "manifest.json" or "chunks" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path)

    with monkeypatch.context() as patched, pytest.raises(OSError) as info:
        patched.setattr(index_module, "_sha256", full_disk)
        build_index("safe", [Document(id="b", text="beta")], retriever=BM25, progress=False)
    assert info.value.errno == errno.ENOSPC
    assert {c.doc_id for c in open_index("safe").retriever.chunks} == {"a"}
    leftovers = [p.name for p in indexes_root().iterdir() if p.name != "safe"]
    assert leftovers == []
    assert len(list((isolated_home / "index-versions").glob("safe@*"))) == 1


def test_same_file_name_in_two_folders_keeps_both(isolated_home: Path, tmp_path: Path) -> None:
    for folder, text in (("folderA", "asthma inhaler guidance"), ("folderB", "gout urate advice")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "doc1.txt").write_text(text)
    first, _ = load_corpus(tmp_path / "folderA", "dir")
    build_index("two", first, retriever=BM25, progress=False)
    second, _ = load_corpus(tmp_path / "folderB", "dir")
    report = build_index("two", second, retriever=BM25, progress=False)
    assert (report.docs_added, report.docs_updated, report.ids_disambiguated) == (1, 0, 1)
    index = open_index("two")
    assert index.manifest.doc_count == 2
    assert index.search("gout", 1)[0].chunk.text.startswith("gout")
    # re-adding folder B is recognised as unchanged (the suffix is stable)
    again = build_index("two", second, retriever=BM25, progress=False)
    assert (again.docs_added, again.docs_unchanged) == (0, 2 - 1)


def test_broken_symlinks_and_unreadable_folders_are_reported(tmp_path: Path, monkeypatch):
    (tmp_path / "ok.txt").write_text("readable text")
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "missing.txt")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x.txt").write_text("hidden")
    real_scandir = os.scandir

    def scandir(path=".") -> object:
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    docs, report = load_corpus(tmp_path, "dir")
    assert [d.id for d in docs] == ["ok.txt"]
    reasons = {Path(p).name: r for p, r in report.skipped}
    assert reasons["dangling.txt"] == "broken symlink"
    assert reasons["locked"].startswith("unreadable folder")
