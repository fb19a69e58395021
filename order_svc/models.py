from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class Order(Model):
    """One customer's order. Its items and prices never change after it is placed; only its status does."""

    id = fields.UUIDField(primary_key=True)
    user_id = fields.IntField()
    status = fields.CharEnumField(OrderStatus, max_length=16, default=OrderStatus.PENDING)
    total_price = fields.DecimalField(max_digits=12, decimal_places=2)
    shipping_address: fields.JSONField[dict[str, Any]] = fields.JSONField()
    # Why the saga rejected or cancelled it (tortoise types a nullable TextField as never None).
    status_reason: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    placed_again_at = fields.DatetimeField(null=True)  # when order_svc/reconciler.py last published it again
    # Set by the use cases, not auto_now: a new order shows the same instant as created and updated.
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    items: fields.ReverseRelation["OrderItem"]

    class Meta:
        table = "orders"
        indexes = (("user_id", "created_at"),)  # a customer's orders, newest first


class OrderItem(Model):
    id = fields.BigIntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "order_svc.Order", related_name="items", on_delete=fields.CASCADE
    )
    product_id = fields.CharField(max_length=100)
    quantity = fields.IntField()
    price = fields.DecimalField(max_digits=12, decimal_places=2)  # the unit price when the order was placed

    class Meta:
        table = "order_items"
        unique_together = (("order_id", "product_id"),)


class ProductPrice(Model):
    """The read model of the catalog's prices, fed by product-topic: what an order may be placed at."""

    product_id = fields.CharField(max_length=100, primary_key=True)
    name = fields.CharField(max_length=200)
    price = fields.DecimalField(max_digits=12, decimal_places=2)
    deleted = fields.BooleanField(default=False)
    updated_at = fields.DatetimeField()  # when the catalog changed it (the event's occurred_at)

    class Meta:
        table = "product_prices"


class StockLevel(Model):
    """The read model of stock_svc's available quantities, fed by stock-updated: an order the known stock cannot
    cover is refused at once (the saga's reservation stays the authority)."""

    product_id = fields.CharField(max_length=100, primary_key=True)
    available = fields.IntField()
    updated_at = fields.DatetimeField()  # when stock_svc changed it (the event's occurred_at)

    class Meta:
        table = "stock_levels"
