"""One error vocabulary and one JSON error format for every service.

    {"error": "validation_failed", "message": "...", "fields": [{"field": "email", "problem": "..."}],
     "request_id": "..."}

Use cases raise `DomainError`s (not found, conflict, forbidden), whoever called them; each kind gets its HTTP status
here, once (`refusal`), and a consumer dead-letters the event that met one at once (common/consumer.py): asking again
gets the same answer. The HTTP edge's own refusals (a malformed request, no credentials, too many requests, a part
unavailable) are `ApiError`s, with their status. A database that cannot serve now becomes a 503 with Retry-After;
anything else unexpected becomes a 500 without a stack trace in the body.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from common.database import database_unavailable

log = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = 1  # seconds: PostgreSQL restarts in about that long


class DomainError(Exception):
    """A use case's refusal by a rule of the domain."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    """What the request names does not exist (for this caller: others' things are not revealed)."""


class Conflict(DomainError):
    """The current state does not allow it."""


class Forbidden(DomainError):
    """The caller may not do it."""


class ApiError(Exception):
    """A refusal at the HTTP edge itself, with its status."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.details = details


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "Not authenticated", **details: Any) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"}, **details)


class ValidationFailed(ApiError):
    status, code = 422, "validation_failed"

    def __init__(self, fields: list[dict[str, str]], message: str = "The request is not valid") -> None:
        super().__init__(message, fields=fields)


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


class Unavailable(ApiError):
    """A part the request needs (a database, the broker) cannot be reached: try again later."""

    status, code = 503, "unavailable"


Refused = DomainError | ApiError  # what an HTTP request can be answered with, short of success
REFUSED = (DomainError, ApiError)  # the same, for `except`

# Each kind of domain error's HTTP status and error code: the one place they are mapped.
_DOMAIN_STATUS: tuple[tuple[type[DomainError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Forbidden, 403, "forbidden"),
)


@dataclass(frozen=True)
class Refusal:
    """A refusal as HTTP answers it."""

    status: int
    code: str
    message: str
    details: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def refusal(error: Refused) -> Refusal:
    if isinstance(error, ApiError):
        return Refusal(error.status, error.code, error.message, error.details, error.headers)
    status, code = next(
        ((status, code) for kind, status, code in _DOMAIN_STATUS if isinstance(error, kind)), (409, "conflict")
    )
    return Refusal(status, code, error.message, error.details)


def error_response(request: Request, status: int, code: str, message: str, **details: Any) -> HTTPResponse:
    body = {"error": code, "message": message, **details, "request_id": str(request.id)}
    return json(body, status=status)


def install_error_handlers(app: Sanic) -> None:
    @app.exception(*REFUSED)
    async def refused(request: Request, exc: Refused) -> HTTPResponse:
        answer = refusal(exc)
        response = error_response(request, answer.status, answer.code, answer.message, **answer.details)
        response.headers.update(answer.headers)
        return response

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        # Routing errors (404, 405), oversized bodies and the like: keep Sanic's status, use our format.
        code = _SANIC_CODES.get(exc.status_code, "http_error")
        response = error_response(request, exc.status_code, code, str(exc))
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    @app.exception(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> HTTPResponse:
        if database_unavailable(exc):  # nothing was written: the same request can be sent again
            log.warning("%s %s: the database is unavailable: %r", request.method, request.path, exc)
            response = error_response(request, 503, "unavailable", "The database is unavailable; try again shortly")
            response.headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
            return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal_error", "Internal server error")


_SANIC_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    503: "unavailable",
}
