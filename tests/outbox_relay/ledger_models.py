from tortoise import fields
from tortoise.models import Model


class Applied(Model):
    """The stand-in consumer's effect: one row per event handled (its table is created by the fixture)."""

    applied_order = fields.BigIntField(primary_key=True, generated=True)
    consumer = fields.TextField()
    event_id = fields.UUIDField()
    aggregate_id = fields.TextField()
    seq = fields.IntField()

    class Meta:
        table = "applied"
        app = "ledger"
