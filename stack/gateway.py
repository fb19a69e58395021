"""The local gateway: one port for every `/api/v1/...` path, as nginx is in docker compose.

A small reverse proxy: the longest route prefix that matches the path picks the upstream; the request goes on
with its method, path, query string, body and end-to-end headers over a pool of keep-alive connections, and the
upstream's answer comes back unchanged (less hop-by-hop headers). Run it as `python -m stack.gateway` with
GATEWAY_PORT and GATEWAY_ROUTES (JSON `{"/api/v1/auth": "http://127.0.0.1:8001", ...}`).
"""

import json
import logging
import os
import uuid
from collections.abc import Mapping

import httpx
from sanic import Request, Sanic
from sanic.compat import Header
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from common.logs import configure_logging

log = logging.getLogger("stack.gateway")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded (plus those named in `Connection`).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class Routes:
    """Path prefixes and their upstream base URLs; a prefix matches whole path segments only."""

    def __init__(self, routes: Mapping[str, str]) -> None:
        # Longest first, so `/api/v1/docs/user_svc` wins over a shorter `/api/v1/docs`.
        self._routes = sorted(
            ((prefix.rstrip("/") or "/", upstream.rstrip("/")) for prefix, upstream in routes.items()),
            key=lambda route: len(route[0]),
            reverse=True,
        )

    def upstream(self, path: str) -> str | None:
        for prefix, upstream in self._routes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return upstream
        return None


def _forwardable(headers: Header) -> list[tuple[str, str]]:
    """The end-to-end headers: hop-by-hop ones, and those the `Connection` header names, are dropped."""
    named = {token.strip().lower() for value in headers.getall("connection", []) for token in value.split(",")}
    return [(name, value) for name, value in headers.items() if name.lower() not in HOP_BY_HOP | named]


def _request_headers(request: Request, request_id: str) -> list[tuple[str, str]]:
    # Host is rewritten by httpx for the upstream, Content-Length recomputed from the body we send.
    dropped = {"host", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    headers = [(name, value) for name, value in _forwardable(request.headers) if name.lower() not in dropped]
    # Append the peer to any X-Forwarded-For the client sent: services trust exactly one proxy (this one), so they
    # read the last entry, which a client cannot forge. Proto and host are the edge's own view, never the client's.
    forwarded_for = ", ".join([*request.headers.getall("x-forwarded-for", []), request.ip])
    headers += [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", request.scheme),
        ("x-forwarded-host", request.host),
    ]
    if "x-request-id" not in request.headers:
        headers.append(("x-request-id", request_id))
    return headers


def _error(status: int, error: str, message: str, request_id: str) -> HTTPResponse:
    return json_response({"error": error, "message": message}, status=status, headers={"X-Request-ID": request_id})


def create_gateway(routes: Mapping[str, str], timeout: float = 30.0, max_connections: int = 200) -> Sanic:
    """The gateway app; `routes` maps path prefixes to upstream base URLs (`http://host:port`)."""
    app = Sanic("gateway")
    # AUTO_EXTEND off: sanic-ext is installed for the services, and would give the gateway its own /docs routes.
    app.config.update({"FALLBACK_ERROR_FORMAT": "json", "HEALTH": False, "AUTO_EXTEND": False})
    table = Routes(routes)
    # No request timeout short of ours: the upstream's slowness is reported as 504 by the proxy itself.
    app.config.REQUEST_TIMEOUT = max(app.config.REQUEST_TIMEOUT, timeout + 5)
    app.config.RESPONSE_TIMEOUT = max(app.config.RESPONSE_TIMEOUT, timeout + 5)

    @app.before_server_start
    async def open_pool(app: Sanic) -> None:
        # trust_env=False: an HTTP(S)_PROXY in the developer's shell must not capture calls to 127.0.0.1.
        app.ctx.client = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,
        )

    @app.after_server_stop
    async def close_pool(app: Sanic) -> None:
        await app.ctx.client.aclose()

    @app.get("/health", name="health")
    async def health(request: Request) -> HTTPResponse:
        return json_response({"status": "ok", "service": "gateway"})

    async def proxy(request: Request, path: str = "") -> HTTPResponse:
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        upstream = table.upstream(request.path)
        if upstream is None:
            return _error(404, "not_found", f"No service serves {request.path}", request_id)
        url = upstream + request.path + (f"?{request.query_string}" if request.query_string else "")
        client: httpx.AsyncClient = app.ctx.client
        # Built by hand rather than with client.build_request: that would add httpx's own default headers
        # (Accept-Encoding: gzip, User-Agent...) which the client never sent.
        outgoing = httpx.Request(
            request.method,
            url,
            headers=_request_headers(request, request_id),
            content=request.body,
            extensions={"timeout": client.timeout.as_dict()},
        )
        try:
            response = await client.send(outgoing, stream=True)
            try:
                # Raw bytes: a compressed body stays compressed, matching the Content-Encoding passed back.
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            log.warning("upstream %s timed out for %s %s", upstream, request.method, request.path)
            return _error(
                504, "gateway_timeout", f"The service behind {request.path} did not answer in time", request_id
            )
        except httpx.TransportError as error:
            log.warning("upstream %s failed for %s %s: %r", upstream, request.method, request.path, error)
            return _error(502, "bad_gateway", f"The service behind {request.path} is unreachable", request_id)
        return _response(request, response, body)

    app.add_route(proxy, "/", methods=METHODS, name="proxy_root")
    app.add_route(proxy, "/<path:path>", methods=METHODS, name="proxy")
    return app


def _response(request: Request, upstream: httpx.Response, body: bytes) -> HTTPResponse:
    headers = Header()
    keep_length = request.method == "HEAD"  # no body to measure: the upstream's length is the answer
    for name, value in _forwardable(Header(upstream.headers.multi_items())):
        if name.lower() != "content-length" or keep_length:
            headers.add(name, value)
    # Sanic writes a missing content type as "None"; RFC 9110 §8.3 lets a recipient assume octet-stream anyway.
    content_type = upstream.headers.get("content-type", "application/octet-stream")
    return HTTPResponse(body, status=upstream.status_code, headers=headers, content_type=content_type)


def main() -> None:
    routes = json.loads(os.environ.get("GATEWAY_ROUTES", "{}"))
    host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = int(os.environ.get("GATEWAY_PORT", "8080"))
    timeout = float(os.environ.get("GATEWAY_TIMEOUT", "30"))
    app = create_gateway(routes, timeout=timeout)
    # After the app: creating a Sanic app installs Sanic's own log handlers, which this replaces.
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_JSON", "false").lower() == "true")
    log.info("gateway on http://%s:%s routes %s", host, port, json.dumps(routes))
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
