"""medmllm: build, ground, train, evaluate and serve medical (M)LLMs on your own hardware.

The public API, re-exported here; each name lives in the room named in docs/architecture.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medmllm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from medmllm.assistant import Answer, Assistant
from medmllm.config import Settings, get_settings
from medmllm.errors import MedMLLMError
from medmllm.models.generator import (
    BACKENDS,
    Completion,
    Generator,
    LoglikelihoodRequest,
    Message,
    load_generator,
)
from medmllm.registry import Registry

__all__ = [
    "BACKENDS",
    "Answer",
    "Assistant",
    "Completion",
    "Generator",
    "LoglikelihoodRequest",
    "MedMLLMError",
    "Message",
    "Registry",
    "Settings",
    "__version__",
    "get_settings",
    "load_generator",
]
