"""Reservations: units of a product held for an order.

Admins reserve and release one product at a time over HTTP. The saga (DESIGN §5) reserves all of an order's
items or none, releases them, or confirms them (the units leave the store). Each saga command is applied once
per (order, command): a repeat, whatever its event id, gets the first reply again and changes nothing.

Locking: a reservation is changed only while its item's row is locked, and several items are always locked in
product id order, so concurrent requests and commands cannot oversell or deadlock. An order's reservations are
also changed only under the order's advisory lock (`order_lock_key`), taken before any row lock: for the saga's
commands by the consumer's inbox statement (stock_svc/handlers.py), by the admin paths first thing. So one order's
commands apply one at a time, even while a consumer-group rebalance lets two consumers hold the order's partition
for a moment, and what a command reads of the order's reservations cannot change before it commits.
"""

from dataclasses import dataclass
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from common.consumer import ReceivedEvent
from common.database import PLANNED_PER_EXECUTION
from common.errors import Conflict
from common.messages import (
    CONFIRM_STOCK,
    RELEASE_STOCK,
    RESERVE_STOCK,
    STOCK_CONFIRMED,
    STOCK_REJECTED,
    STOCK_RELEASED,
    STOCK_RESERVED,
)
from common.outbox import Event, encode_json, event_arrays, insert_events, write_events
from common.topics import STOCK_REPLIES
from stock_svc.inventory import StockChange, apply_change, lock_item, stock_change
from stock_svc.models import ChangeType, InventoryItem, Reservation, ReservationStatus
from stock_svc.schemas import ReservationRequest, ReserveCommand

INSUFFICIENT_STOCK = "insufficient stock"
ALREADY_RELEASED = "the order's reservation was already released"


# Planned per execution: a plan made for all values scanned every reservation (common/database.py).
_LOCK_ITEMS_OF_COMMANDS = f"""{PLANNED_PER_EXECUTION}
SELECT 1 FROM inventory_items
WHERE product_id = ANY($1::text[]) OR id IN (SELECT item_id FROM reservations WHERE order_id = ANY($2::text[]))
ORDER BY product_id
FOR UPDATE
"""


async def lock_items_of_commands(commands: list[ReceivedEvent], connection: BaseDBAsyncClient) -> None:
    """Before a batch of saga commands applies: every item they may change, locked in product id order in one
    statement. Each command locks its own items in that order, but a batch applies several, one after the other,
    and two consumers' batches would deadlock (19 times in 10 s of orders with two instances; each costs
    deadlock_timeout, 1 s). A reserve names its products; a release or confirm changes the items the order holds,
    read here while the inbox statement's order locks keep them from changing."""
    products, orders = [], []
    for command in filter(lambda command: isinstance(command.payload, dict), commands):
        if command.type == RESERVE_STOCK and isinstance(items := command.payload.get("items"), list):
            products += [item["product_id"] for item in items if isinstance(item, dict) and "product_id" in item]
        elif command.type in (RELEASE_STOCK, CONFIRM_STOCK) and "order_id" in command.payload:
            orders.append(command.payload["order_id"])
    if products or orders:
        await connection.execute_query(_LOCK_ITEMS_OF_COMMANDS, [list(map(str, products)), list(map(str, orders))])


def order_lock_key(order_id: str) -> str:
    """The advisory lock key (`pg_advisory_xact_lock(hashtext(key))`) under which the order's reservations change."""
    return f"stock-order:{order_id}"


async def reserve(connection: BaseDBAsyncClient, request: ReservationRequest) -> InventoryItem:
    """Hold `quantity` units for the order (in the caller's transaction); 409 with the numbers if fewer are
    available."""
    await _lock_order(connection, request.order_id)
    item = await lock_item(connection, request.product_id)
    if item.available_quantity < request.quantity:
        raise Conflict(
            f"Not enough stock of {item.product_id}: {request.quantity} requested, {item.available_quantity} available",
            product_id=item.product_id,
            requested=request.quantity,
            available=item.available_quantity,
        )
    reservation = await Reservation.get_or_none(order_id=request.order_id, item_id=item.id, using_db=connection)
    if reservation is None:
        await Reservation.create(
            order_id=request.order_id, item_id=item.id, quantity=request.quantity, using_db=connection
        )
    elif reservation.status == ReservationStatus.CONFIRMED:
        raise _already_confirmed(request.order_id, item.product_id)
    else:
        held = reservation.quantity if reservation.status == ReservationStatus.HELD else 0
        reservation.quantity, reservation.status = held + request.quantity, ReservationStatus.HELD
        await reservation.save(update_fields=["quantity", "status", "updated_at"], using_db=connection)
    await apply_change(
        connection,
        item,
        ChangeType.RESERVED,
        available_delta=-request.quantity,
        reserved_delta=request.quantity,
        reference=request.order_id,
    )
    return item


