from pydantic import AliasChoices, Field

from common.settings import ServiceSettings


class OrderSettings(ServiceSettings):
    database_url: str = Field(
        "postgres://postgres@127.0.0.1:5432/orders", validation_alias=AliasChoices("ORDER_DATABASE_URL")
    )
