"""Helpers shared by the eval tests (``from tests.eval.eval_helpers import …``)."""

from __future__ import annotations

from pathlib import Path


def write_task(tmp_path: Path, body: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


MC_TASK = """\
name: synth
output_type: multiple_choice
dataset:
  path: {path}
prompt:
  template: |-
    Question: {{{{ question }}}}
    {{{{ options_text }}}}
    Answer:
metrics: [accuracy, macro_f1]
bias_swaps: true
"""