async def release(connection: BaseDBAsyncClient, request: ReservationRequest) -> InventoryItem:
    """Give back `quantity` of the units the order holds (in the caller's transaction); 409 with the numbers if it
    holds fewer."""
    await _lock_order(connection, request.order_id)
    item = await lock_item(connection, request.product_id)
    reservation = await Reservation.get_or_none(
        order_id=request.order_id, item_id=item.id, status=ReservationStatus.HELD, using_db=connection
    )
    held = reservation.quantity if reservation is not None else 0
    if reservation is None or held < request.quantity:
        raise Conflict(
            f"Order {request.order_id} holds {held} units of {item.product_id}: cannot release {request.quantity}",
            product_id=item.product_id,
            order_id=request.order_id,
            requested=request.quantity,
            reserved=held,
        )
    if held == request.quantity:
        reservation.status = ReservationStatus.RELEASED
    else:
        reservation.quantity -= request.quantity
    await reservation.save(update_fields=["quantity", "status", "updated_at"], using_db=connection)
    await apply_change(
        connection,
        item,
        ChangeType.RELEASED,
        available_delta=request.quantity,
        reserved_delta=-request.quantity,
        reference=request.order_id,
    )
    return item


async def _lock_order(connection: BaseDBAsyncClient, order_id: str) -> None:
    await connection.execute_query("SELECT pg_advisory_xact_lock(hashtext($1))", [order_lock_key(order_id)])


def _already_confirmed(order_id: str, product_id: str) -> Conflict:
    return Conflict(f"Order {order_id} already took its units of {product_id}", order_id=order_id)


# --- The saga's commands -----------------------------------------------------------------------------------------
# They are stock_svc's hot path, so each takes two statements whatever the number of items (every statement costs a
# round trip, Python and PostgreSQL CPU), in the consumer's transaction, whose inbox statement took the order's lock.
# The first (`_READ_FOR_RESERVE`, `_READ_HELD`) reads the order's earlier replies and, unless one of them settles the
# command, locks the items the command changes (in product id order) with the order's reservations of them: one
# statement, the replies deciding whether to lock at all (a repeat takes no item lock). The reservations are read,
# not locked: they change only under the order's lock, which the transaction holds. Python decides. The second
# writes what the decision changes in one data-modifying CTE from parameter arrays (`_RESERVE_ALL`, `_FINISH_ALL`):
# item quantities, reservations, history rows, the command's record and its events (stock.updated / stock.low per
# item, then the reply); a reply alone is `_RECORD_REPLY`, or for a repeat just its event.


def _read(items: str) -> str:
    """The earlier replies to the order's commands `$2`, and (only if there are none) the rows of `items` (FROM and
    WHERE over inventory_items i and reservations r), locked: two JSON arrays."""
    return f"""
WITH earlier AS (
    SELECT command, reply_type, reply FROM handled_commands WHERE order_id = $1 AND command = ANY($2::text[])
), locked AS (
    SELECT i.id, i.product_id, i.available_quantity AS available, i.reserved_quantity AS reserved,
           i.reorder_threshold AS threshold, r.status, r.quantity AS held
    FROM {items} AND NOT EXISTS (SELECT FROM earlier)
    ORDER BY i.product_id FOR UPDATE OF i
)
SELECT (SELECT json_agg(earlier)::text FROM earlier) AS earlier, (SELECT json_agg(locked)::text FROM locked) AS items
"""


# stock.reserve: the order's products ($3), with the order's reservations of them if any.
_READ_FOR_RESERVE = _read(
    "inventory_items i LEFT JOIN reservations r ON r.item_id = i.id AND r.order_id = $1"
    " WHERE i.product_id = ANY($3::text[]) AND i.retired_at IS NULL"
)

# stock.release and stock.confirm: the items the order holds (retired or not), with its reservations.
_READ_HELD = _read(
    "reservations r JOIN inventory_items i ON i.id = r.item_id WHERE r.order_id = $1 AND r.status = 'held'"
)

# The command's record: $1 order id, $2 command, $3 reply type, $4 reply.
_HANDLED = (
    "INSERT INTO handled_commands (order_id, command, reply_type, reply, handled_at)"
    " VALUES ($1, $2, $3, $4::jsonb, now())"
)

# A command that changes no item: its record and its reply (events at $5).
_RECORD_REPLY = f"WITH handled AS ({_HANDLED})\n{insert_events(5)}"


