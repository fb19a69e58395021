"""Route guards: who is calling (from the bearer token) and whether their role may do this."""

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from sanic import Request

from common.errors import Forbidden, Unauthorized
from common.tokens import InvalidToken, Principal, TokenVerifier

Handler = Callable[..., Awaitable[Any]]


async def authenticate(request: Request) -> Principal:
    """The caller's principal; 401 when the bearer token is missing or invalid."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Missing bearer token")
    verifier: TokenVerifier = request.app.ctx.token_verifier
    try:
        principal = await verifier.principal(token.strip())
    except InvalidToken as error:
        raise Unauthorized(str(error)) from None
    request.ctx.principal = principal
    return principal


def authenticated(handler: Handler) -> Handler:
    """Any signed-in user; the handler finds the caller in `request.ctx.principal`."""

    @wraps(handler)
    async def guarded(request: Request, *args: Any, **kwargs: Any) -> Any:
        await authenticate(request)
        return await handler(request, *args, **kwargs)

    return guarded


def require_role(role: str) -> Callable[[Handler], Handler]:
    """Only callers whose token carries `role` (401 without a token, 403 with another role)."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> Any:
            principal = await authenticate(request)
            if principal.role != role:
                raise Forbidden(f"This action needs the {role} role")
            return await handler(request, *args, **kwargs)

        return guarded

    return decorate
