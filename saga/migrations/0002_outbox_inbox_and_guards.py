from tortoise import migrations
from tortoise.migrations import operations as ops

from common.inbox import INBOX_DDL, INBOX_DROP
from common.outbox import OUTBOX_DDL, OUTBOX_DROP


class Migration(migrations.Migration):
    dependencies = [("saga", "0001_initial")]

    operations = [
        ops.RunSQL(OUTBOX_DDL, reverse_sql=OUTBOX_DROP),
        ops.RunSQL(INBOX_DDL, reverse_sql=INBOX_DROP),
        # One running step per saga at most: a second one would mean two commands racing for one order.
        ops.RunSQL(
            "CREATE UNIQUE INDEX saga_steps_one_running ON saga_steps (saga_id) WHERE state = 'running'",
            reverse_sql="DROP INDEX saga_steps_one_running",
        ),
    ]
