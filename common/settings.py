"""Settings read from the environment (and an optional `.env` file).

Each service subclasses `ServiceSettings` and adds its own fields; every variable is listed in the README.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service process needs: where to listen and how to reach the shared infrastructure."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Services other than user_svc verify access tokens with the keys published here (fetched, then cached).
    jwks_url: str = "http://127.0.0.1:8080/api/v1/.well-known/jwks.json"
    # The largest request body accepted: a longer one is refused with 413 before it is read whole.
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    # Off: serve HTTP only, without the service's Kafka consumers (and the saga's deadline timer).
    consume_events: bool = True
    # Retention (common/retention.py): seconds between purges, and how long a consuming service keeps its inbox's
    # records (longer than the topics keep their messages).
    purge_interval: float = Field(3600.0, gt=0)
    inbox_retention_days: float = Field(14.0, gt=0)
    log_level: str = "INFO"
    log_json: bool = True


class OutboxSettings(ServiceSettings):
    """Where the outboxes are: the relay drains them, the operations service reports on and repairs them."""

    # The PostgreSQL databases whose `outbox` table the relay drains, comma-separated.
    outbox_database_urls: str = ""
    # The MongoDB database whose `outbox` collection the relay drains (catalog_svc), e.g. mongodb://host/catalog.
    outbox_mongo_url: str | None = None

    def database_urls(self) -> list[str]:
        return [url.strip() for url in self.outbox_database_urls.split(",") if url.strip()]
