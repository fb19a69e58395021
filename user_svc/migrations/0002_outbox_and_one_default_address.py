from tortoise import migrations
from tortoise.migrations import operations as ops

from common.outbox import OUTBOX_DDL, OUTBOX_DROP


class Migration(migrations.Migration):
    dependencies = [("user_svc", "0001_initial")]

    operations = [
        ops.RunSQL(OUTBOX_DDL, reverse_sql=OUTBOX_DROP),
        ops.RunSQL(
            "CREATE UNIQUE INDEX addresses_one_default_per_user ON addresses (user_id) WHERE is_default",
            reverse_sql="DROP INDEX addresses_one_default_per_user",
        ),
        ops.RunSQL(
            "CREATE INDEX addresses_user_id ON addresses (user_id)",
            reverse_sql="DROP INDEX addresses_user_id",
        ),
    ]
