import logging
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json
from sanic_ext import openapi

from common.auth import authenticated, require_role
from common.idempotency import HEADER, KEY_DESCRIPTION, keyed
from common.validation import json_body, openapi_body, query_args
from order_svc import orders
from order_svc.models import Order, OrderItem
from order_svc.schemas import NewOrder, Page, StatusChange, order_view

log = logging.getLogger(__name__)

# Placing an order needs the user role; reading and changing one needs its owner or an admin (others get 404).
order_routes = Blueprint("orders", url_prefix="/api/v1/orders")


@order_routes.post("/", strict_slashes=False)
@openapi.body(openapi_body(NewOrder))
@openapi.parameter(HEADER, str, "header", description=KEY_DESCRIPTION)
@openapi.response(201, description="The new order, pending (or, for a repeated Idempotency-Key, the first answer)")
@openapi.response(409, description="Refused (price, stock, product), or the Idempotency-Key was used for another order")
@openapi.secured("bearer")
@require_role("user")
async def place_order(request: Request) -> HTTPResponse:
    principal, new = request.ctx.principal, json_body(request, NewOrder)
    key = keyed(request, f"user:{principal.user_id} POST /orders", new)
    return (await orders.place_order(principal, new, key)).response()


@order_routes.get("/", strict_slashes=False)
@openapi.parameter("skip", int, "query")
@openapi.parameter("limit", int, "query")
@openapi.response(200, description="The caller's orders, newest first")
@openapi.secured("bearer")
@authenticated
async def list_orders(request: Request) -> HTTPResponse:
    page = query_args(request, Page)
    return json([order_view(*order) for order in await orders.orders_of(request.ctx.principal.user_id, page)])


@order_routes.get("/orphans")
@openapi.parameter("skip", int, "query")
@openapi.parameter("limit", int, "query")
@openapi.response(200, description="Pending orders the reconciler published again, latest first (admins)")
@openapi.secured("bearer")
@require_role("admin")
async def list_orphans(request: Request) -> HTTPResponse:
    found = await orders.orphans(query_args(request, Page))
    return json([_orphan_view(order, items) for order, items in found])


def _orphan_view(order: Order, items: list[OrderItem]) -> dict[str, Any]:
    assert order.placed_again_at is not None  # orders.orphans reads only orders published again
    return {**order_view(order, items), "placed_again_at": order.placed_again_at.isoformat()}


@order_routes.get("/<order_id:str>")
@openapi.secured("bearer")
@authenticated
async def get_order(request: Request, order_id: str) -> HTTPResponse:
    return json(order_view(*await orders.find_order(request.ctx.principal, order_id)))


@order_routes.put("/<order_id:str>/status")
@openapi.body(openapi_body(StatusChange))
@openapi.response(409, description="The order cannot go from its status to this one")
@openapi.secured("bearer")
@authenticated
async def change_status(request: Request, order_id: str) -> HTTPResponse:
    status = json_body(request, StatusChange).status
    return json(order_view(*await orders.change_status(request.ctx.principal, order_id, status)))


@order_routes.delete("/<order_id:str>")
@openapi.response(204, description="Cancelled")
@openapi.secured("bearer")
@authenticated
async def cancel_order(request: Request, order_id: str) -> HTTPResponse:
    principal = request.ctx.principal
    await orders.cancel_order(principal, order_id)
    if principal.is_admin:  # an operator's action (the console's stuck orders), on the record
        log.warning("admin %s cancelled order %s", principal.user_id, order_id)
    return empty()
