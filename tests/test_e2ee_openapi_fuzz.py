"""Spec-driven fuzzing of the E2EE client API: schemathesis generates requests from the OpenAPI
document's own description of every ``/api/v1/hearthside/e2ee/*`` operation (``server.openapi``)
and sends them to the real app on 127.0.0.1.

Every answer must pass four checks: no 5xx, a documented status code, a documented content type
and a body matching the documented schema. Each operation gets requests of both of
schemathesis' kinds: positive (valid by the document, so they reach the handler's own checks:
signatures, device ids, policies) and negative (some part breaks the document: the answer must
still be a documented error, never a 500).

How it runs: the aiohttp test server serves on this test's event loop while a Hypothesis test
over schemathesis' strategy runs in a worker thread, sending each case with ``Case.call``
(requests) to the server's URL. It is bounded and repeatable: a fixed number of examples per
operation and kind, derandomized, no example database, no schemathesis config file, and every
outbound federation request refused before it is sent (a generated handle or URI of another
instance gets the 404 of an unreachable one; nothing leaves 127.0.0.1). Both databases, like
every API test: PostgreSQL refuses text SQLite stores (a NUL in an actor was a 500 there only).

The cast: two members with active devices (vodozemac, as ``test_e2ee_api.Member`` sets them up)
so device, key, claim and message routes have something to act on, and a moderator for the
staff-only report view. Registration needs a token without a device: each case gets a new one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from test_e2ee_api import CRYPTO_SCOPES, E, Member, new_token

from server.federation import FEDERATION
from server.openapi import build_document
from server.transport import FetchError

# Per operation and kind (positive, negative); each is one HTTP round trip. A longer hunt:
# HEARTHSIDE_FUZZ_EXAMPLES=400 pytest tests/test_e2ee_openapi_fuzz.py (still derandomized).
MAX_EXAMPLES = int(os.environ.get("HEARTHSIDE_FUZZ_EXAMPLES", "25"))
# aiohttp's HTTP parser answers a longer request target itself (400, text/plain), before any
# route or middleware runs: server-wide, not the E2EE handlers' doing (see the test below).
MAX_REQUEST_TARGET = 8190

REGISTRATION = "registerE2EEDevice"  # needs a token that has no device yet
STAFF_ONLY = "showE2EEReport"  # instance moderators only


def e2ee_document() -> dict[str, Any]:
    """The OpenAPI document with only the E2EE paths (all components kept for the $refs)."""
    document = build_document()
    document["paths"] = {path: item for path, item in document["paths"].items() if path.startswith(E + "/")}
    return document


E2EE_OPERATIONS = sorted(
    operation["operationId"] for item in e2ee_document()["paths"].values() for operation in item.values()
)
# Operations without parameters or a body: no negative request can be made of them.
WITHOUT_INPUT = {
    operation["operationId"]
    for item in e2ee_document()["paths"].values()
    for operation in item.values()
    if not operation.get("parameters") and "requestBody" not in operation
}

# What importing schemathesis changes in Hypothesis for the whole process (its
# ``generation.hypothesis.setup()``: a failure printer that prints no values, larger buffers).
_HYPOTHESIS_PATCH_POINTS = [
    ("hypothesis.core", "RepresentationPrinter"),
    ("hypothesis.core", "BUFFER_SIZE"),
    ("hypothesis.internal.conjecture.engine", "BUFFER_SIZE"),
    ("hypothesis.strategies._internal.collections", "BUFFER_SIZE"),
    ("hypothesis.strategies._internal.core", "is_first_param_referenced_in_function"),
    ("hypothesis.internal.entropy", "register_random"),
]


@pytest.fixture(scope="module")
def schemathesis_module() -> Iterator[Any]:
    """schemathesis, imported by this module alone and undone after it.

    pytest runs with ``-p no:schemathesis`` (pyproject.toml), so its plugin does not import it
    into every run; here the Hypothesis attributes it replaces are put back afterwards, so the
    rest of the suite's Hypothesis failures still show their falsifying values."""
    import importlib

    saved = []
    for module_name, attribute in _HYPOTHESIS_PATCH_POINTS:
        module = importlib.import_module(module_name)
        saved.append((module, attribute, getattr(module, attribute)))
    import schemathesis

    try:
        yield schemathesis
    finally:
        for module, attribute, value in saved:
            setattr(module, attribute, value)


@pytest.fixture(scope="module")
def e2ee_schema(schemathesis_module: Any) -> Any:
    """The E2EE operations, loaded with an explicit config (so no schemathesis.toml is looked
    for); the Authorization header is the test's, never generated."""
    config = schemathesis_module.Config.from_dict({"generation": {"with-security-parameters": False}})
    return schemathesis_module.openapi.from_dict(e2ee_document(), config=config)


