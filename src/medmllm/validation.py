"""One way to turn a pydantic ``ValidationError`` into a user-facing message.

Every config a user writes (task YAML, index options, an index manifest, experiment and training
configs) is a pydantic model; when one is wrong the user should read the key path and the
reason, not a multi-line pydantic dump or a traceback.

Example:
    >>> from pydantic import BaseModel
    >>> class C(BaseModel):
    ...     n: int
    >>> try:
    ...     C(n="x")
    ... except Exception as exc:
    ...     print(validation_message(exc))
    key 'n': Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from medmllm.errors import ConfigError


class _HasErrors(Protocol):
    """pydantic's ``ValidationError`` and FastAPI's ``RequestValidationError`` both qualify."""

    def errors(self) -> Sequence[Mapping[str, Any]]: ...


def _reason(err: Mapping[str, Any]) -> str:
    if err.get("type") == "missing":
        return "required value is missing"
    if err.get("type") == "extra_forbidden":
        return "is not an allowed key"
    ctx_err = (err.get("ctx") or {}).get("error")  # a validator's own message, without prefix
    return str(ctx_err) if ctx_err is not None else str(err.get("msg", "invalid"))


def validation_message(
    exc: _HasErrors,
    *,
    limit: int = 3,
    quote_keys: bool = True,
    show_input: bool = False,
    skip_loc: int = 0,
) -> str:
    """``key 'a.b': reason; …`` for the first ``limit`` problems (then ``(+N more)``).

    ``show_input`` adds the rejected value (never on a server: it may hold PHI); ``skip_loc``
    drops leading location parts (FastAPI's ``body``); ``quote_keys=False`` gives ``a.b: reason``.
    """
    errors = list(exc.errors())
    parts = []
    for err in errors[:limit]:
        key = ".".join(str(p) for p in tuple(err.get("loc", ()))[skip_loc:]) or "(top level)"
        got = err.get("input")
        shown = (
            f" (got {got!r})"
            if show_input and err.get("type") != "missing" and not isinstance(got, dict)
            else ""
        )
        label = f"key '{key}'" if quote_keys else key
        parts.append(f"{label}: {_reason(err)}{shown}")
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


def missing_keys(exc: _HasErrors, *, with_why: bool = False) -> list[str]:
    """The top-level keys that were required but absent (e.g. to ask the user for them).

    ``with_why`` appends a conditional requirement's reason, when the error carries one in its
    context (``ctx["why"]``), e.g. ``urea (or give bun)``.
    """
    out = []
    for e in exc.errors():
        if e.get("type") == "missing" and e.get("loc"):
            why = (e.get("ctx") or {}).get("why") if with_why else None
            out.append(f"{e['loc'][0]} ({why})" if why else str(e["loc"][0]))
    return out


def config_error(exc: _HasErrors, what: str, *, hint: str | None = None) -> ConfigError:
    """A :class:`~medmllm.errors.ConfigError` saying ``invalid <what>: key '…': …``."""
    return ConfigError(f"invalid {what}: {validation_message(exc)}", hint=hint)
