"""Use cases on orders: placing one, reading them, moving their status, and applying the saga's verdicts.

Every status change happens under the order's row lock (SELECT ... FOR UPDATE) and writes its event in the same
transaction: two racing changes are serialised, the second sees the first's status, and the events of one order
enter the outbox in the order their changes commit.
"""

import logging
import uuid
from decimal import Decimal

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.query_utils import Prefetch
from tortoise.queryset import QuerySet
from tortoise.timezone import now
from tortoise.transactions import in_transaction

from common.errors import Conflict, Forbidden, NotFound
from common.idempotency import NO_KEY, Answer, Keyed, record_refusal, record_response, recorded_response
from common.messages import ORDER_CANCELLED, ORDER_PAID, ORDER_PLACED, ORDER_REJECTED
from common.outbox import Event, encode_json, event_arrays, insert_events, write_events
from common.tokens import Principal
from common.topics import ORDER_EVENTS
from order_svc.models import Order, OrderItem, OrderStatus
from order_svc.schemas import ItemInput, NewOrder, Page, money, order_total, order_view

log = logging.getLogger(__name__)

DB = "order_svc"

PAYMENT_DEADLINE_PASSED = "payment deadline passed"

# The changes the API allows, and whether only an admin may make them. The customer pays or cancels a pending
# order; shipping and delivery are the shop's. `rejected`, and cancellation at the payment deadline, come from
# the saga (reject_order, expire_order).
TRANSITIONS: dict[tuple[OrderStatus, OrderStatus], bool] = {
    (OrderStatus.PENDING, OrderStatus.PAID): False,
    (OrderStatus.PENDING, OrderStatus.CANCELLED): False,
    (OrderStatus.PAID, OrderStatus.SHIPPED): True,
    (OrderStatus.SHIPPED, OrderStatus.DELIVERED): True,
}

# The statuses the rest of the system hears about (shipping and delivery concern no other service).
STATUS_EVENTS = {
    OrderStatus.PAID: ORDER_PAID,
    OrderStatus.CANCELLED: ORDER_CANCELLED,
    OrderStatus.REJECTED: ORDER_REJECTED,
}


def order_placed(order: Order, items: list[OrderItem]) -> Event:
    return Event(
        topic=ORDER_EVENTS,
        event_type=ORDER_PLACED,
        aggregate_type="order",
        aggregate_id=str(order.id),
        payload={
            "order_id": str(order.id),
            "user_id": str(order.user_id),
            "items": [
                {"product_id": item.product_id, "quantity": item.quantity, "price": money(item.price)} for item in items
            ],
            "total_price": money(order.total_price),
        },
    )


def status_changed(order: Order, causation_id: str | None) -> Event | None:
    event_type = STATUS_EVENTS.get(order.status)
    if event_type is None:
        return None
    return Event(
        topic=ORDER_EVENTS,
        event_type=event_type,
        aggregate_type="order",
        aggregate_id=str(order.id),
        payload={
            "order_id": str(order.id),
            "user_id": str(order.user_id),
            "status": order.status.value,
            "reason": order.status_reason,
        },
        causation_id=causation_id,
    )


# Placing an order is the shop's hottest write, so it is one statement: one round trip, and no BEGIN or COMMIT
# (a single statement is its own transaction). It checks every line against the catalog's prices and the known
# stock (order_svc/stock_levels.py) and only if all of them hold inserts the order, its items and its order.placed
# event; otherwise it writes nothing and returns the first refused line. With an Idempotency-Key it first records
# the response under the key ($17-$21), and places the order only if the key was free.
_PLACE_ORDER = f"""
WITH line AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::numeric[]) WITH ORDINALITY AS l (product_id, quantity, price, n)
), refused AS (
    SELECT line.n, line.product_id, p.price AS catalog_price, p.deleted, s.available
    FROM line LEFT JOIN product_prices p USING (product_id) LEFT JOIN stock_levels s USING (product_id)
    WHERE p.product_id IS NULL OR p.deleted OR p.price <> line.price OR s.available < line.quantity
), keyed AS (
    {record_response(17, when="NOT EXISTS (SELECT FROM refused)")}
), placed AS (
    INSERT INTO orders (id, user_id, status, total_price, shipping_address, created_at, updated_at)
    SELECT $4, $5, 'pending', $6, $7::jsonb, $8, $8
    WHERE NOT EXISTS (SELECT FROM refused) AND ($18::text IS NULL OR EXISTS (SELECT FROM keyed))
    RETURNING id
), items AS (
    INSERT INTO order_items (order_id, product_id, quantity, price)
    SELECT placed.id, line.product_id, line.quantity, line.price FROM placed, line ORDER BY line.n
), event AS (
    {insert_events(9, when="EXISTS (SELECT FROM placed)")}
)
SELECT r.product_id, r.catalog_price, r.deleted, r.available, EXISTS (SELECT FROM placed) AS placed
FROM (SELECT) AS one LEFT JOIN (SELECT * FROM refused ORDER BY n LIMIT 1) AS r ON true
"""


