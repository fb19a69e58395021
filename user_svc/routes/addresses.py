from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json
from sanic_ext import openapi

from common.auth import authenticated
from common.validation import database_id, json_body, openapi_body
from user_svc import accounts
from user_svc.schemas import AddressInput, AddressUpdate, address_view

addresses = Blueprint("addresses", url_prefix="/api/v1/users/me/addresses")


@addresses.get("/", strict_slashes=False)
@openapi.secured("bearer")
@authenticated
async def list_addresses(request: Request) -> HTTPResponse:
    user = await accounts.active_user(request.ctx.principal.user_id)
    return json([address_view(address) for address in await accounts.addresses_of(user)])


@addresses.post("/", strict_slashes=False)
@openapi.body(openapi_body(AddressInput))
@openapi.response(201, description="The new address")
@openapi.secured("bearer")
@authenticated
async def add_address(request: Request) -> HTTPResponse:
    data = json_body(request, AddressInput)
    user = await accounts.active_user(request.ctx.principal.user_id)
    return json(address_view(await accounts.add_address(user, data)), status=201)


@addresses.put("/<address_id:int>")
@openapi.body(openapi_body(AddressUpdate))
@openapi.secured("bearer")
@authenticated
async def update_address(request: Request, address_id: int) -> HTTPResponse:
    update = json_body(request, AddressUpdate)
    user = await accounts.active_user(request.ctx.principal.user_id)
    return json(address_view(await accounts.update_address(user, database_id(address_id, "Address"), update)))


@addresses.delete("/<address_id:int>")
@openapi.response(204, description="Deleted")
@openapi.secured("bearer")
@authenticated
async def delete_address(request: Request, address_id: int) -> HTTPResponse:
    user = await accounts.active_user(request.ctx.principal.user_id)
    await accounts.delete_address(user, database_id(address_id, "Address"))
    return empty()
