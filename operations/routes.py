"""The operations API, admins only: outbox backlogs, consumer lag, dead letters and their re-drive. Every re-drive is
logged with the admin's id (the log line carries the request id as its correlation id)."""

import logging
from typing import Literal

from aiokafka.errors import KafkaError
from pydantic import Field, model_validator
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sanic_ext import openapi

from common.auth import require_role
from common.errors import Unavailable
from common.validation import Schema, json_body, openapi_body, query_args
from operations.outboxes import outbox_figures
from outbox_relay.outboxes import STORE_ERRORS

log = logging.getLogger(__name__)

operations_routes = Blueprint("operations", url_prefix="/api/v1/operations")


class DeadLetterQuery(Schema):
    limit: int = Field(100, ge=1, le=1000)
    event_type: str | None = Field(None, min_length=1, max_length=200)


class Redrive(Schema):
    """One dead letter (`event_id`) or every one of an event type (`event_type`), of one store's outbox or inbox."""

    source: Literal["outbox", "inbox"]
    store: str = Field(min_length=1, max_length=100)
    event_id: str | None = Field(None, min_length=1, max_length=200)
    event_type: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_selector(self) -> "Redrive":
        if (self.event_id is None) == (self.event_type is None):
            raise ValueError("give either event_id (one dead letter) or event_type (all of that type)")
        return self


@operations_routes.get("/outboxes")
@openapi.response(200, description="Per store: unpublished rows, the oldest one's age, published in the last minute")
@openapi.secured("bearer")
@require_role("admin")
async def outboxes(request: Request) -> HTTPResponse:
    return json({"outboxes": await outbox_figures(request.app.ctx.stores)})


@operations_routes.get("/consumers")
@openapi.response(200, description="Per consumer group and partition: committed offset, log end, lag, last move")
@openapi.response(503, description="The broker cannot be reached")
@openapi.secured("bearer")
@require_role("admin")
async def consumers(request: Request) -> HTTPResponse:
    try:
        partitions = await request.app.ctx.lag.partitions()
    except (KafkaError, OSError) as error:
        raise Unavailable(f"The broker cannot be reached: {error}") from error
    return json({"partitions": partitions}, default=str)


@operations_routes.get("/dead-letters")
@openapi.parameter("limit", int, "query")
@openapi.parameter("event_type", str, "query")
@openapi.response(200, description="Outbox and inbox dead letters, oldest first, with the stores not reachable")
@openapi.secured("bearer")
@require_role("admin")
async def dead_letters(request: Request) -> HTTPResponse:
    query = query_args(request, DeadLetterQuery)
    letters, unreachable = await request.app.ctx.dead_letters.listed(query.limit, query.event_type)
    return json({"dead_letters": letters, "unreachable": unreachable}, default=str)


@operations_routes.post("/dead-letters/redrive")
@openapi.body(openapi_body(Redrive))
@openapi.response(200, description="How many dead letters went back to be published or consumed again")
@openapi.response(404, description="No such store, or the store has no inbox")
@openapi.response(503, description="The store or the broker cannot be reached")
@openapi.secured("bearer")
@require_role("admin")
async def redrive(request: Request) -> HTTPResponse:
    asked = json_body(request, Redrive)
    try:
        count = await request.app.ctx.dead_letters.redrive(asked.source, asked.store, asked.event_id, asked.event_type)
    except (KafkaError, *STORE_ERRORS) as error:
        raise Unavailable(f"The re-drive could not finish: {type(error).__name__}: {error}") from error
    log.warning(
        "admin %s re-drove %d %s dead letters of %s (%s)",
        request.ctx.principal.user_id,
        count,
        asked.source,
        asked.store,
        f"event {asked.event_id}" if asked.event_id else f"type {asked.event_type}",
    )
    return json({"redriven": count})
