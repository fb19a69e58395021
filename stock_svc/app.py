from sanic import Sanic

from common.database import database_reachable, register_database
from common.service import broker_reachable, create_app, register_consumers
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
        register_consumers(app, lambda: stock_consumers(settings))
    app.blueprint(inventory_routes)
    return app
