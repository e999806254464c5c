"""Settings read from the environment (``MEDMLLM_*``), passed explicitly, never global.

Call :func:`get_settings` where settings are needed; it builds a fresh object each time so that
tests (and long-running servers) see environment changes and no module holds hidden state.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from medmllm.errors import DataNotFoundError, OfflineError


class Settings(BaseSettings):
    """Toolkit-wide settings; each field is also the environment variable ``MEDMLLM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MEDMLLM_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".medmllm",
        description="Where caches, converted weights, indexes and run outputs live.",
    )
    offline: bool = Field(
        default=False,
        description="Refuse every network access (model hubs, remote backends) with OfflineError.",
    )
    backend: str | None = Field(
        default=None,
        description="Default generator backend; None picks 'llamacpp' if installed, else 'hf'.",
    )
    model: str | None = Field(
        default=None,
        description="Default model id or path; None means the embedded offline model.",
    )
    shared_data: Path | None = Field(
        default=None,
        description="Folder of the public benchmark/corpus data (default: ../shared/data).",
    )
    hash_salt: SecretStr | None = Field(
        default=None,
        description="The site's secret salt for audit and PHI hashes; None: a salt generated "
        "once under home/secrets (see medmllm.safety.salt).",
    )

    def cache_dir(self, *parts: str) -> Path:
        """A folder under ``home`` (created on demand)."""
        path = self.home.expanduser().joinpath("cache", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


def get_settings() -> Settings:
    """Fresh settings from the current environment."""
    return Settings()


def ensure_online(what: str, settings: Settings | None = None) -> None:
    """Raise :class:`OfflineError` if offline mode forbids reaching ``what``."""
    settings = settings or get_settings()
    if settings.offline:
        raise OfflineError(
            f"network access to {what} refused: offline mode is on",
            hint="use a local path or the embedded model, or unset MEDMLLM_OFFLINE",
        )


def shared_data_dir(settings: Settings | None = None, *, required: bool = True) -> Path | None:
    """Locate the public data folder (``MEDMLLM_SHARED_DATA`` or ``../shared/data``).

    Looks next to the current directory and next to the source checkout so tests work from
    anywhere inside the repository.
    """
    settings = settings or get_settings()
    candidates = []
    if settings.shared_data is not None:
        candidates.append(settings.shared_data)
    else:
        repo_root = Path(__file__).resolve().parents[2]
        candidates += [Path.cwd().parent / "shared" / "data", repo_root.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if required:
        raise DataNotFoundError(
            f"shared data folder not found (looked in {', '.join(map(str, candidates))})",
            hint="set MEDMLLM_SHARED_DATA to the folder holding mcqa/, pubmedqa/, corpus/ …",
        )
    return None
