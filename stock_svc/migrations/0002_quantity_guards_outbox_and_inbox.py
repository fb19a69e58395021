from tortoise import migrations
from tortoise.migrations import operations as ops

from common.inbox import INBOX_DDL, INBOX_DROP
from common.outbox import OUTBOX_DDL, OUTBOX_DROP

# Tortoise's CreateModel does not emit CHECK constraints: the quantity guards are added here.
QUANTITY_GUARDS = """
ALTER TABLE inventory_items
    ADD CONSTRAINT inventory_items_available_not_negative CHECK (available_quantity >= 0),
    ADD CONSTRAINT inventory_items_reserved_not_negative CHECK (reserved_quantity >= 0),
    ADD CONSTRAINT inventory_items_threshold_not_negative CHECK (reorder_threshold >= 0);
ALTER TABLE reservations ADD CONSTRAINT reservations_quantity_positive CHECK (quantity > 0);
"""

QUANTITY_GUARDS_DROP = """
ALTER TABLE inventory_items
    DROP CONSTRAINT inventory_items_available_not_negative,
    DROP CONSTRAINT inventory_items_reserved_not_negative,
    DROP CONSTRAINT inventory_items_threshold_not_negative;
ALTER TABLE reservations DROP CONSTRAINT reservations_quantity_positive;
"""


class Migration(migrations.Migration):
    dependencies = [("stock_svc", "0001_initial")]

    operations = [
        ops.RunSQL(QUANTITY_GUARDS, reverse_sql=QUANTITY_GUARDS_DROP),
        ops.RunSQL(OUTBOX_DDL, reverse_sql=OUTBOX_DROP),
        ops.RunSQL(INBOX_DDL, reverse_sql=INBOX_DROP),
    ]
