"""Hugging Face weights on disk: GGUF → HF-folder conversion and model-id resolution.

Below the backends and the MLLM assembly (both load LLM weights through here), so neither has to
import the other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from medmllm.config import ensure_online
from medmllm.errors import InvalidModelFileError, MissingDependencyError
from medmllm.models.defaults import EMBEDDED_MODELS, is_gguf, resolve_model_path

_PATH_PREFIXES = ("/", "./", "../", "~")


def _looks_like_path(model: str) -> bool:
    return model.startswith(_PATH_PREFIXES) or model.endswith(".gguf") or model.count("/") > 1


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def import_transformers() -> Any:
    """transformers, quiet, or the install command when it is missing."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:  # pragma: no cover - core dependency
        raise MissingDependencyError(
            f"the hf backend needs torch and transformers ({exc})",
            hint="pip install 'torch==2.13.0' transformers accelerate gguf",
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def convert_gguf(gguf_path: Path, cache_root: Path) -> Path:
    """Dequantise a GGUF file into a cached HF folder (atomic: built in a temp dir, renamed)."""
    transformers = import_transformers()
    import torch

    target = cache_root / f"{gguf_path.stem}-{_file_digest(gguf_path)}"
    if (target / "config.json").is_file():
        return target
    transformers.utils.logging.enable_progress_bar()  # first load takes ~20 s: show it
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"): rebuild it from its
    # config and copy the dequantised weights over.
    clean = transformers.AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
    clean.load_state_dict(model.state_dict(), strict=False)
    clean.config.quantization_config = None
    if hasattr(clean.config, "_pre_quantization_dtype"):
        del clean.config._pre_quantization_dtype
    transformers.utils.logging.disable_progress_bar()
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_root))
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def resolve_hf_model(model: str | None, settings: Any) -> str:
    """A hub id stays as it is (online only); a folder is checked; a GGUF is converted."""
    if (
        model is None
        or model in EMBEDDED_MODELS
        or model == "default"
        or _looks_like_path(model)
        or Path(model).expanduser().exists()
    ):
        path = resolve_model_path(model)
        if path.is_file():
            if not is_gguf(path):
                raise InvalidModelFileError(
                    f"{path} is neither a GGUF file nor a Hugging Face model folder",
                    hint="pass a .gguf file, a folder with config.json, or a hub id",
                )
            return str(convert_gguf(path, settings.cache_dir("hf")))
        # a LoRA adapter folder (adapter_config.json) loads its base model + the adapter
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise InvalidModelFileError(
                f"{path} is a folder without config.json, so not a Hugging Face model",
                hint="pass a folder written by save_pretrained, a .gguf file, or a hub id",
            )
        return str(path)
    ensure_online(f"the Hugging Face hub (model {model!r})", settings)
    return model
