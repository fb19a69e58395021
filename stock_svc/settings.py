from pydantic import AliasChoices, Field

from common.settings import ServiceSettings


class StockSettings(ServiceSettings):
    database_url: str = Field(
        "postgres://postgres@127.0.0.1:5432/stock", validation_alias=AliasChoices("STOCK_DATABASE_URL")
    )
    # Retention (stock_svc/retention.py): the saga's commands applied (as long as the inbox), and reservation history.
    command_retention_days: float = Field(14.0, gt=0)
    stock_history_retention_days: float = Field(90.0, gt=0)
