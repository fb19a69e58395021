from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("saga", "0002_outbox_inbox_and_guards")]

    operations = [
        ops.CreateModel(
            name='SagaMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('saga', fields.ForeignKeyField('saga.Saga', source_field='saga_id', db_index=True, db_constraint=True, to_field='order_id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('direction', fields.CharField(max_length=8)),
                ('event_id', fields.UUIDField()),
                ('event_type', fields.CharField(max_length=50)),
                ('topic', fields.CharField(max_length=100)),
                ('causation_id', fields.UUIDField(null=True)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'saga_messages', 'app': 'saga', 'pk_attr': 'id', 'ordering': ('id',), 'table_description': 'A message that moved the saga (received) or that a move sent.'},
            bases=['Model'],
        ),
    ]