async def place_order(principal: Principal, new: NewOrder, key: Keyed | None = None) -> Answer:
    """A pending order at the catalog's prices, and its `order.placed` event, in one statement (201); 409 naming the
    first product that is not on sale at the price given, or of which fewer units are known to be available. A
    price that changes meanwhile is the catalog's change racing the order: the order keeps the price the customer
    saw. A request whose Idempotency-Key `key` was answered before gets that first answer again, a refusal too."""
    if new.user_id is not None and new.user_id != str(principal.user_id):
        raise Forbidden("An order can only be placed for the signed-in user", field="user_id")
    placed_at = now()
    order = Order(
        id=uuid.uuid4(),
        user_id=principal.user_id,
        status=OrderStatus.PENDING,
        total_price=order_total(new.items),
        shipping_address=new.shipping_address.model_dump(),
        created_at=placed_at,
        updated_at=placed_at,
    )
    items = [OrderItem(product_id=item.product_id, quantity=item.quantity, price=item.price) for item in new.items]
    answer = Answer(201, order_view(order, items))
    connection = connections.get(DB)
    outcome = (
        await connection.execute_query_dict(
            _PLACE_ORDER,
            [
                [item.product_id for item in items],
                [item.quantity for item in items],
                [item.price for item in items],
                order.id,
                order.user_id,
                order.total_price,
                encode_json(order.shipping_address),
                placed_at,
                *event_arrays([order_placed(order, items)]),
                *(key.parameters(answer) if key else NO_KEY),
            ],
        )
    )[0]
    if outcome["product_id"] is not None:
        asked = next(item for item in new.items if item.product_id == outcome["product_id"])
        refusal = _refusal(asked, outcome["catalog_price"], outcome["deleted"], outcome["available"])
        # With a key, the refusal becomes its answer, unless a send of the key placed the order first (or is placing
        # it now): that answer wins, though the order took the stock this one found missing.
        if key is not None and (first := await record_refusal(connection, key, refusal)) is not None:
            return first
        raise refusal
    if not outcome["placed"]:  # the key placed an order before
        assert key is not None
        first = await recorded_response(connection, key)
        assert first is not None  # the statement found it taken; keys are not deleted while they may be sent again
        return first
    return answer


def _refusal(item: ItemInput, catalog_price: Decimal | None, deleted: bool | None, available: int | None) -> Conflict:
    if catalog_price is None:
        return Conflict(f"Product {item.product_id} is not in the catalog", product_id=item.product_id)
    if deleted:
        return Conflict(f"Product {item.product_id} is no longer sold", product_id=item.product_id)
    if catalog_price != item.price:
        return Conflict(
            f"The price of product {item.product_id} is {catalog_price:.2f}, not {item.price:.2f}",
            product_id=item.product_id,
            price=money(item.price),
            catalog_price=money(catalog_price),
        )
    return Conflict(
        f"Not enough stock of {item.product_id}: {item.quantity} requested, {available} available",
        product_id=item.product_id,
        requested=item.quantity,
        available=available,
    )


def _items_in_order() -> Prefetch:
    return Prefetch("items", queryset=OrderItem.all().order_by("id"))


async def orders_of(user_id: int, page: Page) -> list[tuple[Order, list[OrderItem]]]:
    """The user's orders, newest first."""
    orders = (
        await Order.filter(user_id=user_id)
        .order_by("-created_at", "-id")
        .offset(page.skip)
        .limit(page.limit)
        .prefetch_related(_items_in_order())
    )
    return [(order, list(order.items)) for order in orders]


