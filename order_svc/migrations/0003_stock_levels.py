from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("order_svc", "0002_guards_outbox_and_inbox")]

    operations = [
        ops.CreateModel(
            name='StockLevel',
            fields=[
                ('product_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=100)),
                ('available', fields.IntField()),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stock_levels', 'app': 'order_svc', 'pk_attr': 'product_id', 'table_description': "The read model of stock_svc's available quantities, fed by stock-updated."},
            bases=['Model'],
        ),
    ]
