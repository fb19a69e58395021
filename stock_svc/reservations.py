"""Reservations: units of a product held for an order.

Admins reserve and release one product at a time over HTTP. The saga (DESIGN §5) reserves all of an order's
items or none, releases them, or confirms them (the units leave the store). Each saga command is applied once
per (order, command): a repeat, whatever its event id, gets the first reply again and changes nothing.

Locking: a reservation is changed only while its item's row is locked, and several items are always locked in
product id order (`lock_items`), so concurrent requests and commands cannot oversell or deadlock.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

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
from common.outbox import Event, write_events
from common.topics import STOCK_REPLIES
from stock_svc.inventory import DB, apply_change, lock_item, lock_items
from stock_svc.models import ChangeType, HandledCommand, InventoryItem, Reservation, ReservationStatus
from stock_svc.schemas import ReservationRequest, ReserveCommand

INSUFFICIENT_STOCK = "insufficient stock"
ALREADY_RELEASED = "the order's reservation was already released"


async def reserve(request: ReservationRequest) -> InventoryItem:
    """Hold `quantity` units for the order; 409 with the numbers if fewer are available."""
    async with in_transaction(DB) as connection:
        item = await lock_item(connection, request.product_id)
        if item.available_quantity < request.quantity:
            raise Conflict(
                f"Not enough stock of {item.product_id}: {request.quantity} requested,"
                f" {item.available_quantity} available",
                product_id=item.product_id,
                requested=request.quantity,
                available=item.available_quantity,
            )
        await _hold(connection, item, request.order_id, request.quantity)
    return item


async def release(request: ReservationRequest) -> InventoryItem:
    """Give back `quantity` of the units the order holds; 409 with the numbers if it holds fewer."""
    async with in_transaction(DB) as connection:
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


async def _hold(
    connection: BaseDBAsyncClient, item: InventoryItem, order_id: str, quantity: int, causation_id: str | None = None
) -> None:
    """Move `quantity` available units of the locked `item` to the order's reservation."""
    reservation = await Reservation.get_or_none(order_id=order_id, item_id=item.id, using_db=connection)
    if reservation is None:
        await Reservation.create(order_id=order_id, item_id=item.id, quantity=quantity, using_db=connection)
    elif reservation.status == ReservationStatus.CONFIRMED:
        raise Conflict(f"Order {order_id} already took its units of {item.product_id}", order_id=order_id)
    else:
        held = reservation.quantity if reservation.status == ReservationStatus.HELD else 0
        reservation.quantity, reservation.status = held + quantity, ReservationStatus.HELD
        await reservation.save(update_fields=["quantity", "status", "updated_at"], using_db=connection)
    await apply_change(
        connection,
        item,
        ChangeType.RESERVED,
        available_delta=-quantity,
        reserved_delta=quantity,
        reference=order_id,
        causation_id=causation_id,
    )


@dataclass(frozen=True)
class Reply:
    """stock's answer to a saga command (common/messages.py)."""

    type: str
    payload: dict[str, Any]


async def reserve_order(connection: BaseDBAsyncClient, command: ReserveCommand, causation_id: str) -> Reply:
    """stock.reserve: hold every item of the order, or none (stock.rejected with the shortages)."""

    async def reserve_all() -> Reply:
        if await HandledCommand.exists(order_id=command.order_id, command=RELEASE_STOCK, using_db=connection):
            return _rejected(command.order_id, ALREADY_RELEASED, [])
        wanted: dict[str, int] = {}  # an order may list a product twice
        for line in sorted(command.items, key=lambda line: line.product_id):
            wanted[line.product_id] = wanted.get(line.product_id, 0) + line.quantity
        locked = await lock_items(connection, product_id__in=list(wanted), retired_at=None)
        items = {item.product_id: item for item in locked}
        shortages = []
        for product_id, quantity in wanted.items():
            available = items[product_id].available_quantity if product_id in items else 0
            if available < quantity:
                shortages.append({"product_id": product_id, "requested": quantity, "available": available})
        if shortages:
            return _rejected(command.order_id, INSUFFICIENT_STOCK, shortages)
        for product_id, quantity in wanted.items():
            await _hold(connection, items[product_id], command.order_id, quantity, causation_id)
        held = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in wanted.items()]
        return Reply(STOCK_RESERVED, {"order_id": command.order_id, "items": held})

    return await _answer_once(connection, RESERVE_STOCK, command.order_id, causation_id, reserve_all)


