"""The survey's experiments, one command each: config grid → train → evaluate → table + plot + JSON.

Each experiment is a function ``run(preset, out_dir, **options) -> dict`` registered here by name;
``medmllm experiment NAME --preset cpu|gpu`` calls it. The returned dict is what was written to
``out_dir/results.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from medmllm.registry import Registry

Preset = Literal["cpu", "gpu"]
ExperimentFn = Callable[..., dict[str, Any]]

EXPERIMENTS: Registry[ExperimentFn] = Registry("experiment")
EXPERIMENTS.register_lazy("vision-encoders", "medmllm.experiments.vision_encoders:run")
EXPERIMENTS.register_lazy("alignment", "medmllm.experiments.alignment:run")
EXPERIMENTS.register_lazy("training-stages", "medmllm.experiments.training_stages:run")


def run_experiment(
    name: str, preset: Preset, out_dir: str | Path, **options: Any
) -> dict[str, Any]:
    """Run a registered experiment; see :data:`EXPERIMENTS` for the names."""
    return EXPERIMENTS.get(name)(preset=preset, out_dir=Path(out_dir), **options)
