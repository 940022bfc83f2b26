"""Request bodies refused past the limit before the route reads them: declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cleanroom.room.api.limits import BodyLimit

LIMIT = 1_000
read: list[int] = []


async def echo(request: Request) -> Response:
    body = await request.body()
    read.append(len(body))
    return JSONResponse({"bytes": len(body)})


def app() -> BodyLimit:
    inner = Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Route("/up", echo, methods=["POST"])]
    )
    return BodyLimit(
        inner,
        limit=LIMIT,
        exempt=frozenset({("POST", "/up")}),
        refuse=lambda _, message: JSONResponse({"error": message}, status_code=413),
    )


async def chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


@pytest.fixture
def client() -> httpx.AsyncClient:
    read.clear()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t")


@pytest.mark.anyio
async def test_a_body_within_the_limit_reaches_the_route_whole(client: httpx.AsyncClient) -> None:
    assert (await client.post("/echo", content=b"x" * LIMIT)).json() == {"bytes": LIMIT}
    streamed = await client.post("/echo", content=chunks(LIMIT))
    assert streamed.json() == {"bytes": LIMIT}


@pytest.mark.anyio
async def test_a_declared_or_streamed_body_over_the_limit_is_refused_unread(
    client: httpx.AsyncClient,
) -> None:
    declared = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert declared.status_code == 413 and "limit" in declared.json()["error"]
    streamed = await client.post("/echo", content=chunks(50 * LIMIT))  # no Content-Length
    assert streamed.status_code == 413
    assert read == []  # the route never ran


@pytest.mark.anyio
async def test_a_route_with_its_own_limit_is_passed_through(client: httpx.AsyncClient) -> None:
    assert (await client.post("/up", content=b"x" * 5 * LIMIT)).json() == {"bytes": 5 * LIMIT}
