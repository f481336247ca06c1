"""Generated hostile input against the dashboard's API, served for real on loopback (the
service, engine and web sink in a thread of their own; the history routes read a real
InfluxDB): schemathesis from ``monitor/web/openapi.json``, and hypothesis strategies for
HTTP bodies and headers. Each asserts no 5xx, answers that ``openapi.json`` documents, and
that the service still takes valid input afterwards.

Rerun with more examples: ``HEATMON_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_web_fuzz.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from monitor.web.app import OPENAPI_PATH
from tests.fixtures.web import CAROL
from tests.fixtures.web_thread import ServedWeb
from tests.test_web_hostile import POSTS, documented

EXAMPLES = int(os.environ.get("HEATMON_FUZZ_EXAMPLES", "120"))
SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH).exclude(
    # The event stream never ends (tests/test_web_api.py reads it); logging out would end
    # the caregiver's session the fuzzer works in (it is fuzzed with hostile bodies below).
    path=["/api/events", "/api/logout"]
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def assert_still_answers(served: ServedWeb, caregiver: dict[str, str]) -> None:
    """The caregiver's session (made before the fuzz) still sees its patients and reports a
    symptom. (A fresh login from this address may rightly be 429 by now: the fuzz sent
    many wrong passwords from it.)"""
    reply = served.request("GET", "/api/patients", headers=caregiver)
    assert reply.status == 200
    assert {p["patient"] for p in reply.json()["patients"]} == {"p-cool", "p-hot"}
    reply = served.request(
        "POST",
        "/api/patients/p-hot/symptoms",
        body=b'{"note": "after the fuzz"}',
        headers={**caregiver, "Content-Type": "application/json"},
    )
    assert reply.status == 200, reply.body
    assert served.request("GET", "/healthz").json()["status"] == "ok"


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(served_web: ServedWeb) -> None:
    """Valid and invalid requests generated from openapi.json, anonymous and as a logged-in
    caregiver (cookie and CSRF token sent, so the fuzz reaches past authentication)."""
    caregiver = served_web.login(CAROL.login, CAROL.password)
    strategy = st.tuples(
        st.one_of(
            SCHEMA.as_strategy(GenerationMode.POSITIVE),
            SCHEMA.as_strategy(GenerationMode.NEGATIVE),
        ),
        st.booleans(),
    )
    http = requests.Session()
    seen: set[int] = set()

    @FUZZ_SETTINGS
    @given(drawn=strategy)
    def fuzz(drawn: tuple[Case[Any], bool]) -> None:
        case, as_caregiver = drawn
        http.cookies.clear()
        headers = caregiver if as_caregiver else None
        response = case.call(base_url=served_web.base_url, session=http, headers=headers)
        seen.add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    fuzz()
    assert any(200 <= s < 300 for s in seen), f"nothing got past validation: {sorted(seen)}"
    assert_still_answers(served_web, caregiver)


# -- hypothesis: bodies and headers -------------------------------------------------------

HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_categories=["Cc"]),
    max_size=40,
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"login": st.text(max_size=80) | JSON_VALUES, "password": st.text(max_size=80)}
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"note": st.text(max_size=600) | JSON_VALUES}).map(
        lambda v: json.dumps(v, ensure_ascii=False).encode()
    ),
    st.integers(1, 6000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 8000).map(lambda n: b'"' + b'\\"' * n),  # an unterminated string
    st.binary(max_size=3000),
    st.text(max_size=200).map(lambda t: json.dumps({"note": t}).encode("utf-16")),
    st.sampled_from([b'{"note": NaN}', b'{"note": Infinity}', b"9" * 5000, b"", b"   "]),
)
ENCODINGS = (
    st.sampled_from(
        ["", "identity", "gzip", "x-gzip", "deflate", "br", "zstd", "compress", "gzip, gzip"]
    )
    | HEADER_TEXT
)
CONTENT_TYPES = (
    st.sampled_from(
        [
            None,
            "application/json",
            "application/json; charset=utf-8",
            'application/json; charset="UTF-8"',
            "application/json; charset=foo",
            "application/json; charset=",
            "application/json; charset=utf-16",
            "application/problem+json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ]
    )
    | HEADER_TEXT
)


def encoded(body: bytes, encoding: str, honest: bool) -> bytes:
    """``body`` compressed as ``encoding`` says when ``honest`` (else left as it is)."""
    if honest and encoding.strip().lower() in ("gzip", "x-gzip"):
        return gzip.compress(body)
    if honest and encoding.strip().lower() == "deflate":
        return zlib.compress(body)
    return body


TARGETS = [("POST", p) for p in POSTS if p != "/api/logout"] + [
    ("GET", p)
    for p in (
        "/api/session",
        "/api/patients",
        "/api/patients/p-hot",
        "/api/patients/p-hot/sessions",
        "/login",
        "/caregiver",
        "/patient/p-hot",
        "/patient/p-hot?token=not-the-token",
    )
]
"""Every POST with a body (logout is in the explicit tests), and pages and API reads with
hostile headers (GETs are sent without a body)."""


@pytest.mark.slow
def test_hostile_bodies_and_headers_never_get_a_5xx(served_web: ServedWeb) -> None:
    caregiver = served_web.login(CAROL.login, CAROL.password)
    statuses: dict[int, int] = {}

    @FUZZ_SETTINGS
    @given(
        target=st.sampled_from(TARGETS),
        body=BODIES,
        content_type=CONTENT_TYPES,
        encoding=ENCODINGS,
        honest=st.booleans(),
        credentials=st.one_of(
            # Half the requests carry the caregiver's session, so most bodies get parsed.
            st.just((caregiver["X-CSRF-Token"], caregiver["Cookie"])),
            st.tuples(
                st.sampled_from([caregiver["X-CSRF-Token"], None]) | HEADER_TEXT,
                st.sampled_from([caregiver["Cookie"], None]) | HEADER_TEXT,
            ),
        ),
        origin=st.one_of(st.none(), st.just(served_web.base_url), HEADER_TEXT),
    )
    def fuzz(
        target: tuple[str, str],
        body: bytes,
        content_type: str | None,
        encoding: str,
        honest: bool,
        credentials: tuple[str | None, str | None],
        origin: str | None,
    ) -> None:
        method, path = target
        csrf, cookie = credentials
        headers: dict[str, Any] = {}
        for name, value in (
            ("Content-Type", content_type),
            ("Content-Encoding", encoding or None),
            ("X-CSRF-Token", csrf),
            ("Cookie", cookie),
            ("Origin", origin),
        ):
            if value is not None:
                headers[name] = value.encode("latin-1")
        sent = encoded(body, encoding, honest) if method == "POST" else None
        reply = served_web.request(method, path, body=sent, headers=headers)
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        assert reply.status < 500, (reply.status, reply.body[:300])
        if path.startswith("/api/"):
            assert reply.status in documented(path, method), (path, reply.status, reply.body)
            if reply.status >= 400:
                assert "error" in reply.json(), reply.body[:300]

    fuzz()
    assert len(statuses) >= 3, f"the fuzz did not reach far: {statuses}"
    assert served_web.request("GET", "/healthz").json()["rejected"], "refusals are counted"
    assert_still_answers(served_web, caregiver)
