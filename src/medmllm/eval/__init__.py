"""Evaluation: tasks as YAML folders, cached resumable runner, metrics with CIs, HTML report.

Re-exports the public API; see ``docs/eval.md``.
"""

from medmllm.eval.metrics import METRICS, metric
from medmllm.eval.runner import EvalOptions, run_eval
from medmllm.eval.task import TASKS, Task, TaskConfig, load_task

__all__ = [
    "METRICS",
    "TASKS",
    "EvalOptions",
    "Task",
    "TaskConfig",
    "load_task",
    "metric",
    "run_eval",
]
