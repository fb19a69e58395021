from sanic import Sanic

from common.database import register_database
from common.idempotency import idempotency_purge
from common.retention import inbox_purge, register_purges
from common.service import create_app, register_consumers
from common.tokens import TokenVerifier
from order_svc.handlers import order_consumers
from order_svc.orders import DB
from order_svc.reconciler import register_orphan_reconciler
from order_svc.routes import order_routes
from order_svc.settings import OrderSettings

NAME = DB


def create_order_app(settings: OrderSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    """The order service; tokens are verified with user_svc's published keys unless a verifier is given (tests).
    Its consumers run when `settings.consume_events` is on."""
    app = create_app(NAME, "Order service", settings, token_verifier)
    register_database(app, settings.database_url, NAME)
    if settings.consume_events:
        register_consumers(app, lambda: order_consumers(settings))
        register_orphan_reconciler(app, settings.orphan_after, settings.orphan_check_interval)
        keys = idempotency_purge(settings.idempotency_key_retention_hours)
        register_purges(app, DB, [inbox_purge(settings.inbox_retention_days), keys], settings.purge_interval)
    app.blueprint(order_routes)
    return app
