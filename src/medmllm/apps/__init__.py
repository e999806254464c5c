"""Clinical applications: each an :class:`~medmllm.apps.base.AppSpec` in :data:`APPS`.

Every app has a pydantic request and response model and ``run(request, generator,
retriever=None) -> response``; the CLI (``medmllm app NAME``) and the server mount them
generically from this registry.

Example:
    >>> from medmllm.apps import APPS
    >>> APPS.names()
    ['diagnosis', 'education', 'mental_health', 'report', 'surgery']
"""

from medmllm.apps.base import APPS, AppSpec, run_app

APPS.register_lazy("diagnosis", "medmllm.apps.diagnosis:APP")
APPS.register_lazy("report", "medmllm.apps.report:APP")
APPS.register_lazy("education", "medmllm.apps.education:APP")
APPS.register_lazy("mental_health", "medmllm.apps.mental_health:APP")
APPS.register_lazy("surgery", "medmllm.apps.surgery:APP")

__all__ = ["APPS", "AppSpec", "run_app"]
