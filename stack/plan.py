"""The plan of the local stack: which parts run, on which ports, with which environment. Nothing starts here;
`python -m stack` runs the plan under honcho, and the tests start its parts one by one."""

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common.tokens import ensure_signing_key
from stack import gateway, infra
from stack.kafka import nodes as kafka
from stack.services import (
    CATALOG_MONGO_DATABASE,
    DATABASES,
    KAFKA,
    MONGO,
    OUTBOX_DATABASES,
    OUTBOX_MONGO,
    Service,
    present_services,
)
from stack.settings import StackSettings, parse_scale


@dataclass
class Part:
    """One component of the stack: a process started here (`command`) or an external server (no command)."""

    name: str  # honcho process name and log file stem
    label: str
    address: str
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None  # probed with TCP until open (embedded infrastructure)
    probe_url: str | None = None  # probed with GET until 200 (services and gateway)
    stop_signal: signal.Signals = signal.SIGTERM
    needs_topics: bool = False  # the broker is ready once the topics exist
    infrastructure: bool = False  # stopped after the services

    @property
    def external(self) -> bool:
        return self.command is None


@dataclass
class Stack:
    parts: list[Part]
    bootstrap_servers: str
    gateway_url: str
    services: list[Service]
    kafka_brokers: int | None  # the local Kafka's nodes; None for an external broker


def plan(settings: StackSettings, data_dir: Path) -> Stack:
    """Decide what runs and prepare its data (PostgreSQL cluster, signing key); starts nothing."""
    services = present_services(settings.selected_services())
    if not services:
        raise RuntimeError("no service to run: no selected service package has a __main__.py yet")
    unknown = set(parse_scale(settings.stack_scale)[1]) - {service.package for service in services}
    if unknown:
        raise RuntimeError(f"STACK_SCALE names processes that do not run: {', '.join(sorted(unknown))}")
    needed = {variable for service in services for variable in service.needs}
    embedded = any(v in needed and not settings.external(v) for v in DATABASES) or (
        MONGO in needed and not settings.mongo_url
    )
    if embedded:
        infra.require_tools()
    if not settings.kafka_bootstrap_servers:
        kafka.require_tools()

    values: dict[str, str] = {}  # the value of every variable a service may need
    parts = [
        *_postgres(settings, needed, data_dir, values),
        *_brokers(settings, data_dir, values),
        *_mongo(settings, needed, data_dir, values),
    ]
    # The relay drains the outboxes of the stores in use.
    values[OUTBOX_DATABASES] = ",".join(values[v] for v in DATABASES if v in values)
    if MONGO in values and any(service.package == "catalog_svc" for service in services):
        values[OUTBOX_MONGO] = _with_database(values[MONGO], CATALOG_MONGO_DATABASE)
    values["JWT_PRIVATE_KEY_FILE"] = str(ensure_signing_key(data_dir / "keys" / "jwt-private.pem"))
    values["ADMIN_EMAIL"] = settings.admin_email
    values["ADMIN_PASSWORD"] = settings.admin_password.get_secret_value()

    service_parts, routes = _services(settings, services, values)
    gateway = _gateway(settings, routes, data_dir)
    brokers = None if settings.kafka_bootstrap_servers else settings.kafka_brokers
    return Stack([*parts, *service_parts, gateway], values[KAFKA], gateway.address, services, brokers)


def _postgres(settings: StackSettings, needed: set[str], data_dir: Path, values: dict[str, str]) -> list[Part]:
    """The embedded PostgreSQL, unless every database URL the services need is set (or none is needed)."""
    wanted = [v for v in DATABASES if v in needed]
    values.update({v: url for v in wanted if (url := settings.external(v))})
    missing = [v for v in wanted if v not in values]
    if not missing:
        external = ", ".join(f"{v}={_redact(values[v])}" for v in wanted)
        return [Part("postgres", "PostgreSQL", f"external: {external}")] if wanted else []
    port = infra.free_port()
    cluster = data_dir / "postgres"
    infra.init_postgres(cluster)  # once: the cluster persists across runs
    base = f"postgres://postgres@127.0.0.1:{port}"
    values.update({v: f"{base}/{DATABASES[v]}" for v in missing})
    command = infra.postgres_command(cluster, port, durable=True)
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM, honcho's default, would wait for every client to leave).
    return [Part("postgres", "PostgreSQL", base, command, port=port, stop_signal=signal.SIGINT, infrastructure=True)]


