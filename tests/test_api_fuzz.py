"""Hostile input across the whole HTTP surface: whatever arrives, the answer is a 2xx-4xx,
never a 500, and every API error is Mastodon's ``{"error": ...}`` JSON.

Routes are read from the live app, so new endpoints are fuzzed as soon as they exist. Runs on
SQLite only: the property is about input handling, which is the same on both databases (the
per-feature tests run on both).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PARAM_NAMES = [
    "status", "spoiler_text", "sensitive", "visibility", "in_reply_to_id", "language", "group_id", "limit",
    "max_id", "min_id", "since_id", "q", "type", "id", "id[]", "username", "password", "email", "agreement",
    "reason", "invite_code", "display_name", "note", "locked", "name", "description", "rules[]", "topic_tags[]",
    "join_policy", "members_only", "account_id", "grant_type", "client_id", "client_secret", "code", "scope",
    "redirect_uri", "redirect_uris", "client_name", "scopes", "token", "acct", "notifications", "duration",
    "types[]", "exclude_types[]", "local", "remote", "fields_attributes", "role", "new_password",
    "current_password", "max_uses", "expires_in", "offset", "resolve", "following", "media_ids[]",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
printable = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=60)
scalar_text = st.one_of(
    printable,
    st.sampled_from(["", "0", "-1", "1", "true", "false", "99999999999999999999", "null", "[]", "%00", "a\x00b"]),
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
)
path_values = st.one_of(st.sampled_from(["1", "0", "abc", "-5", "99999999999999999999", "%2e%2e", "x" * 300]),
                        st.from_regex(r"[0-9]{1,19}", fullmatch=True))  # fmt: skip


def _routes(app: Any) -> list[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if not template or route.method in ("HEAD", "OPTIONS", "*"):
            continue
        template = template.replace("{_trailing_slash}", "")
        if template in ("/metrics",):
            continue
        found.add((route.method, template))
    return sorted(found)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_every_route__hostile_input_never_500(client: Any, make_user: Any, data: st.DataObject) -> None:
    routes = _routes(client.app)
    assert len(routes) > 5
    user = getattr(client, "_fuzz_user", None)
    if user is None:
        user = await make_user("fuzzer", role="admin", scopes="read write follow push admin:read admin:write")
        client._fuzz_user = user
    method, template = data.draw(st.sampled_from(routes), label="route")
    path = re.sub(r"\{[^}]+\}", lambda _m: data.draw(path_values, label="path param"), template)
    params = data.draw(st.dictionaries(st.sampled_from(PARAM_NAMES) | printable, scalar_text, max_size=6))
    encoding = data.draw(st.sampled_from(["query", "form", "json", "raw"]))
    headers = dict(user.headers) if data.draw(st.booleans(), label="authenticated") else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if encoding == "query" or method == "GET":
        kwargs["params"] = params
    elif encoding == "form":
        kwargs["data"] = params
    elif encoding == "json":
        body = data.draw(st.dictionaries(st.sampled_from(PARAM_NAMES), json_values, max_size=6))
        kwargs["data"] = json.dumps(body)
        headers["Content-Type"] = "application/json"
    else:
        kwargs["data"] = data.draw(st.binary(max_size=200))
        headers["Content-Type"] = data.draw(st.sampled_from(["application/json", "text/plain", "application/xml"]))
    # Redirects (profile URLs) point at the configured base_url, not at the test server.
    response = await client.request(method, path, allow_redirects=False, **kwargs)
    body_text = await response.text()
    assert response.status < 500, f"{method} {path} -> {response.status}: {body_text[:300]}"
    if response.status >= 400 and path.startswith("/api/"):
        assert "error" in json.loads(body_text), body_text[:300]