def _apply(reservations: str) -> str:
    """The command's record ($1-$4), the changes ($5-$12, `_change_arrays`) to the items and their history,
    `reservations` (a statement on the order's reservations of the items $5, with its own parameter $13), and the
    events ($14-$21). Absolute quantities are fine: the items are locked since `_read`. `i.id = ANY($5)` finds the
    items by primary key whatever the statistics say (without it an unanalysed table is scanned whole)."""
    return f"""
WITH handled AS (
    {_HANDLED}
), items AS (
    UPDATE inventory_items AS i
    SET available_quantity = c.available, reserved_quantity = c.reserved, updated_at = now()
    FROM unnest($5::int[], $9::int[], $11::int[]) AS c (id, available, reserved)
    WHERE i.id = c.id AND i.id = ANY($5::int[])
), reservation AS (
    {reservations}
), history AS (
    INSERT INTO stock_history
        (item_id, type, change, available_before, available_after, reserved_before, reserved_after, reference,
         created_at)
    SELECT h.item_id, h.type, h.change, h.available_before, h.available_after, h.reserved_before, h.reserved_after,
           h.reference, now()
    FROM unnest($5::int[], $6::text[], $7::int[], $8::int[], $9::int[], $10::int[], $11::int[], $12::text[])
        WITH ORDINALITY
        AS h (item_id, type, change, available_before, available_after, reserved_before, reserved_after, reference, n)
    ORDER BY h.n
)
{insert_events(14)}
"""


# $13: the units to hold of each item. A released reservation is held again; a confirmed one never gets here.
_RESERVE_ALL = _apply("""
    INSERT INTO reservations AS r (order_id, item_id, quantity, status, created_at, updated_at)
    SELECT $1, h.item_id, h.quantity, 'held', now(), now() FROM unnest($5::int[], $13::int[]) AS h (item_id, quantity)
    ON CONFLICT (order_id, item_id) DO UPDATE
    SET quantity = CASE WHEN r.status = 'held' THEN r.quantity ELSE 0 END + EXCLUDED.quantity,
        status = 'held', updated_at = EXCLUDED.updated_at""")

# $13: the reservations' new status (released or confirmed).
_FINISH_ALL = _apply(
    "UPDATE reservations SET status = $13, updated_at = now() WHERE order_id = $1 AND item_id = ANY($5::int[])"
)


@dataclass(frozen=True)
class Reply:
    """stock's answer to a saga command (common/messages.py)."""

    type: str
    payload: dict[str, Any]


async def reserve_order(connection: BaseDBAsyncClient, command: ReserveCommand, causation_id: str) -> Reply:
    """stock.reserve: hold every item of the order, or none (stock.rejected with the shortages)."""
    order_id = command.order_id
    wanted: dict[str, int] = {}  # an order may list a product twice
    for line in sorted(command.items, key=lambda line: line.product_id):
        wanted[line.product_id] = wanted.get(line.product_id, 0) + line.quantity
    earlier, locked = await _read_state(
        connection, _READ_FOR_RESERVE, [order_id, [RESERVE_STOCK, RELEASE_STOCK], list(wanted)]
    )
    if RESERVE_STOCK in earlier:
        return await _send_again(connection, order_id, earlier[RESERVE_STOCK], causation_id)
    if RELEASE_STOCK in earlier:
        return await _answer(
            connection, RESERVE_STOCK, order_id, _rejected(order_id, ALREADY_RELEASED, []), causation_id
        )
    items = {item["product_id"]: item for item in locked}
    shortages = []
    for product_id, quantity in wanted.items():
        available = items[product_id]["available"] if product_id in items else 0
        if available < quantity:
            shortages.append({"product_id": product_id, "requested": quantity, "available": available})
    if shortages:
        reply = _rejected(order_id, INSUFFICIENT_STOCK, shortages)
        return await _answer(connection, RESERVE_STOCK, order_id, reply, causation_id)
    changes = []
    for product_id, quantity in wanted.items():
        item = items[product_id]
        if item["status"] == ReservationStatus.CONFIRMED:
            raise _already_confirmed(order_id, product_id)
        changes.append(_change(item, ChangeType.RESERVED, -quantity, quantity, order_id, causation_id))
    held = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in wanted.items()]
    reply = Reply(STOCK_RESERVED, {"order_id": order_id, "items": held})
    return await _apply_and_answer(
        connection, _RESERVE_ALL, list(wanted.values()), changes, RESERVE_STOCK, order_id, reply, causation_id
    )


async def release_order(connection: BaseDBAsyncClient, order_id: str, causation_id: str) -> Reply:
    """stock.release: give back every unit the order holds (holding nothing is fine). A later stock.reserve
    for the order is rejected: the saga gave the order up."""
    reply = Reply(STOCK_RELEASED, {"order_id": order_id})
    return await _finish(connection, RELEASE_STOCK, order_id, ReservationStatus.RELEASED, reply, causation_id)