def _brokers(settings: StackSettings, data_dir: Path, values: dict[str, str]) -> list[Part]:
    """Apache Kafka (KAFKA_BROKERS nodes, their data in DATA_DIR/kafka), unless KAFKA_BOOTSTRAP_SERVERS is set."""
    if settings.kafka_bootstrap_servers:
        values[KAFKA] = settings.kafka_bootstrap_servers
        return [Part("broker", "Kafka broker", f"external: {values[KAFKA]}", needs_topics=True)]
    nodes = kafka.prepare_cluster(data_dir / "kafka", settings.kafka_brokers, settings.kafka_heap)
    values[KAFKA] = kafka.bootstrap_servers(nodes)
    return [
        Part(
            kafka.process_name(node, len(nodes)),
            "Kafka broker" if len(nodes) == 1 else f"Kafka broker {node.node_id}",
            node.address,
            node.command,
            port=node.port,
            needs_topics=True,
            infrastructure=True,
        )
        for node in nodes
    ]


def _mongo(settings: StackSettings, needed: set[str], data_dir: Path, values: dict[str, str]) -> list[Part]:
    if MONGO not in needed:
        return []
    if settings.mongo_url:
        values[MONGO] = settings.mongo_url
        return [Part("mongo", "MongoDB-wire", f"external: {_redact(settings.mongo_url)}")]
    port = infra.free_port()
    values[MONGO] = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    command = infra.mongo_command(data_dir / "mongo", port)
    return [Part("mongo", "MongoDB-wire (nx-27017)", values[MONGO], command, port=port, infrastructure=True)]


def _services(
    settings: StackSettings, services: list[Service], values: dict[str, str]
) -> tuple[list[Part], dict[str, list[str]]]:
    """A part per service, on a free port, with the variables it needs; and the gateway's routes to them."""
    common_env = {
        "HOST": "127.0.0.1",
        KAFKA: values[KAFKA],
        # Through the gateway, as a client would: services other than user_svc fetch the signing keys here.
        "JWKS_URL": f"http://127.0.0.1:{settings.gateway_port}/api/v1/.well-known/jwks.json",
        "SANIC_PROXIES_COUNT": "1",  # behind one proxy, the gateway: the client is the last X-Forwarded-For entry
        "MAX_BODY_BYTES": str(settings.max_body_bytes),
        **_process_env(settings),
    }
    parts: list[Part] = []
    routes: dict[str, list[str]] = {}
    for service in services:
        count = settings.instances(service.package)
        for instance in range(1, count + 1):
            # One instance keeps the package's name; several are `saga.1`, `saga.2` (processes and log files).
            name = service.package if count == 1 else f"{service.package}.{instance}"
            port = infra.free_port()
            url = f"http://127.0.0.1:{port}"
            env = {**common_env, "PORT": str(port), **{v: values[v] for v in service.needs if v in values}}
            command = [sys.executable, "-m", service.package]
            parts.append(Part(name, name, url, command, env, probe_url=f"{url}/ready"))
            for prefix in service.routes:
                routes.setdefault(prefix, []).append(url)
    return parts, routes


def _gateway(settings: StackSettings, routes: dict[str, list[str]], data_dir: Path) -> Part:
    """Caddy on GATEWAY_PORT, its configuration generated from the route table (stack/gateway.py)."""
    config = gateway.caddy_config(
        routes,
        settings.gateway_host,
        settings.gateway_port,
        settings.gateway_timeout,
        settings.max_body_bytes,
        storage_dir=data_dir / "gateway",
    )
    path = gateway.write_caddy_config(data_dir / "gateway" / "caddy.json", config)
    probe = f"http://{local_host(settings.gateway_host)}:{settings.gateway_port}/health"
    address = f"http://localhost:{settings.gateway_port}"
    return Part("gateway", "gateway (Caddy)", address, gateway.caddy_command(path), probe_url=probe)


def _process_env(settings: StackSettings) -> dict[str, str]:
    return {
        "LOG_LEVEL": settings.log_level,
        "LOG_JSON": str(settings.log_json).lower(),
        "PYTHONUNBUFFERED": "1",  # lines reach the terminal and the logs as they are written
    }


def local_host(host: str) -> str:
    """Where to reach a server listening on `host` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _redact(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
