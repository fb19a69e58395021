"""Settings of the local stack (`python -m stack`), read from the environment and an optional `.env` file.

Every external part has a URL which, when set, replaces the local server: all the `*_DATABASE_URL`s of the services
present set -> no embedded PostgreSQL; KAFKA_BOOTSTRAP_SERVERS -> no local Kafka; MONGO_URL -> no nx-27017.
"""

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(8080, gt=0, lt=65536)
    gateway_timeout: float = Field(30.0, gt=0)  # seconds before the gateway answers 504
    # The largest request body the gateway and every service accept (413 above it).
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    data_dir: Path = Path(".data")
    # The first admin account, created (or reset) by user_svc at start. DEVELOPMENT DEFAULTS: change them anywhere
    # the stack is reachable by others.
    admin_email: str = "admin@example.com"
    admin_password: SecretStr = SecretStr("Admin12345")
    log_level: str = "INFO"
    log_json: bool = False  # readable lines in the terminal; set true to get one JSON object per line
    stack_ready_timeout: float = Field(60.0, gt=0)  # seconds before the launcher reports what is not ready
    # Comma-separated packages to start (e.g. `user_svc`); empty: every service whose package exists.
    stack_services: str = ""
    # Instances per process: `2` (every service and the relay), `saga=3,stock_svc=2`, or both (`2,saga=3`).
    stack_scale: str = ""

    # The local Apache Kafka: its nodes (3: replication factor 3, min.insync.replicas 2) and each one's JVM heap.
    kafka_brokers: int = Field(1, ge=1, le=9)
    kafka_heap: str = Field("512m", pattern=r"^[0-9]+[mMgG]$")

    # External parts; unset -> the embedded server is started and its URL given to the services.
    user_database_url: str | None = None
    stock_database_url: str | None = None
    order_database_url: str | None = None
    saga_database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    mongo_url: str | None = None

    def selected_services(self) -> set[str] | None:
        names = {name.strip() for name in self.stack_services.split(",") if name.strip()}
        return names or None

    @field_validator("stack_scale")
    @classmethod
    def _scale_is_counts(cls, value: str) -> str:
        parse_scale(value)
        return value

    def instances(self, package: str) -> int:
        """How many instances of `package` to run (STACK_SCALE)."""
        default, counts = parse_scale(self.stack_scale)
        return counts.get(package, default)

    def external(self, variable: str) -> str | None:
        """The value of an external-part variable (e.g. `USER_DATABASE_URL`), None when unset or empty."""
        return getattr(self, variable.lower()) or None


def parse_scale(text: str) -> tuple[int, dict[str, int]]:
    """STACK_SCALE as (instances of every process, instances by package): "2,saga=3" -> (2, {"saga": 3})."""
    default, counts = 1, {}
    for item in filter(None, (item.strip() for item in text.split(","))):
        name, named, count = (part.strip() for part in item.rpartition("="))
        if not count.isdigit() or int(count) < 1 or (named and not name):
            raise ValueError(f"STACK_SCALE: {item!r} is not a count (>= 1) or package=count")
        if named:
            counts[name] = int(count)
        else:
            default = int(count)
    return default, counts
