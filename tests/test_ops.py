"""Operations endpoints and the middlewares every request passes through."""

from __future__ import annotations

import io
from typing import Any

from sqlalchemy import text


async def test_healthz__answers_with_and_without_trailing_slash(client: Any) -> None:
    for path in ("/healthz", "/healthz/"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_readyz__ok_when_migrated(client: Any) -> None:
    response = await client.get("/readyz")
    assert response.status == 200


async def test_readyz__503_when_schema_behind(client: Any, engine: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["reason"] == "migrations_pending"


async def test_metrics__count_requests_by_route_template(client: Any) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status == 200
    body = await response.text()
    assert 'hearthside_http_requests_total{method="GET",route="/healthz",status="200"}' in body


async def test_request_id__echoed_when_sane_generated_otherwise(client: Any) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    response = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith<stuff>"})
    assert response.headers["X-Request-Id"] != "bad id\twith<stuff>"
    assert len(response.headers["X-Request-Id"]) == 16


async def test_unknown_path__json_404(client: Any) -> None:
    response = await client.get("/api/v1/nothing/here/")
    assert response.status == 404
    assert await response.json() == {"error": "Record not found"}


async def test_preflight__cors_answered(client: Any) -> None:
    response = await client.options("/api/v1/instance")
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_oversized_body__413_json_and_nothing_written(client: Any, make_user: Any, engine: Any) -> None:
    user = await make_user("big")
    body = io.BytesIO(b"status=" + b"x" * (1_048_576 + 10))
    headers = {**user.headers, "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post("/api/v1/statuses", data=body, headers=headers)
    assert response.status == 413
    assert await response.json() == {"error": "Request body too large"}
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM statuses"))).scalar_one() == 0


async def test_deeply_nested_json__400_names_the_problem(client: Any, make_user: Any) -> None:
    user = await make_user("deep")
    nested = "[" * 5000 + "]" * 5000
    response = await client.post(
        "/api/v1/statuses",
        data=f'{{"status": "hi", "x": {nested}}}',
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert "nests deeper" in (await response.json())["error"] or "not valid JSON" in (await response.json())["error"]


async def test_static__default_images_served_unknown_names_404(client: Any) -> None:
    response = await client.get("/static/avatar.png")
    assert response.status == 200
    assert (await response.read()).startswith(b"\x89PNG")
    assert (await client.get("/static/../config.py")).status == 404
    assert (await client.get("/static/secret_key")).status == 404
