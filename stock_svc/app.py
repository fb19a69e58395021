from sanic import Sanic

from common.database import register_database
from common.service import create_app, register_consumers, register_dead_letters
from common.tokens import TokenVerifier
from stock_svc.handlers import stock_consumers
from stock_svc.inventory import DB
from stock_svc.routes import inventory_routes
from stock_svc.settings import StockSettings

NAME = DB


def create_stock_app(settings: StockSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    app = create_app(NAME, "Stock service", settings, token_verifier)
    register_database(app, settings.database_url, NAME)
    register_dead_letters(app, settings.database_url)
    if settings.consume_events:
        register_consumers(app, lambda: stock_consumers(settings))
    app.blueprint(inventory_routes)
    return app
