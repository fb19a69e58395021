import asyncio

from sanic import Sanic

from common.database import database_reachable, register_database
from common.service import broker_reachable, create_app
from common.tokens import JwksKeys, TokenVerifier
from stock_svc.handlers import stock_consumers
from stock_svc.inventory import DB
from stock_svc.routes import inventory_routes
from stock_svc.settings import StockSettings

NAME = DB


def create_stock_app(settings: StockSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    app = create_app(NAME, "Stock service", settings)
    app.ctx.token_verifier = token_verifier or TokenVerifier(JwksKeys(settings.jwks_url))
    app.ctx.readiness_checks.update(
        database=lambda: database_reachable(NAME),
        broker=lambda: broker_reachable(settings.kafka_bootstrap_servers),
    )
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")
    register_database(app, settings.database_url, NAME)
    if settings.consume_events:
        register_consumers(app, settings)
    app.blueprint(inventory_routes)
    return app


def register_consumers(app: Sanic, settings: StockSettings) -> None:
    """Consume once the server has started (its database opens before that); stop before the database closes."""
    app.ctx.consumers = []

    async def consumers_running() -> bool:
        return all(consumer.running for consumer in app.ctx.consumers)

    app.ctx.readiness_checks["consumers"] = consumers_running

    @app.after_server_start
    async def start_consumers(app: Sanic) -> None:
        app.ctx.consumers = stock_consumers(settings)
        await asyncio.gather(*(consumer.start() for consumer in app.ctx.consumers))  # each join takes seconds

    @app.before_server_stop
    async def stop_consumers(app: Sanic) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in app.ctx.consumers))
