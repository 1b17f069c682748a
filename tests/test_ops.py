"""Operations endpoints and the middlewares every request passes through."""

from __future__ import annotations

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
