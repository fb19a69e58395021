"""Helpers shared by the tests: serving a Sanic app on the test's own event loop."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sanic import Sanic

from stack.infra import free_port

Sanic.test_mode = True  # several apps in one process


@asynccontextmanager
async def serving(app: Sanic) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app` with its listeners on a free port; yield a client whose base URL is the app."""
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()