def test_fuzzed_operations__include_the_ones_given_other_tokens() -> None:
    """The operation ids this module special-cases still exist. Renamed, every registration case
    would meet a token that has a device (409) and every staff view a member (403), and the
    fuzz would pass without reaching either handler's input checks."""
    assert {REGISTRATION, STAFF_ONLY} <= set(E2EE_OPERATIONS)
    assert WITHOUT_INPUT == {"countE2EEKeys", "getE2EESettings", "listE2EEDevices"}


def test_request_target_limit__is_what_the_server_refuses_itself() -> None:
    """MAX_REQUEST_TARGET is aiohttp's own default, which Hearthside does not change."""
    import inspect

    from aiohttp.web_protocol import RequestHandler

    assert inspect.signature(RequestHandler.__init__).parameters["max_line_size"].default == MAX_REQUEST_TARGET


async def _refuse_every_domain(host: str) -> None:
    raise FetchError("refused_domain", f"{host}: no other instance is reachable from this test")


class Cast:
    """The members, devices and moderator the requests act as, and how a request is sent."""

    def __init__(self, operation_id: str, client: Any, engine: Any, alice: Member, moderator: Any) -> None:
        self.operation_id = operation_id
        self.engine = engine
        self.alice = alice
        self.moderator = moderator
        self.loop = asyncio.get_running_loop()
        self.base_url = str(client.make_url("/")).rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment: only 127.0.0.1 is ever reached

    def authorization(self) -> dict[str, str]:
        if self.operation_id == REGISTRATION:  # a new token of alice's, minted on the server's loop
            coroutine = new_token(self.engine, self.alice.user.user_id)
            return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)
        if self.operation_id == STAFF_ONLY:
            return dict(self.moderator.headers)
        return self.alice.listed[0].headers

    def check(self, case: Any) -> None:
        """Send ``case`` and check the answer is documented (see the module note)."""
        from schemathesis.checks import (
            content_type_conformance,
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
        )

        response = case.call(base_url=self.base_url, session=self.session, headers=self.authorization(), timeout=30)
        if len(response.request.path_url) > MAX_REQUEST_TARGET:
            # Refused by the HTTP parser as text (reported: not an E2EE defect); no 5xx still.
            assert response.status_code == 400, response.status_code
            return
        checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
        case.validate_response(response, checks=checks)


async def cast_for(operation_id: str, client: Any, engine: Any, config: Any, make_user: Any) -> Cast:
    """Two members with active devices (Bob has two and accepts messages from everyone) and a
    moderator; nothing leaves 127.0.0.1."""
    client.app[FEDERATION].transport.domain_gate = _refuse_every_domain
    alice = Member(client, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    bob = Member(client, engine, config, await make_user("bob", scopes=CRYPTO_SCOPES))
    await alice.first_device(20)
    await bob.first_device(20)
    await bob.add_device(5)
    answer = await client.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=bob.user.headers)
    assert answer.status == 200
    moderator = await make_user("moderator", role="moderator", scopes="read write admin:read:reports crypto")
    return Cast(operation_id, client, engine, alice, moderator)


@pytest.mark.parametrize("operation_id", E2EE_OPERATIONS)
async def test_e2ee_openapi__generated_requests_get_documented_answers(
    operation_id: str, e2ee_schema: Any, client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    from schemathesis.generation import GenerationMode

    cast = await cast_for(operation_id, client, engine, config, make_user)
    operation = e2ee_schema.find_operation_by_id(operation_id)
    modes = [GenerationMode.POSITIVE] + ([] if operation_id in WITHOUT_INPUT else [GenerationMode.NEGATIVE])

    def fuzz(mode: Any) -> None:
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        )
        @given(case=operation.as_strategy(mode))
        def answers_are_documented(case: Any) -> None:
            cast.check(case)

        answers_are_documented()

    try:
        for mode in modes:
            await asyncio.to_thread(fuzz, mode)
    finally:
        cast.session.close()


@pytest.mark.parametrize("operation_id", E2EE_OPERATIONS)
async def test_e2ee_openapi__boundary_values_get_documented_answers(
    operation_id: str, e2ee_schema: Any, client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    """schemathesis' coverage phase: not random, every operation's values at and just past each
    documented bound (lengths, ranges, patterns, enums, required and missing fields, wrong types),
    valid and invalid, each sent once."""
    from schemathesis.generation import GenerationMode

    cast = await cast_for(operation_id, client, engine, config, make_user)
    operation = e2ee_schema.find_operation_by_id(operation_id)
    cases = list(
        e2ee_schema.iter_coverage_cases(
            operation,
            generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=e2ee_schema.config.generation_for(operation=operation),
        )
    )
    # The phase ran. (An operation without input still gets header cases; the cases of methods an
    # operation does not document are made once per schema, so the second database gets fewer.)
    assert cases

    def send_all() -> None:
        for case in cases:
            cast.check(case)

    try:
        await asyncio.to_thread(send_all)
    finally:
        cast.session.close()
