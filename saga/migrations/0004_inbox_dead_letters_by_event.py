from tortoise import migrations
from tortoise.migrations import operations as ops

from common.inbox import INBOX_DEAD_LETTER_BY_EVENT, INBOX_DEAD_LETTER_BY_POSITION


class Migration(migrations.Migration):
    dependencies = [("saga", "0003_saga_messages")]

    operations = [ops.RunSQL(INBOX_DEAD_LETTER_BY_EVENT, reverse_sql=INBOX_DEAD_LETTER_BY_POSITION)]
