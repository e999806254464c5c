"""Model-loading options shared by every command that loads a model (``ask``, ``chat``, ``eval``).

Each command adds the same flags and turns them into ``load_generator`` keyword arguments with
:func:`generator_options`, which validates them before any model loads.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from medmllm.errors import InvalidRequestError

DEVICE_OPT = typer.Option(
    None,
    "--device",
    help="Where the model runs: cpu, cuda, cuda:N, mps (hf); cuda offloads all layers "
    "(llamacpp GPU build). Also used for RAG embeddings.",
)
DTYPE_OPT = typer.Option(
    None, "--dtype", help="hf weights dtype: float32 (default), bfloat16, float16 or auto."
)
MODEL_ARG_OPT = typer.Option(
    [],
    "--model-arg",
    help="key=value passed to from_pretrained (hf) or llama_cpp.Llama (llamacpp); repeatable; "
    "values are typed (8, 0.5, true, none, JSON). E.g. --model-arg device_map=auto.",
)
TIMEOUT_OPT = typer.Option(
    None,
    "--timeout",
    help="openai backend: seconds to wait to connect and for each response (default 60).",
)
CONCURRENCY_OPT = typer.Option(
    None, "--concurrency", help="openai backend: requests in flight at once (default 4)."
)


def generator_options(
    *,
    base_url: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    model_args: list[str] | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """``load_generator`` keyword arguments for the flags that were given (checked here)."""
    from medmllm.models.placement import check_dtype, parse_model_args

    options: dict[str, Any] = {}
    if base_url:
        options["base_url"] = base_url
    if device is not None:
        options["device"] = device
        # dense retrieval loads its encoder deep inside the index; this is how it learns the device
        os.environ["MEDMLLM_EMBED_DEVICE"] = device
    if dtype is not None:
        options["dtype"] = check_dtype(dtype)
    if model_args:
        options["model_kwargs"] = parse_model_args(model_args)
    if timeout is not None:
        if not timeout > 0:
            raise InvalidRequestError(f"--timeout must be > 0 seconds, got {timeout}")
        options["timeout"] = timeout
    if concurrency is not None:
        if concurrency < 1:
            raise InvalidRequestError(f"--concurrency must be >= 1, got {concurrency}")
        options["concurrency"] = concurrency
    return options
