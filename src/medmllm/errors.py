"""One exception tree for the whole toolkit.

Every error a *user* can cause derives from :class:`MedMLLMError`. The CLI turns these into a
one-line message and exit code 2 (never a traceback); anything else is a bug and keeps its
traceback. Messages say what was wrong, the value received, and how to fix it.
"""

from __future__ import annotations


class MedMLLMError(Exception):
    """Base class for user-facing errors.

    Args:
        message: what went wrong, quoting the offending value.
        hint: how to fix it (the flag, key or ``pip install`` to use); shown after the message.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(MedMLLMError):
    """A configuration value or file is invalid."""


class UnknownNameError(MedMLLMError, KeyError):
    """A registry lookup for a name that is not registered."""


class InvalidRequestError(MedMLLMError, ValueError):
    """Arguments to a call are out of range or empty (e.g. ``max_tokens <= 0``)."""


class UnsupportedInputError(MedMLLMError):
    """The component cannot take this kind of input (e.g. images on a text-only backend)."""


class ModelNotFoundError(MedMLLMError, FileNotFoundError):
    """A model id or path does not resolve to anything loadable."""


class InvalidModelFileError(MedMLLMError):
    """A file exists but is not a model of the expected format (e.g. not a GGUF)."""


class MissingDependencyError(MedMLLMError, ImportError):
    """An optional dependency is not installed; the hint gives the install command."""


class BackendConnectionError(MedMLLMError, ConnectionError):
    """A remote backend (OpenAI-compatible server) could not be reached or answered an error."""


class OfflineError(MedMLLMError):
    """A network access was attempted while ``MEDMLLM_OFFLINE=1``."""


class DataNotFoundError(MedMLLMError, FileNotFoundError):
    """A dataset, corpus or index is missing or unreadable."""


class DataFormatError(MedMLLMError, ValueError):
    """Input data is malformed (the message names the file and row/line)."""


class EmptyCorpusError(DataFormatError):
    """A corpus source yielded no documents with text (nothing to index)."""


class IndexNotFoundError(DataNotFoundError):
    """No retrieval index of that name exists (the message lists the existing ones)."""


class IndexCorruptError(MedMLLMError):
    """An index directory is damaged (missing files, checksum mismatch, bad manifest)."""


class IndexMismatchError(MedMLLMError):
    """An index was built with other settings (embedding model, schema) than those requested."""


# -- spine (packaging) ------------------------------------------------------------------------
class InstallError(MedMLLMError):
    """An install step run on the user's behalf (``medmllm models install-default``) failed."""


# --- spine-perf (issue 11: GPU and scale options) ---------------------------------------------
class DeviceUnavailableError(MedMLLMError):
    """A device (cuda, mps, a GPU build of llama.cpp) was requested but is not available."""


# --- robust (issue 13) ---------------------------------------------------------------------------


class ContextLengthError(InvalidRequestError):
    """A prompt (question, history, passages) does not fit the model's context window."""


class IndexLockedError(MedMLLMError):
    """Another process is writing the same index (its pid is in the message)."""


class OutputExistsError(MedMLLMError, FileExistsError):
    """An output file or folder already holds something else; ``--overwrite`` replaces it."""


# --- rag-scale (pgvector, sharded evaluation) ---------------------------------------------------
class DatabaseConnectionError(BackendConnectionError):
    """A PostgreSQL server named by a DSN cannot be reached or refuses the login."""


class VectorExtensionError(MedMLLMError):
    """The PostgreSQL database lacks the pgvector extension (or the right to create it)."""


class ShardMismatchError(MedMLLMError):
    """Evaluation shards to merge come from different configs, or shards are missing."""


# -- train ------------------------------------------------------------------------------------
class RunMismatchError(ConfigError):
    """A run folder was made by a different config than the one asked to resume it."""


class CheckpointWriteError(MedMLLMError, OSError):
    """A checkpoint could not be written (disk full, permissions); earlier ones are intact."""


class NotAnAdapterError(InvalidModelFileError):
    """A folder given for merge/export is neither a LoRA adapter nor a saved model."""


# --- mllm room (images, vision encoders, aligners, multimodal models) ---------------------------
class ImageError(MedMLLMError, ValueError):
    """An image (PNG/JPEG/DICOM) could not be read: corrupt, unsupported or missing pixels."""


class ImageNotFoundError(ImageError, FileNotFoundError):
    """An image path does not exist."""


class ImageTooLargeError(ImageError):
    """An image exceeds the pixel-count limit (or its header claims a decompression bomb)."""


class DicomError(ImageError):
    """A DICOM file has no pixel data, an unsupported transfer syntax or bad attributes."""


class CheckpointMismatchError(MedMLLMError):
    """A model folder's config does not match the weights stored beside it."""


# --- agent and apps (issue 10) ---------------------------------------------------------------


class ToolInputError(InvalidRequestError):
    """A tool (calculator, lookup) got an input out of range, in the wrong unit, or missing."""


class AgentError(MedMLLMError):
    """The agent loop could not run (no tools, bad configuration)."""


class AppError(MedMLLMError):
    """A clinical application could not answer (bad input, missing model capability)."""
