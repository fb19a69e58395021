from tortoise import migrations
from tortoise.migrations import operations as ops

# order_svc/reconciler.py: when an order's order.placed was last published again, and the pending orders by age.
ORPHANS = """
ALTER TABLE orders ADD COLUMN placed_again_at timestamptz;
CREATE INDEX orders_pending_since ON orders (created_at) WHERE status = 'pending';
"""
ORPHANS_DROP = "DROP INDEX orders_pending_since; ALTER TABLE orders DROP COLUMN placed_again_at;"


class Migration(migrations.Migration):
    dependencies = [("order_svc", "0005_inbox_dead_letters_by_event")]

    operations = [ops.RunSQL(ORPHANS, reverse_sql=ORPHANS_DROP)]
