from sanic import Sanic

from common.database import register_database
from common.retention import inbox_purge, register_purges
from common.service import create_app, register_consumers
from common.tokens import TokenVerifier
from stock_svc.handlers import stock_consumers
from stock_svc.inventory import DB
from stock_svc.retention import stock_purges
from stock_svc.routes import inventory_routes
from stock_svc.settings import StockSettings

NAME = DB


def create_stock_app(settings: StockSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    app = create_app(NAME, "Stock service", settings, token_verifier)
    register_database(app, settings.database_url, NAME)
    if settings.consume_events:
        register_consumers(app, lambda: stock_consumers(settings))
        purges = stock_purges(settings.command_retention_days, settings.stock_history_retention_days)
        register_purges(app, DB, [inbox_purge(settings.inbox_retention_days), *purges], settings.purge_interval)
    app.blueprint(inventory_routes)
    return app
