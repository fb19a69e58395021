from tortoise import migrations
from tortoise.migrations import operations as ops

from common.inbox import INBOX_DEAD_LETTER_BY_EVENT, INBOX_DEAD_LETTER_BY_POSITION


class Migration(migrations.Migration):
    dependencies = [("stock_svc", "0002_quantity_guards_outbox_and_inbox")]

    operations = [ops.RunSQL(INBOX_DEAD_LETTER_BY_EVENT, reverse_sql=INBOX_DEAD_LETTER_BY_POSITION)]
