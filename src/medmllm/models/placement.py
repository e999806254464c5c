"""Where and how a model is loaded: ``--device``, ``--dtype`` and ``--model-arg key=value``.

Shared by the CLI and the Python API so both validate the same way, before any weights load:
an unknown dtype, a malformed ``key=value`` or a CUDA device on a machine without one fails at
once with the fix, instead of minutes later inside transformers.

Example:
    >>> parse_model_args(["device_map=auto", "attn_implementation=sdpa", "low_cpu_mem_usage=true"])
    {'device_map': 'auto', 'attn_implementation': 'sdpa', 'low_cpu_mem_usage': True}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from medmllm.errors import DeviceUnavailableError, InvalidRequestError

DTYPES = ("float32", "bfloat16", "float16", "auto")
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
_DEVICE = re.compile(r"^(cpu|cuda|mps|xpu)(:\d+)?$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_value(text: str) -> Any:
    """``"8"`` → 8, ``"0.5"`` → 0.5, ``"true"`` → True, ``"none"`` → None, JSON lists/objects
    parsed, anything else stays a string (``"auto"``, ``"sdpa"``, a path)."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_model_args(pairs: Iterable[str]) -> dict[str, Any]:
    """``["key=value", …]`` → a dict of typed values (see :func:`parse_value`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise InvalidRequestError(
                f"--model-arg expects key=value with a Python identifier as key, got {pair!r}",
                hint="e.g. --model-arg device_map=auto --model-arg attn_implementation=sdpa",
            )
        if key in out:
            raise InvalidRequestError(f"--model-arg {key!r} given twice", hint="give it once")
        out[key] = parse_value(value)
    return out


def check_dtype(dtype: str) -> str:
    """The canonical dtype name; raises naming the allowed values."""
    name = _DTYPE_ALIASES.get(dtype.strip().lower(), dtype.strip().lower())
    if name not in DTYPES:
        raise InvalidRequestError(
            f"unknown dtype {dtype!r}", hint=f"use --dtype {' | '.join(DTYPES)}"
        )
    return name


def check_device(device: str) -> str:
    """Validate a torch device string and that the device exists on this machine."""
    name = device.strip().lower()
    if name == "gpu":
        name = "cuda"
    if not _DEVICE.match(name):
        raise InvalidRequestError(
            f"unknown device {device!r}", hint="use --device cpu, cuda, cuda:N, mps or xpu"
        )
    if name == "cpu":
        return name
    import torch

    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"--device {device} requested, but torch {torch.__version__} sees no CUDA GPU",
                hint="use --device cpu, or install a CUDA build of torch on a machine with an "
                "NVIDIA GPU (torch.cuda.is_available() must print True)",
            )
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"--device {device} requested, but only {torch.cuda.device_count()} GPU(s) exist",
                hint=f"use cuda:0 … cuda:{torch.cuda.device_count() - 1}",
            )
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError(
            f"--device {device} requested, but MPS (Apple GPU) is not available here",
            hint="use --device cpu",
        )
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise DeviceUnavailableError(
            f"--device {device} requested, but no Intel XPU is available", hint="use --device cpu"
        )
    return name
