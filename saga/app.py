from sanic import Sanic

from common.database import database_reachable, register_database
from common.service import broker_reachable, create_app, register_consumers
from common.tokens import JwksKeys, TokenVerifier
from saga.handlers import consumers
from saga.orchestrator import Orchestrator, Timing
from saga.routes import sagas
from saga.settings import SagaSettings
from saga.timer import register_deadline_timer

NAME = "saga"


def create_saga_app(settings: SagaSettings, token_verifier: TokenVerifier | None = None, consume: bool = True) -> Sanic:
    """The orchestrator: its consumers and deadline timer run beside the inspection API (`consume=False`
    leaves them out, for tests that drive the orchestrator directly)."""
    app = create_app(NAME, "Order saga", settings)
    app.ctx.token_verifier = token_verifier or TokenVerifier(JwksKeys(settings.jwks_url))
    orchestrator = Orchestrator(Timing(settings.payment_timeout, settings.step_timeout, settings.step_max_attempts))
    app.ctx.orchestrator = orchestrator
    app.ctx.readiness_checks.update(
        database=lambda: database_reachable(NAME),
        broker=lambda: broker_reachable(settings.kafka_bootstrap_servers),
    )
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")
    register_database(app, settings.database_url, NAME)
    app.blueprint(sagas)

    if consume:
        register_consumers(app, lambda: consumers(settings, orchestrator))
        register_deadline_timer(app, orchestrator, settings.saga_timer_interval)

    return app