async def confirm_order(connection: BaseDBAsyncClient, order_id: str, causation_id: str) -> Reply:
    """stock.confirm: the units the order holds leave the store (reserved drops, available stays)."""
    reply = Reply(STOCK_CONFIRMED, {"order_id": order_id})
    return await _finish(connection, CONFIRM_STOCK, order_id, ReservationStatus.CONFIRMED, reply, causation_id)


async def _finish(
    connection: BaseDBAsyncClient,
    command: str,
    order_id: str,
    status: ReservationStatus,
    reply: Reply,
    causation_id: str,
) -> Reply:
    """Release or confirm every unit the order holds, unless the command was applied before."""
    earlier, held = await _read_state(connection, _READ_HELD, [order_id, [command]])
    if command in earlier:
        return await _send_again(connection, order_id, earlier[command], causation_id)
    changes = []
    for item in sorted(held, key=lambda item: item["product_id"]):
        units = item["held"]
        if status == ReservationStatus.RELEASED:
            changes.append(_change(item, ChangeType.RELEASED, units, -units, order_id, causation_id))
        else:
            changes.append(_change(item, ChangeType.CONFIRMED, 0, -units, order_id, causation_id))
    return await _apply_and_answer(
        connection, _FINISH_ALL, status.value, changes, command, order_id, reply, causation_id
    )


async def _read_state(
    connection: BaseDBAsyncClient, statement: str, values: list
) -> tuple[dict[str, dict], list[dict]]:
    """The earlier replies by command, and the locked items."""
    [row] = await connection.execute_query_dict(statement, values)
    earlier = orjson.loads(row["earlier"]) if row["earlier"] is not None else []
    items = orjson.loads(row["items"]) if row["items"] is not None else []
    return {reply["command"]: reply for reply in earlier}, items


def _change(
    item: dict, change_type: ChangeType, available_delta: int, reserved_delta: int, order_id: str, causation_id: str
) -> StockChange:
    """The change of a locked item (a row of `_read`) for the order."""
    before = (item["available"], item["reserved"])
    return stock_change(
        item["id"],
        item["product_id"],
        item["threshold"],
        change_type,
        before=before,
        after=(before[0] + available_delta, before[1] + reserved_delta),
        reference=order_id,
        causation_id=causation_id,
    )


def _rejected(order_id: str, reason: str, shortages: list[dict[str, Any]]) -> Reply:
    return Reply(STOCK_REJECTED, {"order_id": order_id, "reason": reason, "shortages": shortages})


def _reply_event(order_id: str, reply: Reply, causation_id: str) -> Event:
    return Event(STOCK_REPLIES, reply.type, "order", order_id, reply.payload, causation_id)


async def _send_again(connection: BaseDBAsyncClient, order_id: str, first: dict, causation_id: str) -> Reply:
    """A repeated command: its first reply again, nothing else."""
    reply = Reply(first["reply_type"], first["reply"])
    await write_events(connection, [_reply_event(order_id, reply, causation_id)])
    return reply


async def _answer(connection: BaseDBAsyncClient, command: str, order_id: str, reply: Reply, causation_id: str) -> Reply:
    """A command that changes no item: its record and its reply, in one statement."""
    event = _reply_event(order_id, reply, causation_id)
    await connection.execute_query(_RECORD_REPLY, [*_handled(command, order_id, reply), *event_arrays([event])])
    return reply


async def _apply_and_answer(
    connection: BaseDBAsyncClient,
    statement: str,
    reservations: Any,
    changes: list[StockChange],
    command: str,
    order_id: str,
    reply: Reply,
    causation_id: str,
) -> Reply:
    """The changes to the items, `statement`'s change to the order's reservations (its parameter `reservations`),
    the command's record and the events (the items' in product id order, then the reply), in one statement."""
    if not changes:
        return await _answer(connection, command, order_id, reply, causation_id)
    events = [event for change in changes for event in change.events] + [_reply_event(order_id, reply, causation_id)]
    values = [*_handled(command, order_id, reply), *_change_arrays(changes), reservations, *event_arrays(events)]
    await connection.execute_query(statement, values)
    return reply


def _handled(command: str, order_id: str, reply: Reply) -> list:
    """The parameters $1-$4 of `_HANDLED`."""
    return [order_id, command, reply.type, encode_json(reply.payload)]


def _change_arrays(changes: list[StockChange]) -> list[list]:
    """The changes as the parameter arrays $5-$12 of `_apply`: one array per history column."""
    return [
        [change.item_id for change in changes],
        [change.type.value for change in changes],
        [change.change for change in changes],
        [change.available_before for change in changes],
        [change.available_after for change in changes],
        [change.reserved_before for change in changes],
        [change.reserved_after for change in changes],
        [change.reference for change in changes],
    ]
