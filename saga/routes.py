import logging
import uuid

from pydantic import Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sanic_ext import openapi
from tortoise.transactions import in_transaction

from common.auth import authenticated, require_role
from common.errors import Conflict, NotFound
from common.validation import Schema, query_args
from saga.models import Saga, SagaMessage, SagaState, SagaStep
from saga.moves import lock_saga
from saga.views import saga_view

log = logging.getLogger(__name__)
sagas = Blueprint("sagas", url_prefix="/api/v1/sagas")


class SagaListQuery(Schema):
    state: SagaState | None = None
    limit: int = Field(50, ge=1, le=500)
    skip: int = Field(0, ge=0)

    model_config = Schema.model_config | {"extra": "ignore"}


def _order_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"No saga for order {text}") from None


@sagas.get("/", strict_slashes=False)
@openapi.secured("bearer")
@require_role("admin")
async def list_sagas(request: Request) -> HTTPResponse:
    query = query_args(request, SagaListQuery)
    found = Saga.all().order_by("-created_at").offset(query.skip).limit(query.limit)
    if query.state is not None:
        found = found.filter(state=query.state)
    return json([saga_view(saga) for saga in await found])


@sagas.get("/<order_id:str>")
@openapi.secured("bearer")
@authenticated
async def inspect(request: Request, order_id: str) -> HTTPResponse:
    """The saga of an order: its state, every step with times, attempts and errors, and the messages that moved
    it and that it sent, with their event ids (owner or admin)."""
    saga = await Saga.get_or_none(order_id=_order_id(order_id))
    principal = request.ctx.principal
    if saga is None or not (principal.is_admin or principal.user_id == saga.user_id):
        raise NotFound(f"No saga for order {order_id}")
    return json(await _full_view(saga))


@sagas.post("/<order_id:str>/retry")
@openapi.secured("bearer")
@require_role("admin")
async def retry(request: Request, order_id: str) -> HTTPResponse:
    """Start a FAILED saga's failed step over."""
    async with in_transaction("saga") as connection:
        move = await lock_saga(connection, _order_id(order_id))
        if move is None:
            raise NotFound(f"No saga for order {order_id}")
        saga = move.saga
        if saga.state != SagaState.FAILED:
            raise Conflict(f"Only a FAILED saga can be retried; this one is {saga.state.value}", state=saga.state)
        await request.app.ctx.orchestrator.retry(connection, move)
    log.warning("admin %s retried the saga of order %s", request.ctx.principal.user_id, order_id)
    return json(await _full_view(saga))


async def _full_view(saga: Saga) -> dict:
    steps = await SagaStep.filter(saga_id=saga.order_id).order_by("id")
    return saga_view(saga, steps, await SagaMessage.filter(saga_id=saga.order_id).order_by("id"))
