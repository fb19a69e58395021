from tortoise import migrations
from tortoise.migrations import operations as ops

from common.inbox import INBOX_DDL, INBOX_DROP
from common.outbox import OUTBOX_DDL, OUTBOX_DROP

# Tortoise's CreateModel does not emit CHECK constraints: the guards are added here.
GUARDS = """
ALTER TABLE orders
    ADD CONSTRAINT orders_status_known
        CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'rejected')),
    ADD CONSTRAINT orders_total_price_positive CHECK (total_price > 0);
ALTER TABLE order_items
    ADD CONSTRAINT order_items_quantity_positive CHECK (quantity > 0),
    ADD CONSTRAINT order_items_price_positive CHECK (price > 0);
ALTER TABLE product_prices ADD CONSTRAINT product_prices_price_not_negative CHECK (price >= 0);
"""

GUARDS_DROP = """
ALTER TABLE orders DROP CONSTRAINT orders_status_known, DROP CONSTRAINT orders_total_price_positive;
ALTER TABLE order_items
    DROP CONSTRAINT order_items_quantity_positive, DROP CONSTRAINT order_items_price_positive;
ALTER TABLE product_prices DROP CONSTRAINT product_prices_price_not_negative;
"""


class Migration(migrations.Migration):
    dependencies = [("order_svc", "0001_initial")]

    operations = [
        ops.RunSQL(GUARDS, reverse_sql=GUARDS_DROP),
        ops.RunSQL(OUTBOX_DDL, reverse_sql=OUTBOX_DROP),
        ops.RunSQL(INBOX_DDL, reverse_sql=INBOX_DROP),
    ]
