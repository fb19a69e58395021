"""The event types that cross service boundaries, and the payloads of the saga's conversation with stock.

Topic per family (common/topics.py); the Kafka key is the aggregate id (the order id for saga traffic).

product-topic   product.created / product.updated / product.deleted   payload: the product as the API returns it
stock-updated   stock.updated {"product_id", "stock"} after every change; stock.low, same payload, at or under
                the reorder threshold
user-events     user.created {"id", "email", "first_name", "last_name", "role", "created_at"}
order-events    order.placed {"order_id", "user_id", "items": [{"product_id", "quantity", "price"}], "total_price"}
                order.paid / order.cancelled / order.rejected {"order_id", "user_id", "status", "reason"}
saga-events     (saga -> order_svc, key = order id) the saga's verdicts on an order
                saga.rejected {"order_id", "reason"}: stock could not be reserved; the order becomes rejected
                saga.expired {"order_id"}: the payment deadline passed; a still pending order becomes cancelled
                (its order.cancelled makes the saga release the stock), a paid one stays paid (its order.paid
                makes the saga confirm)
stock-commands  (saga -> stock, key = order id)
                stock.reserve {"order_id", "items": [{"product_id", "quantity"}]}: all items or none
                stock.release {"order_id"}: give back what the order holds (nothing held is fine)
                stock.confirm {"order_id"}: the reserved units leave the store
stock-replies   (stock -> saga, key = order id)
                stock.reserved {"order_id", "items"}
                stock.rejected {"order_id", "reason", "shortages": [{"product_id", "requested", "available"}]}
                stock.released {"order_id"}
                stock.confirmed {"order_id"}

A participant answers a repeated command (same order id and command, any event id) with its first reply and
changes nothing: the saga may resend a command whose reply it has not seen.
"""

PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
PRODUCT_DELETED = "product.deleted"

STOCK_UPDATED = "stock.updated"
STOCK_LOW = "stock.low"

USER_CREATED = "user.created"

ORDER_PLACED = "order.placed"
ORDER_PAID = "order.paid"
ORDER_CANCELLED = "order.cancelled"
ORDER_REJECTED = "order.rejected"

SAGA_REJECTED = "saga.rejected"
SAGA_EXPIRED = "saga.expired"

RESERVE_STOCK = "stock.reserve"
RELEASE_STOCK = "stock.release"
CONFIRM_STOCK = "stock.confirm"

STOCK_RESERVED = "stock.reserved"
STOCK_REJECTED = "stock.rejected"
STOCK_RELEASED = "stock.released"
STOCK_CONFIRMED = "stock.confirmed"
