"""The relay's process: the drain loops in the background; health, readiness and metrics over HTTP (the operations
service, operations/, serves what operators act on)."""

import asyncio
import logging

from sanic import Sanic

from common.service import create_app
from outbox_relay.outboxes import drained_outboxes
from outbox_relay.publisher import Publisher
from outbox_relay.relay import Relay
from outbox_relay.settings import RelaySettings

NAME = "outbox_relay"
log = logging.getLogger(__name__)


def create_relay_app(settings: RelaySettings, publisher: Publisher | None = None) -> Sanic:
    """The relay's app; `publisher` is the Kafka side (by default a Publisher for the settings' broker; the failure
    tests compose a faulty one, tests/faulty_relay.py)."""
    app = create_app(NAME, "Outbox relay", settings)
    publisher = publisher or Publisher(settings.kafka_bootstrap_servers)
    relay = Relay(drained_outboxes(settings), publisher, settings, app.ctx.metrics.registry)
    app.ctx.relay = relay

    async def outboxes_reachable() -> bool:
        if not all(outbox.is_open for outbox in relay.outboxes):
            return False
        try:
            await asyncio.gather(*(outbox.pending() for outbox in relay.outboxes))
        except Exception:
            return False
        return True

    app.ctx.readiness_checks["outboxes"] = outboxes_reachable

    @app.before_server_start
    async def start_relay(app: Sanic) -> None:
        await relay.publisher.start()  # the drain loops open the outboxes, retrying until their databases exist
        app.ctx.relay_task = asyncio.create_task(relay.run(), name="relay")
        app.ctx.relay_task.add_done_callback(stop_unless_cancelled)

    def stop_unless_cancelled(task: asyncio.Task) -> None:
        """The relay's loops only end by being cancelled: if they fail, the process says why and stops (compose and
        Kubernetes start it again; `make run` stops, saying so) rather than serving /ready with nothing draining."""
        if not task.cancelled() and task.exception() is not None:
            log.critical("the relay stopped", exc_info=task.exception())
            app.stop()

    @app.after_server_stop
    async def stop_relay(app: Sanic) -> None:
        app.ctx.relay_task.cancel()
        await asyncio.gather(app.ctx.relay_task, return_exceptions=True)
        await relay.publisher.stop()
        for outbox in relay.outboxes:
            await outbox.close()

    return app
