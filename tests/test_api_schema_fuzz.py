"""A schema-driven fuzzer against the live server: schemathesis reads ``/api/schema/`` and sends what it
allows and what it refuses to every operation, authenticated with a token. It must report no server
error and no answer the schema does not describe (status, content type, headers, body), find no
request the schema refuses that the API takes, and no request the schema allows that the API refuses
for its shape (``tests/schemathesis_hooks.py``).

The run is bounded (about a minute here) and repeatable: deterministic generation (no seed, no
example database), 15 examples per operation and phase, one worker.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from payments.tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
    "shape_acceptance",  # ours: positive data is never refused for its shape
]


def test_schemathesis_finds_nothing(live_server, paypal, settings, tmp_path):
    settings.SITE_URL = live_server.url
    shopper = UserFactory()
    token = Token.objects.create(user=shopper).key
    for _ in range(3):
        ProductFactory(on_hand=1000)

    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{live_server.url}/api/schema/?format=json",
        "--checks",
        ",".join(CHECKS),
        "--header",
        f"Authorization: Token {token}",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "15",
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    selected, total = re.search(r"Selected: (\d+)/(\d+)", run.stdout).groups()
    tested = re.search(r"Tested: (\d+)", run.stdout).group(1)
    assert selected == total == tested and int(tested) >= 7, run.stdout[-5000:]  # every operation was fuzzed
