from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class InventoryItem(Model):
    """The stock of one product: units on sale (available) and units held for orders (reserved)."""

    # CHECK constraints (migration 0002) keep both quantities >= 0 whatever the interleaving of requests.

    id = fields.IntField(primary_key=True)
    product_id = fields.CharField(max_length=100, unique=True)
    available_quantity = fields.IntField()
    reserved_quantity = fields.IntField(default=0)
    reorder_threshold = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    # Set when the product is deleted: the item leaves the API, but what orders hold can still be released.
    retired_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inventory_items"


class ChangeType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"  # quantity or threshold set by an admin
    RESERVED = "reserved"
    RELEASED = "released"
    CONFIRMED = "confirmed"  # reserved units left the store
    ADJUSTED = "adjusted"


class StockHistory(Model):
    """One change of an item's quantities, with the quantities before and after it."""

    id = fields.BigIntField(primary_key=True)
    item: fields.ForeignKeyRelation[InventoryItem] = fields.ForeignKeyField(
        "stock_svc.InventoryItem", related_name="history", on_delete=fields.CASCADE
    )
    type = fields.CharEnumField(ChangeType, max_length=16)
    # The operation's signed quantity: the change of available stock, or for a confirmation the reserved units
    # that left the store.
    change = fields.IntField()
    available_before = fields.IntField()
    available_after = fields.IntField()
    reserved_before = fields.IntField()
    reserved_after = fields.IntField()
    reference = fields.CharField(max_length=100, null=True)  # order id, adjustment reference or event id
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stock_history"
        indexes = (("item_id", "id"),)


class ReservationStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"
    CONFIRMED = "confirmed"


class Reservation(Model):
    """The units of one product held for one order."""

    # The held reservations of a product add up to its reserved_quantity: a reservation is changed only under
    # its item's row lock (and its order's lock, stock_svc/reservations.py).

    id = fields.IntField(primary_key=True)
    order_id = fields.CharField(max_length=100)
    item: fields.ForeignKeyRelation[InventoryItem] = fields.ForeignKeyField(
        "stock_svc.InventoryItem", related_name="reservations", on_delete=fields.CASCADE
    )
    quantity = fields.IntField()  # units held, or the units it held when released or confirmed
    status = fields.CharEnumField(ReservationStatus, max_length=16, default=ReservationStatus.HELD)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "reservations"
        unique_together = (("order_id", "item_id"),)


class HandledCommand(Model):
    """A saga command applied for an order, with its reply: the same command again gets this reply, no effect."""

    id = fields.IntField(primary_key=True)
    order_id = fields.CharField(max_length=100)
    command = fields.CharField(max_length=32)
    reply_type = fields.CharField(max_length=32)
    reply: fields.JSONField[dict[str, Any]] = fields.JSONField()
    handled_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "handled_commands"
        unique_together = (("order_id", "command"),)
