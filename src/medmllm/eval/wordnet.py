"""WordNet for METEOR, offline: NLTK's ``corpora/wordnet`` assembled from Debian's WordNet 3.0.

METEOR (``nltk.translate.meteor_score``) matches synonyms through WordNet. No PyPI package ships
WordNet's data and ``nltk.download`` needs the network, so a fresh install had none and every
METEOR column read "n/a" (issue 19). Debian's ``wordnet-base`` + ``wordnet-sense-index`` hold the
very WordNet 3.0 database files NLTK's reader parses; NLTK wants them as real files (it rejects
links) in ``<nltk_data>/corpora/wordnet/``, plus a ``lexnames`` file the packages lack (written
here from the lexnames(5WN) table).

:func:`install_wordnet` takes the files from ``/usr/share/wordnet`` when the packages are
installed, else fetches the two ``.deb`` files with ``apt-get download`` and unpacks them with
``dpkg-deb -x`` (neither needs root), and copies them to the venv's ``nltk_data`` folder
(``sys.prefix/nltk_data``, which NLTK searches without any variable). ``make setup`` runs it;
where neither source exists METEOR stays reported as unavailable, with this module as the fix.

Example:
    $ python -m medmllm.eval.wordnet            # → .venv/nltk_data/corpora/wordnet
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from medmllm.errors import DataNotFoundError

DEBIAN_DIR = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")
# what NLTK's WordNetCorpusReader opens (index.sense: lemma keys)
_POS = ("noun", "verb", "adj", "adv")
NEEDED = (
    *(f"{kind}.{pos}" for kind in ("data", "index") for pos in _POS),
    *(f"{pos}.exc" for pos in _POS),
    "index.sense",
)
# lexnames(5WN): file number, lexicographer file, syntactic category (1 n, 2 v, 3 adj, 4 adv)
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
INSTALL_COMMAND = "python -m medmllm.eval.wordnet"


def default_target() -> Path:
    """The venv's own ``nltk_data`` (on NLTK's search path; removed with the venv)."""
    return Path(sys.prefix) / "nltk_data"


def lexnames_text() -> str:
    """The 45-line ``lexnames`` file NLTK reads and Debian does not ship."""
    return "".join(
        f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES)
    )


def _from_debs(work: Path) -> Path | None:
    """Fetch and unpack the Debian packages without root; their wordnet folder, or None."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None
    try:
        subprocess.run(
            ["apt-get", "download", *DEBIAN_PACKAGES],
            cwd=work, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        for deb in sorted(work.glob("*.deb")):
            subprocess.run(
                ["dpkg-deb", "-x", str(deb), str(work / "root")],
                check=True, capture_output=True, timeout=300,
            )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    folder = work / "root" / "usr" / "share" / "wordnet"
    return folder if folder.is_dir() else None


def install_wordnet(target: str | Path | None = None, *, source: str | Path | None = None) -> Path:
    """Put WordNet where NLTK finds it; returns the ``corpora/wordnet`` folder.

    Args:
        target: an ``nltk_data`` folder (default: :func:`default_target`).
        source: a folder of WordNet 3.0 database files (default: ``/usr/share/wordnet``, else
            the Debian packages fetched with ``apt-get download``).

    Raises:
        DataNotFoundError: no source has the files (the message says how to get them).
    """
    dest = Path(target or default_target()).expanduser() / "corpora" / "wordnet"
    with tempfile.TemporaryDirectory(prefix="medmllm-wordnet-") as tmp:
        folder = Path(source) if source else DEBIAN_DIR
        if source is None and not (folder / "data.noun").is_file():
            folder = _from_debs(Path(tmp)) or folder
        missing = [name for name in NEEDED if not (folder / name).is_file()]
        if missing:
            raise DataNotFoundError(
                f"WordNet 3.0 files not found in {folder} (missing {', '.join(missing[:3])}…), "
                "and the Debian packages could not be fetched",
                hint=f"apt-get install {' '.join(DEBIAN_PACKAGES)}, then run `{INSTALL_COMMAND}`",
            )
        partial = dest.with_name(".wordnet.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for file in folder.iterdir():
            if file.is_file():
                shutil.copyfile(file, partial / file.name)  # real files: NLTK rejects links
        (partial / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m medmllm.eval.wordnet [--target NLTK_DATA]``: 0 installed, 1 not possible."""
    import argparse

    parser = argparse.ArgumentParser(description="Install WordNet for METEOR (offline).")
    parser.add_argument("--target", help="nltk_data folder (default: the venv's)")
    args = parser.parse_args(argv)
    try:
        path = install_wordnet(args.target)
    except DataNotFoundError as exc:
        print(f"WordNet not installed: {exc.message}\n  fix: {exc.hint}", file=sys.stderr)
        return 1
    print(f"WordNet installed in {path} (METEOR available)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
