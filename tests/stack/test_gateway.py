"""The local gateway, the real Caddy configured as `make run` configures it, against real upstreams: small Sanic
apps served on this test's loop, on free ports."""

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sanic import Request, Sanic
from sanic.response import HTTPResponse, empty, json, raw

from stack.gateway import caddy_command, caddy_config, write_caddy_config
from stack.infra import ServerProcess, free_port, port_open

Sanic.test_mode = True  # several apps in one process
MAX_BODY = 64 * 1024


def echo_app(name: str) -> Sanic:
    """An upstream that answers with what it received, so tests can see what the gateway forwarded."""
    app = Sanic(name)

    async def echo(request: Request, path: str = "") -> HTTPResponse:
        return json(
            {
                "upstream": name,
                "method": request.method,
                "path": request.path,
                "query_string": request.query_string,
                "body": request.body.decode(),
                "headers": {key.lower(): value for key, value in request.headers.items()},
            },
            headers={"Set-Cookie": "a=1", "X-Upstream": name},
        )

    async def slow(request: Request) -> HTTPResponse:
        await asyncio.sleep(2)
        return json({})

    async def gone(request: Request) -> HTTPResponse:
        return empty()

    async def binary(request: Request) -> HTTPResponse:
        return raw(gzip.compress(b"compressed upstream"), headers={"Content-Encoding": "gzip"}, status=201)

    app.add_route(slow, "/api/v1/slow")
    app.add_route(gone, "/api/v1/gone", methods=["DELETE"])
    app.add_route(binary, "/api/v1/binary")
    app.add_route(echo, "/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    return app


@asynccontextmanager
async def serving(app: Sanic) -> AsyncIterator[str]:
    port = free_port()
    # create_server already listens (it awaits the AsyncioServer); the calls below run the app's listeners.
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(echo_app("users")) as users, serving(echo_app("special")) as special:
        routes = {
            "/api/v1/auth": [users],
            "/api/v1/users": [users],
            "/api/v1/users/special": [special],
            "/api/v1/slow": [users],
            "/api/v1/gone": [users],
            "/api/v1/binary": [users],
            "/api/v1/down": [f"http://127.0.0.1:{free_port()}"],  # nothing listens there
        }
        async with caddy(routes, tmp_path_factory.mktemp("gateway"), timeout=0.5, max_body_bytes=MAX_BODY) as client:
            yield client


@asynccontextmanager
async def caddy(
    routes: dict[str, list[str]], directory: Path, timeout: float, max_body_bytes: int
) -> AsyncIterator[httpx.AsyncClient]:
    """The real Caddy configured as `make run` configures it for `routes`, and a client of it."""
    port = free_port()
    config = caddy_config(routes, "127.0.0.1", port, timeout, max_body_bytes, storage_dir=directory)
    command = caddy_command(write_caddy_config(directory / "caddy.json", config))
    server = await asyncio.to_thread(ServerProcess("caddy", command, port, directory / "caddy.log").start)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            yield client
    finally:
        await asyncio.to_thread(server.stop)


async def test_routes_by_longest_prefix_on_whole_segments(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/api/v1/users")).json()["upstream"] == "users"
    assert (await gateway.get("/api/v1/users/me")).json()["upstream"] == "users"
    assert (await gateway.get("/api/v1/users/special")).json()["upstream"] == "special"
    assert (await gateway.get("/api/v1/users/special/1")).json()["upstream"] == "special"
    assert (await gateway.get("/api/v1/auth/")).json()["path"] == "/api/v1/auth/"
    assert (await gateway.get("/api/v1/usersx")).status_code == 404


async def test_forwards_method_query_body_and_headers(gateway: httpx.AsyncClient) -> None:
    response = await gateway.put(
        "/api/v1/users/me?x=1&y=a%20b",
        content=b'{"first_name": "Ada"}',
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer t",
            "Connection": "keep-alive, X-Private",
            "X-Private": "hop",
        },
    )
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "PUT"
    assert echoed["path"] == "/api/v1/users/me"
    assert echoed["query_string"] == "x=1&y=a%20b"
    assert echoed["body"] == '{"first_name": "Ada"}'
    headers = echoed["headers"]
    assert headers["authorization"] == "Bearer t"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(b'{"first_name": "Ada"}'))
    assert "x-private" not in headers  # named by Connection: hop-by-hop
    assert headers["accept-encoding"] == response.request.headers["accept-encoding"]  # the client's, not httpx's
    assert response.headers["x-upstream"] == "users"
    assert response.headers["set-cookie"] == "a=1"
    assert response.headers["content-length"] == str(len(response.content))


async def test_sets_forwarding_headers(gateway: httpx.AsyncClient) -> None:
    headers = (await gateway.get("/api/v1/auth/login")).json()["headers"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"].startswith("127.0.0.1:")
    assert headers["x-request-id"]

    sent = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Request-ID": "abc-123"}
    response = await gateway.get("/api/v1/auth/login", headers=sent)
    headers = response.json()["headers"]
    # A client's own X-Forwarded-For is not trusted: the services read the last entry, the real peer.
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"  # the gateway's own view, not the client's claim
    assert headers["x-request-id"] == "abc-123"


async def test_passes_status_and_raw_body(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/binary")
    assert response.status_code == 201
    assert response.headers["content-encoding"] == "gzip"
    # Passed through still compressed: decoding here would fail had the gateway decoded it and kept the header.
    assert response.content == b"compressed upstream"
    assert response.num_bytes_downloaded == len(gzip.compress(b"compressed upstream"))
    assert (await gateway.delete("/api/v1/gone")).status_code == 204


async def test_head_keeps_the_upstream_length(gateway: httpx.AsyncClient) -> None:
    get, head = await gateway.get("/api/v1/users/me"), await gateway.head("/api/v1/users/me")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert get.status_code == 200


async def test_unknown_path_is_a_json_404(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/x?y=1", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "No service serves this path", "request_id": "req-404"}
    assert response.headers["x-request-id"] == "req-404"
    assert (await gateway.post("/api/v1/orders")).status_code == 404


async def test_body_over_the_limit_is_a_json_413(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post("/api/v1/users/me", content=b"x" * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert response.headers["x-request-id"] == response.json()["request_id"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024

    chunked = await gateway.post("/api/v1/users/me", content=chunks())
    assert chunked.status_code == 413  # no Content-Length to go by: counted as it arrives
    assert (await gateway.post("/api/v1/users/me", content=b"x" * MAX_BODY)).json()["body"] == "x" * MAX_BODY


async def test_upstream_down_is_502(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/down/anything")
    assert response.status_code == 502
    assert response.json()["error"] == "bad_gateway"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_upstream_timeout_is_504(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/slow")
    assert response.status_code == 504
    assert response.json()["error"] == "gateway_timeout"
    # The gateway stays usable afterwards.
    assert (await gateway.get("/api/v1/users/me")).status_code == 200


async def test_own_health(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_no_admin_api_and_no_https(gateway: httpx.AsyncClient) -> None:
    config = caddy_config({}, "127.0.0.1", 1, timeout=1, max_body_bytes=1, storage_dir=Path("."))
    assert config["admin"]["disabled"] is True
    assert config["apps"]["http"]["servers"]["gateway"]["automatic_https"] == {"disable": True}
    assert not port_open(2019)  # Caddy's default admin address
    assert (await gateway.get("/config/")).status_code == 404  # nor on the public port
