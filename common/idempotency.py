"""Idempotency keys: a client that sends a write again after a timeout (it cannot know whether the first arrived)
sends the same `Idempotency-Key` header, and gets the first response again instead of a second effect. The same
key with another request is refused (409), as payment APIs do.

A key belongs to one caller and one route (its `scope`). The response is recorded in the same transaction as the
write it reports (or, on a hot path, in the same statement: `RECORD_RESPONSE`), so a key never names a write that
rolled back. A refusal (not enough stock, a changed price) is recorded too: the same key gets it
again, and a corrected request needs a new key. Were it not, a first send still on its way (its client timed out and
sent it again; the retry was refused) could write afterwards, unknown to the client.
"""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from pydantic import BaseModel
from sanic import Request
from sanic.response import HTTPResponse, json
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from common.errors import REFUSED, BadRequest, Conflict, Refused, refusal
from common.retention import Purge

HEADER = "Idempotency-Key"
KEY_DESCRIPTION = (
    "Optional: a client's unique key for this write (1-255 printable ASCII characters). Sent again with the same"
    " body, the first response comes back (header Idempotent-Replayed: true) and nothing is written again; with"
    " another body, 409."
)
REPLAYED_HEADER = "Idempotent-Replayed"  # on a response sent again for a key (as Stripe's API does)
MAX_KEY_LENGTH = 255

IDEMPOTENCY_DDL = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    fingerprint  text NOT NULL,
    status       integer NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);
"""
IDEMPOTENCY_DROP = "DROP TABLE IF EXISTS idempotency_keys;"


def record_response(first: int, when: str = "true") -> str:
    """An INSERT of the response to a keyed request, for a data-modifying CTE, if `when` holds: parameters $first to
    $first+4 are `Keyed.parameters(answer)` (or `NO_KEY`: nothing is recorded). It returns a row only if the
    key was free: a concurrent request with the same key waits for the first to commit, then inserts nothing, and
    the caller answers with `recorded_response`."""
    p = [f"${first + i}" for i in range(5)]
    return (
        "INSERT INTO idempotency_keys (scope, key, fingerprint, status, response)"
        f" SELECT {p[0]}::text, {p[1]}::text, {p[2]}::text, {p[3]}::int, {p[4]}::jsonb"
        f" WHERE {p[1]}::text IS NOT NULL AND {when} ON CONFLICT DO NOTHING RETURNING key"
    )


@dataclass(frozen=True)
class Answer:
    """A write's response: its status and JSON body, and whether it is the first one sent again."""

    status: int
    body: Any
    replayed: bool = False

    def response(self) -> HTTPResponse:
        return json(self.body, status=self.status, headers={REPLAYED_HEADER: "true"} if self.replayed else None)


@dataclass(frozen=True)
class Keyed:
    """A write sent with an Idempotency-Key."""

    scope: str  # the caller and the route, e.g. "user:7 POST /orders"
    key: str
    fingerprint: str  # SHA-256 of the request as validated: the same request, whatever its JSON spacing

    def parameters(self, answer: Answer) -> list[Any]:
        """The parameters of `record_response` that record `answer` for this key."""
        return [self.scope, self.key, self.fingerprint, answer.status, orjson.dumps(answer.body, default=str).decode()]


NO_KEY: list[Any] = [None] * 5  # the parameters of `record_response` for a request without a key


def keyed(request: Request, scope: str, body: BaseModel) -> Keyed | None:
    """The request's Idempotency-Key for `scope`, if it sent one; 400 if the header is malformed."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters", field=HEADER)
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    return Keyed(scope, key, fingerprint)


async def recorded_response(connection: BaseDBAsyncClient, request: Keyed) -> Answer | None:
    """The status and body first answered to this key, or None if it has none; 409 if the key was used for
    another request."""
    rows = await connection.execute_query_dict(
        "SELECT fingerprint, status, response::text AS response FROM idempotency_keys WHERE scope = $1 AND key = $2",
        [request.scope, request.key],
    )
    if not rows:
        return None
    if rows[0]["fingerprint"] != request.fingerprint:
        raise Conflict(f"This {HEADER} was used for another request: send a new key for a new request", field=HEADER)
    return Answer(rows[0]["status"], orjson.loads(rows[0]["response"]), replayed=True)


async def record_refusal(connection: BaseDBAsyncClient, request: Keyed, refused: Refused) -> Answer | None:
    """Record `refusal` as the key's answer, unless another send of the key got there first: then its answer (None
    when the refusal is now the key's). A refusal must be recorded, or a first send still on its way (its client
    timed out and sent it again; the retry was refused) could place the order afterwards, unknown to the client. An
    insert of the key waits for a send that holds it uncommitted, where a SELECT would not see it."""
    if await connection.execute_query_dict(record_response(1), request.parameters(_refusal_answer(refused))):
        return None
    return await recorded_response(connection, request)


def _refusal_answer(refused: Refused) -> Answer:
    """The refusal as recorded: the error format's body, without the request id, which is the first request's."""
    answer = refusal(refused)
    return Answer(answer.status, {"error": answer.code, "message": answer.message, **answer.details})


async def replay_or_claim(connection: BaseDBAsyncClient, request: Keyed) -> Answer | None:
    """Inside the write's transaction, before the write: the first response to this key if there is one (409 if
    the key was used for another request). Otherwise the key is held until the transaction ends, so that a
    concurrent request with the same key waits, then finds the response that `record` wrote."""
    await connection.execute_query(
        "SELECT pg_advisory_xact_lock(hashtext($1))", [f"idempotency:{request.scope}:{request.key}"]
    )
    return await recorded_response(connection, request)


async def record(connection: BaseDBAsyncClient, request: Keyed, answer: Answer) -> None:
    """In the write's transaction, after `replay_or_claim` found nothing: the response to send again."""
    await connection.execute_query(record_response(1), request.parameters(answer))


async def keyed_write(
    database: str, key: Keyed | None, write: Callable[[BaseDBAsyncClient], Awaitable[Answer]]
) -> Answer:
    """`write` in one transaction of `database`; with a key, the first answer to it if there is one (nothing
    written), else `write`'s answer, recorded in the same transaction. A refusal (`Refused`) rolls the write back
    and is then recorded as the key's answer, in a transaction of its own, unless another send of the key answered
    first (its answer wins)."""
    if key is None:
        async with in_transaction(database) as connection:
            return await write(connection)
    try:
        async with in_transaction(database) as connection:
            if (first := await replay_or_claim(connection, key)) is not None:
                return first
            answer = await write(connection)
            await record(connection, key, answer)
            return answer
    except REFUSED as refused:
        async with in_transaction(database) as connection:
            if (first := await replay_or_claim(connection, key)) is not None:
                return first
            await record(connection, key, _refusal_answer(refused))
        raise


def idempotency_purge(retention_hours: float) -> Purge:
    """Keys older than the retention: a client retries within minutes, and a key sent again after that places a
    new order (payment APIs keep keys 24 hours)."""
    return Purge(
        "idempotency_keys",
        "DELETE FROM idempotency_keys WHERE ctid IN"
        " (SELECT ctid FROM idempotency_keys WHERE created_at < now() - $1::interval LIMIT $2)",
        timedelta(hours=retention_hours),
    )
