from collections.abc import Awaitable, Callable

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sanic_ext import openapi
from tortoise.backends.base.client import BaseDBAsyncClient

from common.auth import authenticated, require_role
from common.idempotency import HEADER, KEY_DESCRIPTION, Answer, keyed, keyed_write
from common.validation import Schema, json_body, openapi_body, query_args
from stock_svc import inventory, reservations
from stock_svc.inventory import DB
from stock_svc.models import InventoryItem
from stock_svc.schemas import (
    Adjustment,
    ItemUpdate,
    NewItem,
    Page,
    ReservationRequest,
    StockCheck,
    history_view,
    item_view,
)

# Reads need a signed-in user of any role; writes need an admin.
inventory_routes = Blueprint("inventory", url_prefix="/api/v1/inventory")


@inventory_routes.get("/", strict_slashes=False)
@openapi.parameter("skip", int, "query")
@openapi.parameter("limit", int, "query")
@openapi.secured("bearer")
@authenticated
async def list_items(request: Request) -> HTTPResponse:
    return json([item_view(item) for item in await inventory.list_items(query_args(request, Page))])


@inventory_routes.post("/", strict_slashes=False)
@openapi.body(openapi_body(NewItem))
@openapi.response(201, description="The new inventory item")
@openapi.secured("bearer")
@require_role("admin")
async def create_item(request: Request) -> HTTPResponse:
    return json(item_view(await inventory.create_item(json_body(request, NewItem))), status=201)


# The fixed paths come before /<product_id>, which would otherwise take "check" or "low-stock" for a product id.


@inventory_routes.get("/check")
@openapi.parameter("product_id", str, "query", required=True)
@openapi.parameter("quantity", int, "query")
@openapi.response(200, description="product_id, requested, available, in_stock")
@openapi.secured("bearer")
@authenticated
async def check_stock(request: Request) -> HTTPResponse:
    check = query_args(request, StockCheck)
    return json(await inventory.check_stock(check.product_id, check.quantity))


@inventory_routes.get("/low-stock")
@openapi.parameter("skip", int, "query")
@openapi.parameter("limit", int, "query")
@openapi.secured("bearer")
@authenticated
async def low_stock(request: Request) -> HTTPResponse:
    return json([item_view(item) for item in await inventory.low_stock_items(query_args(request, Page))])


@inventory_routes.get("/history/<product_id:str>")
@openapi.parameter("skip", int, "query")
@openapi.parameter("limit", int, "query")
@openapi.secured("bearer")
@authenticated
async def history(request: Request, product_id: str) -> HTTPResponse:
    entries = await inventory.history_of(product_id, query_args(request, Page))
    return json([history_view(entry, product_id) for entry in entries])


# The admin writes that add or take units take an Idempotency-Key: sent again after a timeout, they apply once.


@inventory_routes.post("/reserve")
@openapi.body(openapi_body(ReservationRequest))
@openapi.parameter(HEADER, str, "header", description=KEY_DESCRIPTION)
@openapi.secured("bearer")
@require_role("admin")
async def reserve(request: Request) -> HTTPResponse:
    body = json_body(request, ReservationRequest)
    return await _keyed(request, "POST /inventory/reserve", body, lambda c: reservations.reserve(c, body))


@inventory_routes.post("/release")
@openapi.body(openapi_body(ReservationRequest))
@openapi.parameter(HEADER, str, "header", description=KEY_DESCRIPTION)
@openapi.secured("bearer")
@require_role("admin")
async def release(request: Request) -> HTTPResponse:
    body = json_body(request, ReservationRequest)
    return await _keyed(request, "POST /inventory/release", body, lambda c: reservations.release(c, body))


@inventory_routes.post("/adjust")
@openapi.body(openapi_body(Adjustment))
@openapi.parameter(HEADER, str, "header", description=KEY_DESCRIPTION)
@openapi.secured("bearer")
@require_role("admin")
async def adjust(request: Request) -> HTTPResponse:
    body = json_body(request, Adjustment)
    return await _keyed(request, "POST /inventory/adjust", body, lambda c: inventory.adjust_stock(c, body))


async def _keyed(
    request: Request, route: str, body: Schema, change: Callable[[BaseDBAsyncClient], Awaitable[InventoryItem]]
) -> HTTPResponse:
    """The change in a transaction, answered with the item; once per Idempotency-Key (common/idempotency.py)."""

    async def write(connection: BaseDBAsyncClient) -> Answer:
        return Answer(200, item_view(await change(connection)))

    key = keyed(request, f"user:{request.ctx.principal.user_id} {route}", body)
    return (await keyed_write(DB, key, write)).response()


@inventory_routes.get("/<product_id:str>")
@openapi.secured("bearer")
@authenticated
async def get_item(request: Request, product_id: str) -> HTTPResponse:
    return json(item_view(await inventory.find_item(product_id)))


@inventory_routes.put("/<product_id:str>")
@openapi.body(openapi_body(ItemUpdate))
@openapi.secured("bearer")
@require_role("admin")
async def update_item(request: Request, product_id: str) -> HTTPResponse:
    return json(item_view(await inventory.update_item(product_id, json_body(request, ItemUpdate))))
