from tortoise import migrations
from tortoise.migrations import operations as ops

from common.idempotency import IDEMPOTENCY_DDL, IDEMPOTENCY_DROP


class Migration(migrations.Migration):
    dependencies = [("stock_svc", "0003_inbox_dead_letters_by_event")]

    operations = [ops.RunSQL(IDEMPOTENCY_DDL, reverse_sql=IDEMPOTENCY_DROP)]
