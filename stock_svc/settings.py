from pydantic import AliasChoices, Field

from common.settings import ServiceSettings


class StockSettings(ServiceSettings):
    database_url: str = Field(
        "postgres://postgres@127.0.0.1:5432/stock", validation_alias=AliasChoices("STOCK_DATABASE_URL")
    )
