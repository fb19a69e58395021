"""The frame every service shares: a Sanic app with one error format, request ids, health and readiness."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse, json
from sanic_ext import Extend

from common.consumer import EventConsumer
from common.errors import install_error_handlers
from common.logs import configure_logging, correlation_id
from common.metrics import register_metrics
from common.settings import ServiceSettings
from common.tokens import JwksKeys, TokenVerifier

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]


def create_app(name: str, title: str, settings: ServiceSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    """A service app: JSON errors, `X-Request-ID` on every response, `/health`, `/ready` (the broker, and what
    the service adds to `app.ctx.readiness_checks`), Prometheus metrics at `/metrics` and OpenAPI docs.

    Bearer tokens are verified with user_svc's published keys (JWKS_URL, fetched on first use) unless a verifier
    is given. The docs are served at `/api/v1/docs/<name>` so that the gateway reaches them like any other path.
    """
    app = Sanic(name)
    app.config.update(
        {
            "FALLBACK_ERROR_FORMAT": "json",
            "OAS_UI_DEFAULT": "swagger",
            "OAS_URL_PREFIX": f"/api/v1/docs/{name}",
            "OAS_UI_REDOC": False,
            "CORS": False,
            "HEALTH": False,
            "REQUEST_MAX_SIZE": settings.max_body_bytes,
        }
    )
    Extend(app)
    app.ext.openapi.describe(title, version="1.0.0")
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")
    app.ctx.settings = settings
    app.ctx.token_verifier = token_verifier or TokenVerifier(JwksKeys(settings.jwks_url))
    app.ctx.readiness_checks = {"broker": lambda: broker_reachable(settings.kafka_bootstrap_servers)}
    install_error_handlers(app)
    register_metrics(app)

    @app.on_request
    async def bind_correlation_id(request: Request) -> None:
        correlation_id.set(str(request.id))

    @app.middleware("response")
    async def expose_request_id(request: Request, response: BaseHTTPResponse) -> None:
        response.headers["X-Request-ID"] = str(request.id)

    @app.get("/health", name="health")
    async def health(request: Request) -> HTTPResponse:
        return json({"status": "ok", "service": name})

    @app.get("/ready", name="ready")
    async def ready(request: Request) -> HTTPResponse:
        checks: dict[str, ReadinessCheck] = app.ctx.readiness_checks
        results = dict(zip(checks, await asyncio.gather(*(check() for check in checks.values())), strict=True))
        status = 200 if all(results.values()) else 503
        return json({"status": "ready" if status == 200 else "unavailable", "checks": results}, status=status)

    return app


async def broker_reachable(bootstrap_servers: str, timeout: float = 1.0) -> bool:
    """True when a TCP connection to one of the bootstrap servers opens within `timeout` s."""
    for server in bootstrap_servers.split(","):
        parts = urlsplit(f"//{server.strip()}")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), timeout)
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False


def register_consumers(app: Sanic, make_consumers: Callable[[], list[EventConsumer]]) -> None:
    """Consume once the server has started (its database opens before that) and stop before the database
    closes; readiness waits for every consumer to have joined its group and received its partitions."""
    app.ctx.consumers = None

    async def consumers_running() -> bool:
        return app.ctx.consumers is not None and all(consumer.ready for consumer in app.ctx.consumers)

    app.ctx.readiness_checks["consumers"] = consumers_running

    @app.after_server_start
    async def start_consumers(app: Sanic) -> None:
        consumers = make_consumers()
        for consumer in consumers:
            consumer.metrics = app.ctx.metrics
        await asyncio.gather(*(consumer.start() for consumer in consumers))  # joining a group takes seconds
        app.ctx.consumers = consumers
        for consumer in consumers:
            assert consumer.task is not None
            consumer.task.add_done_callback(stop_on_failure)

    def stop_on_failure(task: asyncio.Task) -> None:
        """A fetch loop that fails ends the process, saying why (compose and Kubernetes start it again; `make run`
        stops, saying so), rather than serve on while its partitions are read by no one."""
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s failed: the service stops", task.get_name(), exc_info=task.exception())
            app.stop()

    @app.before_server_stop
    async def stop_consumers(app: Sanic) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in app.ctx.consumers or ()))


def run_in_background(app: Sanic, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """`work()` as a task while the server runs: started once it has started (its database is open), cancelled
    before it stops."""

    async def start(app: Sanic) -> None:
        setattr(app.ctx, name, asyncio.create_task(work(), name=name))

    async def stop(app: Sanic) -> None:
        task = getattr(app.ctx, name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.after_server_start(start)
    app.before_server_stop(stop)


def run(app: Sanic, settings: ServiceSettings) -> None:
    """Serve `app` in this process (scale by running more processes, not workers)."""
    configure_logging(settings.log_level, settings.log_json)
    app.run(host=settings.host, port=settings.port, single_process=True, access_log=False, motd=False)
