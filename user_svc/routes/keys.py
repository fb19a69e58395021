from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

keys = Blueprint("keys", url_prefix="/api/v1/.well-known")


@keys.get("/jwks.json")
async def jwks(request: Request) -> HTTPResponse:
    """The public keys that verify access tokens (other services cache them)."""
    return json(request.app.ctx.token_issuer.jwks, headers={"Cache-Control": "public, max-age=300"})
