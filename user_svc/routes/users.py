from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json
from sanic_ext import openapi

from common.auth import authenticated, require_role
from common.validation import database_id, json_body, openapi_body
from user_svc import accounts
from user_svc.schemas import PasswordChange, ProfileUpdate, RoleChange, user_view

users = Blueprint("users", url_prefix="/api/v1/users")


@users.get("/me")
@openapi.secured("bearer")
@authenticated
async def me(request: Request) -> HTTPResponse:
    user = await accounts.active_user(request.ctx.principal.user_id)
    return json(user_view(user, await accounts.addresses_of(user)))


@users.put("/me")
@openapi.body(openapi_body(ProfileUpdate))
@openapi.secured("bearer")
@authenticated
async def update_me(request: Request) -> HTTPResponse:
    update = json_body(request, ProfileUpdate)
    user = await accounts.update_profile(await accounts.active_user(request.ctx.principal.user_id), update)
    return json(user_view(user, await accounts.addresses_of(user)))


@users.put("/me/password")
@openapi.body(openapi_body(PasswordChange))
@openapi.response(204, description="Changed; every refresh token of the user is revoked")
@openapi.secured("bearer")
@authenticated
async def change_password(request: Request) -> HTTPResponse:
    change = json_body(request, PasswordChange)
    user = await accounts.active_user(request.ctx.principal.user_id)
    await accounts.change_password(user, change.current_password, change.new_password)
    return empty()


@users.put("/<user_id:int>/role")
@openapi.body(openapi_body(RoleChange))
@openapi.secured("bearer")
@require_role("admin")
async def change_role(request: Request, user_id: int) -> HTTPResponse:
    user = await accounts.change_role(database_id(user_id, "User"), json_body(request, RoleChange).role)
    return json(user_view(user, await accounts.addresses_of(user)))
