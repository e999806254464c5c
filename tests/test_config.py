from pathlib import Path

import pytest

from medmllm.config import ensure_online, get_settings, shared_data_dir
from medmllm.errors import DataNotFoundError, OfflineError


def test_settings_read_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDMLLM_HOME", str(tmp_path))
    monkeypatch.setenv("MEDMLLM_BACKEND", "hf")
    settings = get_settings()
    assert settings.home == tmp_path
    assert settings.backend == "hf"
    assert settings.cache_dir("x").is_dir()


def test_offline_mode_refuses_network(monkeypatch):
    monkeypatch.setenv("MEDMLLM_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline mode is on"):
        ensure_online("the hub")


def test_shared_data_override(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDMLLM_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.setenv("MEDMLLM_SHARED_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataNotFoundError, match="MEDMLLM_SHARED_DATA"):
        shared_data_dir()
    assert shared_data_dir(required=False) is None


def test_shared_data_default_is_found(shared_data: Path):
    assert (shared_data / "mcqa").is_dir()
