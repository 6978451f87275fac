"""Schemathesis over every HTTP interface of a node, from its OpenAPI document: the
checks every answer must pass, and the callers of each interface.

Used by tests/etsi_api/test_fuzz_interfaces.py (a sample in ``make test``) and by
benchmarks/fuzz_interfaces.py (>= 100,000 generated requests)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

DOCUMENTS = Path(__file__).resolve().parents[2] / "etsi_api"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "Werkzeug Debugger", "<!doctype html")


@dataclass(frozen=True)
class Interface:
    """One HTTP interface: its document, where it is served, who calls it."""

    name: str
    document: str
    base_path: str
    caller: str  # "sae", "node" or "admin"

    def schema(self):
        return schemathesis.openapi.from_path(DOCUMENTS / self.document)


INTERFACES = (
    Interface("etsi014", "openapi.yaml", "/api/v1", "sae"),
    Interface("km", "km_openapi.yaml", "/km/v1", "node"),
    Interface("skip", "skip_openapi.yaml", "", "sae"),
    Interface("admin", "admin_openapi.yaml", "/admin/v1", "admin"),
)


@schemathesis.check
def no_undocumented_server_error(ctx, response, case):
    """No 5xx but a 503 the document names for the operation (a 500, even a documented
    one, is a failure; schemathesis's not_a_server_error refuses documented 503s too)."""
    documented = set(case.operation.definition.raw.get("responses", {}))
    status = response.status_code
    assert status < 500 or (status == 503 and "503" in documented), f"{status}: {response.text[:200]!r}"
    return True


@schemathesis.check
def error_body_is_safe(ctx, response, case):
    """Every failure carries a JSON object with a string message, never internals."""
    if response.status_code < 400:
        return True
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} without a JSON body: {response.text[:200]!r}") from None
    assert isinstance(body, dict) and isinstance(body.get("message"), str), f"{response.status_code}: {body!r}"
    for marker in TRACEBACK_MARKERS:
        assert marker not in response.text, f"{response.status_code} body leaks internals ({marker!r})"
    return True


CHECKS = [no_undocumented_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, error_body_is_safe]


def mtls_session(cert: str | Path, key: str | Path, ca: str | Path) -> requests.Session:
    """A requests session presenting a client certificate and trusting the network's CA
    (``trust_env`` off: REQUESTS_CA_BUNDLE would override ``verify``)."""
    session = requests.Session()
    session.trust_env = False
    session.cert = (str(cert), str(key))
    session.verify = str(ca)
    return session


#: Set by benchmarks/fuzz_interfaces.py: examples per operation, and a file counting requests.
EXAMPLES_ENV = "QKMS_FUZZ_EXAMPLES"
COUNT_FILE_ENV = "QKMS_FUZZ_COUNT_FILE"


def fuzz_settings(default_examples: int) -> settings:
    """Deterministic hypothesis settings in the test suite; ``QKMS_FUZZ_EXAMPLES`` scales
    a benchmark run up, which then draws from pytest's ``--hypothesis-seed``."""
    scaled = os.environ.get(EXAMPLES_ENV)
    examples = int(scaled) if scaled else default_examples
    return settings(max_examples=examples, derandomize=not scaled, deadline=None, database=None, print_blob=False,
                    suppress_health_check=list(HealthCheck))


def check_conformance(case, url: str, interface: Interface, session: requests.Session):
    """Send one generated case and run every check on the answer (counted when the
    benchmark asks)."""
    response = case.call_and_validate(base_url=url + interface.base_path, session=session, checks=CHECKS,
                                      timeout=15, verify=session.verify, cert=session.cert)
    count_file = os.environ.get(COUNT_FILE_ENV)
    if count_file:
        with open(count_file, "a") as counts:
            counts.write(f"{interface.name} {response.status_code}\n")
    return response
