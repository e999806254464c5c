"""schemathesis fuzzes the OpenAPI schema (bounded examples): no request may get a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.serve.conftest import ImageScripted, make_app

pytestmark = pytest.mark.integration

_APP = make_app(
    ImageScripted(replies=["A short reply."]),
    Path(tempfile.mkdtemp(prefix="medmllm-fuzz-")),
    max_tokens_limit=64,
    docs=True,  # the schema under test (off by default)
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case) -> None:
    response = case.call()
    assert response.status_code < 500, (
        case.method,
        case.path,
        response.status_code,
        response.text[:300],
    )