async def release_order(connection: BaseDBAsyncClient, order_id: str, causation_id: str) -> Reply:
    """stock.release: give back every unit the order holds (holding nothing is fine). A later stock.reserve
    for the order is rejected: the saga gave the order up."""

    async def release_all() -> Reply:
        await _finish_reservations(connection, order_id, ReservationStatus.RELEASED, causation_id)
        return Reply(STOCK_RELEASED, {"order_id": order_id})

    return await _answer_once(connection, RELEASE_STOCK, order_id, causation_id, release_all)


async def confirm_order(connection: BaseDBAsyncClient, order_id: str, causation_id: str) -> Reply:
    """stock.confirm: the units the order holds leave the store (reserved drops, available stays)."""

    async def confirm_all() -> Reply:
        await _finish_reservations(connection, order_id, ReservationStatus.CONFIRMED, causation_id)
        return Reply(STOCK_CONFIRMED, {"order_id": order_id})

    return await _answer_once(connection, CONFIRM_STOCK, order_id, causation_id, confirm_all)


def _rejected(order_id: str, reason: str, shortages: list[dict[str, Any]]) -> Reply:
    return Reply(STOCK_REJECTED, {"order_id": order_id, "reason": reason, "shortages": shortages})


async def _answer_once(
    connection: BaseDBAsyncClient,
    command: str,
    order_id: str,
    causation_id: str,
    apply: Callable[[], Awaitable[Reply]],
) -> Reply:
    """Apply the command unless it was applied before, record its reply, and send the (first) reply."""
    # One order's commands apply one at a time, even while a consumer-group rebalance lets two consumers hold
    # the order's partition for a moment; the unique (order_id, command) row backs this up.
    await connection.execute_query("SELECT pg_advisory_xact_lock(hashtext($1))", [f"stock-order:{order_id}"])
    first = await HandledCommand.get_or_none(order_id=order_id, command=command, using_db=connection)
    if first is not None:
        reply = Reply(first.reply_type, first.reply)
    else:
        reply = await apply()
        await HandledCommand.create(
            order_id=order_id, command=command, reply_type=reply.type, reply=reply.payload, using_db=connection
        )
    await write_events(connection, [Event(STOCK_REPLIES, reply.type, "order", order_id, reply.payload, causation_id)])
    return reply


async def _finish_reservations(
    connection: BaseDBAsyncClient, order_id: str, status: ReservationStatus, causation_id: str
) -> None:
    """Release or confirm every unit the order holds."""
    item_ids = (
        await Reservation.filter(order_id=order_id, status=ReservationStatus.HELD)
        .using_db(connection)
        .values_list("item_id", flat=True)
    )
    if not item_ids:
        return
    items = await lock_items(connection, id__in=item_ids)
    # Read again under the item locks: an admin may have changed them meanwhile.
    held = {
        reservation.item_id: reservation
        for reservation in await Reservation.filter(
            order_id=order_id, status=ReservationStatus.HELD, item_id__in=item_ids
        ).using_db(connection)
    }
    for item in items:
        reservation = held.get(item.id)
        if reservation is None:
            continue
        reservation.status = status
        await reservation.save(update_fields=["status", "updated_at"], using_db=connection)
        units = reservation.quantity
        if status == ReservationStatus.RELEASED:
            await apply_change(
                connection,
                item,
                ChangeType.RELEASED,
                available_delta=units,
                reserved_delta=-units,
                reference=order_id,
                causation_id=causation_id,
            )
        else:
            await apply_change(
                connection,
                item,
                ChangeType.CONFIRMED,
                reserved_delta=-units,
                reference=order_id,
                causation_id=causation_id,
            )
