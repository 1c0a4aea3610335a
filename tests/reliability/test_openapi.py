"""The backend against its own OpenAPI description (backend/openapi.json), fuzzed by schemathesis.

Every operation gets generated requests (valid ones and, in its negative mode, invalid
ones) through the WSGI app, with basic auth on; each answer must be no server error, carry
a status code and content type the description lists, and match its response schema. The
description is checked against the routes too: each route Flask serves is described, and
nothing else is. The example count per operation follows ``GALTON_FUZZ_EXAMPLES`` (as the
other fuzz targets) and is recorded for ``benchmarks/reliability.py``.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from galton.backend.app import OPENAPI, create_app
from galton.backend.review import ReviewSettings
from galton.backend.settings import Settings
from tests.backend.conftest import FakeConnector, task

from .conftest import record

N_EXAMPLES = max(10, int(os.environ.get("GALTON_FUZZ_EXAMPLES", "150")) // 5)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
AUTH = {"Authorization": "Basic " + base64.b64encode(b"ls:fuzz-password-1").decode()}


def _app():
    fake = FakeConnector({1: task(1, "pos", "pos", "neg"), 2: task(2, "neg", "neg", "neg")})
    settings_ = Settings(review=ReviewSettings(method="majority_vote"), state_url="sqlite://",
                         basic_auth_user="ls", basic_auth_password="fuzz-password-1", webhook_secret="fuzz-secret-1",
                         label_studio_url="http://ls.invalid", label_studio_api_key="k" * 20)
    return create_app(settings_, connector_factory=lambda: fake, start_workers=False)


APP = _app()
SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", APP)
SEEN: dict[str, int] = {}


def test_the_description_covers_every_route_and_no_other():
    described = set(json.loads(OPENAPI)["paths"])
    served = {rule.rule for rule in APP.url_map.iter_rules() if rule.endpoint != "static"}
    assert described == served


@SCHEMA.parametrize()
@settings(max_examples=N_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
def test_every_operation_answers_as_described(case):
    key = f"{case.method} {case.path}"
    SEEN[key] = SEEN.get(key, 0) + 1
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@pytest.fixture(scope="module", autouse=True)
def _record_examples():
    yield
    if SEEN:
        record({"kind": "fuzz", "target": "HTTP endpoints from the OpenAPI description (schemathesis)",
                "examples": sum(SEEN.values())})
