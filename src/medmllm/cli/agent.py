"""CLI commands of this room (filled in by its owner); register adds them to the app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