async def orphans(page: Page) -> list[tuple[Order, list[OrderItem]]]:
    """Pending orders whose order.placed the reconciler had to publish again (order_svc/reconciler.py), the latest
    first: orders that no saga settled in time. Read through the partial index of pending orders."""
    orders = (
        await Order.filter(status=OrderStatus.PENDING, placed_again_at__isnull=False)
        .order_by("-placed_again_at", "-id")
        .offset(page.skip)
        .limit(page.limit)
        .prefetch_related(_items_in_order())
    )
    return [(order, list(order.items)) for order in orders]


async def find_order(principal: Principal, order_id: str) -> tuple[Order, list[OrderItem]]:
    """The order, if the caller owns it or is an admin; 404 otherwise (others' orders are not revealed)."""
    order = await _visible_orders(principal, order_id).prefetch_related(_items_in_order()).first()
    if order is None:
        raise NotFound(f"Order {order_id} not found")
    return order, list(order.items)


async def change_status(principal: Principal, order_id: str, status: OrderStatus) -> tuple[Order, list[OrderItem]]:
    """Move the order to `status` if TRANSITIONS allows it (409) and the caller may (403)."""
    async with in_transaction(DB) as connection:
        order = await _visible_orders(principal, order_id).select_for_update().using_db(connection).first()
        if order is None:
            raise NotFound(f"Order {order_id} not found")
        admin_only = TRANSITIONS.get((order.status, status))
        if admin_only is None:
            raise Conflict(
                f"cannot change an order from {order.status.value} to {status.value}",
                current=order.status.value,
                requested=status.value,
            )
        if admin_only and not principal.is_admin:
            raise Forbidden(f"Only an admin can mark an order {status.value}")
        await _set_status(connection, order, status, reason=None, causation_id=None)
        items = await OrderItem.filter(order_id=order.id).order_by("id").using_db(connection)
    return order, items


async def cancel_order(principal: Principal, order_id: str) -> None:
    await change_status(principal, order_id, OrderStatus.CANCELLED)


async def reject_order(connection: BaseDBAsyncClient, order_id: str, reason: str, causation_id: str) -> None:
    """The saga could not reserve the stock: a pending or paid order becomes rejected (any other stays)."""
    order = await _lock_order(connection, order_id)
    if order is None:
        return
    if order.status not in (OrderStatus.PENDING, OrderStatus.PAID):
        log.info("order %s is %s: the saga's rejection changes nothing", order_id, order.status.value)
        return
    await _set_status(connection, order, OrderStatus.REJECTED, reason, causation_id)


async def expire_order(connection: BaseDBAsyncClient, order_id: str, causation_id: str) -> None:
    """The saga's payment deadline passed: a still pending order is cancelled (its order.cancelled makes the saga
    release the stock); a payment taken first stands (its order.paid makes the saga confirm the stock)."""
    order = await _lock_order(connection, order_id)
    if order is None:
        return
    if order.status != OrderStatus.PENDING:
        log.info("order %s is %s: the payment deadline changes nothing", order_id, order.status.value)
        return
    await _set_status(connection, order, OrderStatus.CANCELLED, PAYMENT_DEADLINE_PASSED, causation_id)


def _order_key(order_id: str) -> uuid.UUID:
    """The order's primary key; a malformed id names no order (404)."""
    try:
        return uuid.UUID(order_id)
    except ValueError:
        raise NotFound(f"Order {order_id} not found") from None


def _visible_orders(principal: Principal, order_id: str) -> QuerySet[Order]:
    """The order with this id if the caller may see it: their own, or any for an admin."""
    query = Order.filter(id=_order_key(order_id))
    return query if principal.is_admin else query.filter(user_id=principal.user_id)


async def _lock_order(connection: BaseDBAsyncClient, order_id: str) -> Order | None:
    try:
        order = await Order.filter(id=_order_key(order_id)).select_for_update().using_db(connection).first()
    except NotFound:
        order = None
    if order is None:
        # Not an order of this service: nothing to change, and retrying would not make it one.
        log.warning("the saga's verdict names an unknown order %s", order_id)
    return order


async def _set_status(
    connection: BaseDBAsyncClient, order: Order, status: OrderStatus, reason: str | None, causation_id: str | None
) -> None:
    order.status = status
    order.status_reason = reason
    order.updated_at = now()
    await order.save(update_fields=["status", "status_reason", "updated_at"], using_db=connection)
    event = status_changed(order, causation_id)
    if event is not None:
        await write_events(connection, [event])
