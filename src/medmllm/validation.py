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

from pydantic import ValidationError

from medmllm.errors import ConfigError


def validation_message(exc: ValidationError, *, limit: int = 3) -> str:
    """``key 'a.b': reason; …`` for the first ``limit`` problems (then ``(+N more)``)."""
    errors = exc.errors()
    parts = []
    for err in errors[:limit]:
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"key '{key}': {err['msg']}")
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


def config_error(exc: ValidationError, what: str, *, hint: str | None = None) -> ConfigError:
    """A :class:`~medmllm.errors.ConfigError` saying ``invalid <what>: key '…': …``."""
    return ConfigError(f"invalid {what}: {validation_message(exc)}", hint=hint)
