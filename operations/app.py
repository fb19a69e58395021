"""The operations service's app: the outbox stores (no listener, lease or claim: it reads and repairs, the relay
drains), the consumer-lag watch and the dead letters, behind operations/routes.py."""

from sanic import Sanic

from common.service import create_app
from common.tokens import TokenVerifier
from operations.consumers import LagWatch
from operations.dead_letters import DeadLetters
from operations.routes import operations_routes
from operations.settings import OperationsSettings
from outbox_relay.outboxes import outbox_stores

NAME = "operations"


def create_operations_app(settings: OperationsSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    app = create_app(NAME, "Operations", settings, token_verifier)
    stores = outbox_stores(settings)
    app.ctx.stores = stores
    app.ctx.lag = LagWatch(settings.kafka_bootstrap_servers, settings.consumer_lag_max_age)
    app.ctx.dead_letters = DeadLetters(stores, settings.kafka_bootstrap_servers)
    app.blueprint(operations_routes)

    @app.after_server_stop
    async def close(app: Sanic) -> None:
        await app.ctx.dead_letters.close()
        for store in stores:
            await store.close()

    return app
