"""The relay's process: the drain loops in the background, and a small HTTP surface for operators."""

import asyncio
import logging

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

from common.errors import NotFound
from common.service import create_app
from outbox_relay.postgres_outbox import PostgresOutbox
from outbox_relay.publisher import Publisher
from outbox_relay.relay import Relay
from outbox_relay.settings import RelaySettings

NAME = "outbox_relay"
log = logging.getLogger(__name__)


def build_outboxes(settings: RelaySettings) -> list:
    outboxes: list = [PostgresOutbox(url) for url in settings.database_urls()]
    if settings.outbox_mongo_url:
        from outbox_relay.mongo_outbox import MongoOutbox

        outboxes.append(MongoOutbox(settings.outbox_mongo_url))
    return outboxes


def create_relay_app(settings: RelaySettings) -> Sanic:
    app = create_app(NAME, "Outbox relay", settings)
    publisher = Publisher(settings.kafka_bootstrap_servers)
    relay = Relay(build_outboxes(settings), publisher, settings, app.ctx.metrics.registry)
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

    @app.get("/dead-letters")
    async def dead_letters(request: Request) -> HTTPResponse:
        found = await asyncio.gather(*(outbox.dead_letters() for outbox in relay.outboxes))
        return json([letter for letters in found for letter in letters], default=str)

    @app.post("/dead-letters/<outbox_name>/redrive")
    async def redrive(request: Request, outbox_name: str) -> HTTPResponse:
        """Re-drive every dead letter of an outbox, or one: `?event_id=...`."""
        outbox = next((o for o in relay.outboxes if o.name == outbox_name), None)
        if outbox is None:
            raise NotFound(f"No outbox named {outbox_name}")
        return json({"redriven": await outbox.redrive(request.args.get("event_id"))})

    return app
