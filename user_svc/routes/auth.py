from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json
from sanic_ext import openapi

from common.validation import form_body, json_body, openapi_body
from user_svc import accounts
from user_svc.schemas import Credentials, RefreshRequest, Registration, user_view
from user_svc.sessions import Sessions

auth = Blueprint("auth", url_prefix="/api/v1/auth")


def _sessions(request: Request) -> Sessions:
    return request.app.ctx.sessions


@auth.post("/register")
@openapi.body(openapi_body(Registration))
@openapi.response(201, description="The new user")
async def register(request: Request) -> HTTPResponse:
    user = await accounts.register(json_body(request, Registration))
    return json(user_view(user, []), status=201)


@auth.post("/login")
@openapi.body(openapi_body(Credentials, "application/x-www-form-urlencoded"))
@openapi.response(200, description="access_token, refresh_token, token_type")
async def login(request: Request) -> HTTPResponse:
    credentials = form_body(request, Credentials)
    client = request.remote_addr or request.ip
    pair = await _sessions(request).login(credentials.username, credentials.password, client)
    return json(pair.view())


@auth.post("/refresh")
@openapi.body(openapi_body(RefreshRequest))
async def refresh(request: Request) -> HTTPResponse:
    pair = await _sessions(request).refresh(json_body(request, RefreshRequest).refresh_token)
    return json(pair.view())


@auth.post("/logout")
@openapi.body(openapi_body(RefreshRequest))
@openapi.response(204, description="The refresh token and its successors are revoked")
async def logout(request: Request) -> HTTPResponse:
    await _sessions(request).logout(json_body(request, RefreshRequest).refresh_token)
    return empty()
