from sanic import Sanic

from common.database import register_database
from common.retention import inbox_purge, register_purges
from common.service import create_app, register_consumers, run_in_background
from common.tokens import TokenVerifier
from saga.handlers import consumers
from saga.metrics import SagaMetrics, keep_counting_sagas
from saga.orchestrator import Orchestrator, Timing
from saga.retention import saga_purges
from saga.routes import sagas
from saga.settings import SagaSettings
from saga.timer import register_deadline_timer

NAME = "saga"


def create_saga_app(settings: SagaSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    """The orchestrator: its consumers and deadline timer run beside the inspection API (CONSUME_EVENTS=false
    leaves them out, for tests that drive the orchestrator directly)."""
    app = create_app(NAME, "Order saga", settings, token_verifier)
    metrics = SagaMetrics(app.ctx.metrics.registry)
    timing = Timing(
        settings.payment_timeout, settings.step_timeout, settings.step_max_attempts, settings.failed_retry_delay
    )
    orchestrator = Orchestrator(timing, metrics)
    app.ctx.orchestrator = orchestrator
    register_database(app, settings.database_url, NAME)
    app.blueprint(sagas)

    if settings.consume_events:
        register_consumers(app, lambda: consumers(settings, orchestrator))
        register_deadline_timer(app, orchestrator, settings.saga_timer_interval)
        purges = [inbox_purge(settings.inbox_retention_days), *saga_purges(settings.saga_history_retention_days)]
        register_purges(app, NAME, purges, settings.purge_interval)
    run_in_background(app, "saga_counter", lambda: keep_counting_sagas(metrics, NAME))

    return app
