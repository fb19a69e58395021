"""The services of the system as the launcher and the gateway see them: package, public paths, needed env.

A service is started only once its package exists (has a `__main__.py`), so the table can list services that
are still to be written. Each also serves its OpenAPI docs under `/api/v1/docs/<package>`.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

# The infrastructure a service can ask for, by the variable that carries its address.
KAFKA = "KAFKA_BOOTSTRAP_SERVERS"
MONGO = "MONGO_URL"
# PostgreSQL: one database per service, named here; the launcher builds the URL for the embedded server.
DATABASES = {
    "USER_DATABASE_URL": "users",
    "STOCK_DATABASE_URL": "stock",
    "ORDER_DATABASE_URL": "orders",
    "SAGA_DATABASE_URL": "sagas",
}
# What the relay drains and operations reads, derived by the launcher from the stores of the services present
# (never starts a store):
OUTBOX_DATABASES = "OUTBOX_DATABASE_URLS"  # every PostgreSQL database above in use, comma-separated
OUTBOX_MONGO = "OUTBOX_MONGO_URL"  # MONGO_URL with catalog_svc's database, when catalog_svc is present
CATALOG_MONGO_DATABASE = "catalog"


@dataclass(frozen=True)
class Service:
    package: str
    prefixes: tuple[str, ...]  # the /api/v1 paths it serves through the gateway
    needs: tuple[str, ...]  # infrastructure variables (KAFKA, MONGO, a DATABASES key) and service-specific ones

    @property
    def docs_prefix(self) -> str:
        return f"/api/v1/docs/{self.package}"

    @property
    def routes(self) -> tuple[str, ...]:
        """Every gateway prefix of the service; one without public paths (the relay) has none."""
        return (*self.prefixes, self.docs_prefix) if self.prefixes else ()

    def exists(self) -> bool:
        # find_spec on a top-level package locates it without importing it.
        spec = importlib.util.find_spec(self.package)
        locations = spec.submodule_search_locations if spec is not None else None
        return bool(locations) and any((Path(location) / "__main__.py").exists() for location in locations)


SERVICES = (
    Service(
        "user_svc",
        ("/api/v1/auth", "/api/v1/users", "/api/v1/.well-known"),
        ("USER_DATABASE_URL", KAFKA, "JWT_PRIVATE_KEY_FILE", "ADMIN_EMAIL", "ADMIN_PASSWORD"),
    ),
    Service("catalog_svc", ("/api/v1/products",), (MONGO, KAFKA)),
    Service("stock_svc", ("/api/v1/inventory",), ("STOCK_DATABASE_URL", KAFKA)),
    Service("order_svc", ("/api/v1/orders",), ("ORDER_DATABASE_URL", KAFKA)),
    Service("saga", ("/api/v1/sagas",), ("SAGA_DATABASE_URL", KAFKA)),
    # The relay reads every service's outbox and publishes to the broker; it has no public path.
    Service("outbox_relay", (), (OUTBOX_DATABASES, OUTBOX_MONGO, KAFKA)),
    # Outbox backlogs, consumer lag and dead letters for admins; apart from the relay, so a stalled relay is seen.
    Service("operations", ("/api/v1/operations",), (OUTBOX_DATABASES, OUTBOX_MONGO, KAFKA)),
)


def present_services(selected: set[str] | None = None) -> list[Service]:
    """The services whose package exists, limited to `selected` packages when given."""
    unknown = (selected or set()) - {service.package for service in SERVICES}
    if unknown:
        raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
    return [s for s in SERVICES if (selected is None or s.package in selected) and s.exists()]
