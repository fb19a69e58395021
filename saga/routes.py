import logging
import uuid
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sanic_ext import openapi
from tortoise.transactions import in_transaction

from common.auth import authenticated, require_role
from common.errors import Conflict, Forbidden, NotFound
from common.validation import Schema, query_args
from saga.models import Saga, SagaMessage, SagaState, SagaStep
from saga.moves import lock_saga
from saga.views import saga_view

log = logging.getLogger(__name__)
sagas = Blueprint("sagas", url_prefix="/api/v1/sagas")
MAX_ORDER_IDS = 100


def _comma_separated(value: Any) -> Any:
    return value.split(",") if isinstance(value, str) else value


# Order ids, comma-separated in the query string.
OrderIds = Annotated[list[uuid.UUID], Field(max_length=MAX_ORDER_IDS), BeforeValidator(_comma_separated)]


class SagaListQuery(Schema):
    state: SagaState | None = None
    order_ids: OrderIds | None = None  # those orders' sagas only: a customer's order list, in one request
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
@authenticated
async def list_sagas(request: Request) -> HTTPResponse:
    """Sagas, newest first, without their steps: an admin's of every order, a customer's of the orders named in
    `order_ids` (others' left out, as GET /sagas/{order_id} does not reveal them). One statement."""
    query = query_args(request, SagaListQuery)
    principal = request.ctx.principal
    found = Saga.all().order_by("-created_at").offset(query.skip).limit(query.limit)
    if not principal.is_admin:
        if query.order_ids is None:
            raise Forbidden("Listing every saga needs the admin role; a customer names their orders in order_ids")
        found = found.filter(user_id=principal.user_id)
    if query.order_ids is not None:
        found = found.filter(order_id__in=query.order_ids)
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
