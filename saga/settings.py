from pydantic import AliasChoices, Field

from common.settings import ServiceSettings


class SagaSettings(ServiceSettings):
    database_url: str = Field(
        "postgres://postgres@127.0.0.1:5432/sagas", validation_alias=AliasChoices("SAGA_DATABASE_URL")
    )
    payment_timeout: float = Field(900.0, gt=0)  # seconds an order may await payment before its stock is released
    step_timeout: float = Field(10.0, gt=0)  # seconds to wait for stock's reply before sending the command again
    step_max_attempts: int = Field(5, gt=0)  # sends of one command before the saga is FAILED
    saga_timer_interval: float = Field(1.0, gt=0)  # seconds between looks for due deadlines (each one a query)
    saga_history_retention_days: float = Field(30.0, gt=0)  # steps and messages of sagas ended longer ago, purged
    failed_retry_delay: float = Field(300.0, gt=0)  # seconds at least before a FAILED saga is retried automatically
