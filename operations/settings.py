from pydantic import Field

from common.settings import OutboxSettings


class OperationsSettings(OutboxSettings):
    # Seconds one reading of the broker's consumer offsets serves: every console open shares it.
    consumer_lag_max_age: float = Field(1.0, gt=0)
