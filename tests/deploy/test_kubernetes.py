"""deploy/kubernetes/, checked without a cluster (none runs on our machines).

Validated here: every object against the Kubernetes API's own schemas (`kubernetes-validate`, strict: unknown
fields are errors), the kustomization lists every file, and the manifests agree with the code, as
tests/compose/ checks docker-compose.yml: each process's settings (its settings class loads from the environment
the manifests give it, ConfigMap and Secret values included; its app is built from them), the probes' paths and
ports, the commands, the one image, the Services and the Ingress routes of stack/services.py, the autoscalers,
disruption budgets and security contexts.

Not validated here: that the image builds, that the pods start, or anything only a cluster (its admission, its
ingress controller, the external Kafka, PostgreSQL and MongoDB) would show.
"""

import copy
import importlib
import importlib.util
import inspect
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from sanic import Sanic

from common.settings import ServiceSettings
from common.tokens import generate_private_key_pem
from common.topics import ALL_TOPICS, PARTITIONS, ensure_topics
from stack.services import CATALOG_MONGO_DATABASE, DATABASES, KAFKA, MONGO, OUTBOX_DATABASES, SERVICES
from tests.service_settings import load_settings, settings_class, variable

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
DOCKERFILE = ROOT / "Dockerfile"

KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37.0 ships
IMAGE = "outbox-shop"  # the name every container uses; kustomization.yaml's `images` says where it is pushed
LOOPBACK = ("127.0.0.1", "localhost")
PLACEHOLDER = "REPLACE_ME"
# ingress-nginx's strict-validate-path-type (on by default): what an Exact or Prefix path may contain.
STRICT_PATH = re.compile(r"^/[A-Za-z0-9_\-/]*$")

Sanic.test_mode = True  # several apps in one process


# ---------------------------------------------------------------------------------------------------- loading


def manifest_files() -> list[Path]:
    return sorted(path for path in MANIFESTS.glob("*.yaml") if path != KUSTOMIZATION)


def load_objects() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every object of every manifest."""
    return [
        (path.name, document)
        for path in manifest_files()
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


OBJECTS = load_objects()


def named(kind: str) -> dict[str, dict[str, Any]]:
    found = [document for _, document in OBJECTS if document["kind"] == kind]
    by_name = {document["metadata"]["name"]: document for document in found}
    assert len(by_name) == len(found), f"two {kind}s share a name"
    return by_name


def the(kind: str, name: str) -> dict[str, Any]:
    objects = named(kind)
    assert name in objects, f"no {kind} named {name}"
    return objects[name]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and Job."""
    for kind in ("Deployment", "Job"):
        for name, workload in named(kind).items():
            yield f"{kind}/{name}", workload["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def module_command(container: dict[str, Any]) -> tuple[str, list[str]] | None:
    command = [*container.get("command", []), *container.get("args", [])]
    if len(command) >= 3 and command[:2] == ["python", "-m"]:
        return command[2], command[3:]
    return None


def deployment_of(package: str) -> dict[str, Any]:
    """The Deployment whose main container runs `python -m <package>`."""
    found = [
        deployment
        for deployment in named("Deployment").values()
        if (command := module_command(main_container(deployment))) and command[0] == package
    ]
    assert len(found) == 1, f"{len(found)} Deployments run {package}"
    return found[0]


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in an `env` value: variables defined before it; `$$` is a literal `$`;
    an undefined reference stays as written."""
    return re.sub(
        r"\$\$|\$\((\w+)\)",
        lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]),
        value,
    )


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment the container gets: `envFrom` first, then `env` (which wins), as the kubelet builds it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = the("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            data = the("Secret", source["secretRef"]["name"])["stringData"]
        env.update({source.get("prefix", "") + key: str(value) for key, value in data.items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
            continue
        reference = item["valueFrom"]
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            data = the("Secret", ref["name"])["stringData"]
        else:
            ref = reference["configMapKeyRef"]
            data = the("ConfigMap", ref["name"])["data"]
        assert ref["key"] in data, f"{item['name']}: {ref['name']} has no key {ref['key']}"
        env[item["name"]] = str(data[ref["key"]])
    return env


def env_of(package: str) -> dict[str, str]:
    return container_env(main_container(deployment_of(package)))


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number, or the name of one of the container's ports) as a number."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return number


def build_app(package: str, settings: ServiceSettings) -> Sanic:
    """The service's app, built by its own factory (`<package>.app.create_*_app`) from these settings."""
    module = importlib.import_module(f"{package}.app")
    (factory,) = [
        value
        for name, value in vars(module).items()
        if re.fullmatch(r"create_\w+_app", name) and inspect.isfunction(value) and value.__module__ == module.__name__
    ]
    return factory(settings)


def app_paths(app: Sanic) -> set[str]:
    return {"/" + route.path.lstrip("/") for route in app.router.routes}


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """`loaded(package)`: the package's settings from the environment its Deployment gives it."""

    def load(package: str) -> ServiceSettings:
        return load_settings(settings_class(package), env_of(package), monkeypatch, tmp_path)

    return load


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (`100m`, `1`, `256Mi`, `1G`) as a number."""
    text = str(value)
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(suffixes.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def dockerfile_user() -> tuple[int, int]:
    (user,) = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


# ---------------------------------------------------------------------------------------------------- the files


@pytest.mark.parametrize(
    "manifest, document",
    OBJECTS,
    ids=[f"{name}:{document['kind']}/{document['metadata']['name']}" for name, document in OBJECTS],
)
def test_every_object_is_valid_against_the_kubernetes_schemas(manifest: str, document: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True) == "1.37"


def test_strict_validation_catches_what_a_cluster_would_refuse() -> None:
    """The validation above means something: a misspelt field and a wrong type are errors."""
    deployment = copy.deepcopy(next(iter(named("Deployment").values())))
    main_container(deployment)["readinesProbe"] = main_container(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(next(iter(named("Deployment").values())))
    main_container(deployment)["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_file() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "namespace", "resources", "images"}
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a file listed twice"
    assert sorted(resources) == sorted(path.name for path in manifest_files())
    # Its namespace is the one namespace.yaml creates, and no object names another.
    (namespace,) = named("Namespace")
    assert kustomization["namespace"] == namespace
    assert [d["metadata"]["name"] for _, d in OBJECTS if d["metadata"].get("namespace")] == []


def test_the_namespace_enforces_the_restricted_pod_security_profile() -> None:
    (namespace,) = named("Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_one_image_everywhere() -> None:
    images = {container["image"] for _, spec in pod_specs() for container in containers(spec)}
    assert images == {IMAGE}
    (entry,) = yaml.safe_load(KUSTOMIZATION.read_text())["images"]
    assert entry["name"] == IMAGE
    assert entry["newTag"] and entry["newTag"] != "latest", "pin the image's tag"
    assert all(
        container.get("imagePullPolicy") == "IfNotPresent" for _, spec in pod_specs() for container in containers(spec)
    )


def test_every_package_runs_as_a_deployment() -> None:
    packages = sorted(module_command(main_container(d))[0] for d in named("Deployment").values())
    assert packages == sorted(service.package for service in SERVICES)
    # Named after its package (Kubernetes names take no `_`), as JWKS_URL and the Ingress address it.
    for service in SERVICES:
        assert deployment_of(service.package)["metadata"]["name"] == service.package.replace("_", "-")


def test_every_command_module_exists() -> None:
    """Every `python -m X` (services, init containers, Jobs) names a module here; a package needs a `__main__.py`."""
    missing = []
    for workload, spec in pod_specs():
        for container in containers(spec):
            command = module_command(container)
            assert command is not None, f"{workload}/{container['name']}: not a `python -m` command"
            spec_ = importlib.util.find_spec(command[0])
            locations = spec_.submodule_search_locations if spec_ is not None else None
            if spec_ is None or (locations and not any((Path(p) / "__main__.py").is_file() for p in locations)):
                missing.append(f"{workload}/{container['name']}: python -m {command[0]}")
    assert missing == []


def test_every_reference_names_an_existing_key() -> None:
    """ConfigMaps and Secrets named by envFrom, env and volumes exist, with the keys asked for."""
    for _, spec in pod_specs():
        for container in containers(spec):
            container_env(container)  # asserts each key
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                secret = the("Secret", volume["secret"]["secretName"])
                assert {item["key"] for item in volume["secret"].get("items", [])} <= set(secret["stringData"])


def test_secrets_hold_only_placeholders() -> None:
    """Nothing real is committed: every value is a clearly marked placeholder, in stringData (no base64 `data`)."""
    for name, secret in named("Secret").items():
        assert "data" not in secret, name
        for key, value in secret["stringData"].items():
            assert PLACEHOLDER in value, f"{name}/{key} is not marked {PLACEHOLDER}"


# ---------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.package)
def test_each_service_gets_the_settings_it_needs(service, loaded) -> None:
    """As tests/compose: every variable the service needs (stack/services.py) and every setting whose default points
    at this machine (wrong in a pod) is set, fully expanded, not to a loopback address; the settings then load."""
    settings = settings_class(service.package)
    env = env_of(service.package)
    local_defaults = {
        variable(name, settings)
        for name, info in settings.model_fields.items()
        if info.is_required() or any(host in str(info.default) for host in LOOPBACK)
    }
    required = {*service.needs, *local_defaults, "HOST", "PORT"}
    assert sorted(required - set(env)) == []
    assert [key for key in required if any(host in env[key] for host in LOOPBACK)] == []
    assert [key for key in required if "$(" in env[key]] == [], "a $(VAR) reference that does not expand"

    values = loaded(service.package)
    assert values.host == "0.0.0.0"
    assert values.port == container_port(main_container(deployment_of(service.package)), "http")
    assert values.log_json is True


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.package)
def test_each_app_builds_from_its_settings_and_serves_its_probes_and_routes(service, loaded) -> None:
    """The app factory takes the settings the manifests give (the relay parses its URLs there), and the app serves
    the probes' paths and a route under each prefix the Ingress sends it."""
    settings = loaded(service.package)
    if service.package == "user_svc":
        # The key file exists only in the pod; JWT_PRIVATE_KEY (which wins over the file) stands in for it.
        settings = settings.model_copy(update={"jwt_private_key": SecretStr(generate_private_key_pem().decode())})
    app = build_app(service.package, settings)
    paths = app_paths(app)
    container = main_container(deployment_of(service.package))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in paths, probe
    for prefix in service.routes:
        assert any(path == prefix or path.startswith(prefix + "/") for path in paths), prefix


def test_probes_ask_health_for_liveness_and_ready_for_readiness_on_the_service_port(loaded) -> None:
    for service in SERVICES:
        container = main_container(deployment_of(service.package))
        port = loaded(service.package).port
        assert container["livenessProbe"]["httpGet"]["path"] == "/health", service.package
        assert container["startupProbe"]["httpGet"]["path"] == "/health", service.package
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready", service.package
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container_port(container, container[probe]["httpGet"]["port"]) == port, (service.package, probe)


def test_the_user_service_reads_the_signing_key_from_its_secret(loaded) -> None:
    deployment = deployment_of("user_svc")
    key_file = PurePosixPath(str(loaded("user_svc").jwt_private_key_file))
    (mount,) = [m for m in main_container(deployment)["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    (item,) = volume["secret"]["items"]
    assert item["path"] == key_file.name
    assert item["key"] in the("Secret", volume["secret"]["secretName"])["stringData"]
    # Readable by the process: group-readable, the pod's fsGroup being the process's group, nobody else.
    assert volume["secret"]["defaultMode"] == 0o440
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["fsGroup"] == pod["runAsGroup"]
    # The key reaches user_svc alone.
    for service in SERVICES:
        if service.package != "user_svc":
            specs = deployment_of(service.package)["spec"]["template"]["spec"].get("volumes", [])
            assert all("secret" not in v for v in specs), service.package


def test_each_process_gets_only_its_own_credentials() -> None:
    """Least privilege: a service sees only its own database URL (the relay and operations, which read every
    outbox, see all)."""
    for service in SERVICES:
        if OUTBOX_DATABASES in service.needs:
            continue
        given = {key for key in env_of(service.package) if key in DATABASES or key == MONGO}
        assert given == {key for key in service.needs if key in DATABASES or key == MONGO}, service.package
    for _, spec in pod_specs():
        for container in containers(spec):
            assert all("secretRef" not in source for source in container.get("envFrom", [])), container["name"]


def test_database_urls_point_at_each_services_database() -> None:
    for service in SERVICES:
        for key, value in env_of(service.package).items():
            if key in DATABASES:
                url = urlsplit(value)
                assert url.scheme == "postgres" and url.hostname and url.port == 5432, (service.package, key)
                assert url.path == f"/{DATABASES[key]}", (service.package, key)


def test_the_relay_drains_every_outbox(loaded) -> None:
    relay = loaded("outbox_relay")
    service_databases = {
        value
        for service in SERVICES
        if service.package != "outbox_relay"
        for key, value in env_of(service.package).items()
        if key in DATABASES
    }
    assert sorted(relay.database_urls()) == sorted(service_databases)
    assert len(service_databases) == len(DATABASES)

    catalog = env_of("catalog_svc")
    catalog_database = catalog.get("CATALOG_DATABASE", CATALOG_MONGO_DATABASE)
    outbox_mongo, catalog_mongo = urlsplit(relay.outbox_mongo_url), urlsplit(catalog[MONGO])
    assert outbox_mongo.path == f"/{catalog_database}"
    assert (outbox_mongo.netloc, outbox_mongo.query) == (catalog_mongo.netloc, catalog_mongo.query)
    # catalog_svc's transactions need a replica set; its user is found where authSource says, for both URLs.
    assert "replicaSet=" in catalog_mongo.query and "authSource=" in catalog_mongo.query


def test_jwks_url_reaches_user_svc() -> None:
    user_svc = next(service for service in SERVICES if service.package == "user_svc")
    service = the("Service", deployment_of("user_svc")["metadata"]["name"])
    (port,) = service["spec"]["ports"]
    for package in (s.package for s in SERVICES):
        url = urlsplit(env_of(package)["JWKS_URL"])
        assert (url.hostname, url.port) == (service["metadata"]["name"], port["port"]), package
        assert any(url.path.startswith(prefix + "/") for prefix in user_svc.prefixes), package


def test_kafka_clients_share_one_broker_address() -> None:
    addresses = {container_env(container).get(KAFKA) for _, spec in pod_specs() for container in containers(spec)}
    assert len(addresses) == 1 and None not in addresses
    (address,) = addresses
    assert not any(host in address for host in LOOPBACK)


def test_topics_exist_before_any_process_uses_the_broker() -> None:
    """The create-topics Job, and an init container in every Deployment (aiokafka's metadata requests would have
    the broker auto-create a missing topic with its own partition count)."""
    jobs = [module_command(job["spec"]["template"]["spec"]["containers"][0]) for job in named("Job").values()]
    assert any(command and command[0] == "common" and command[1][:1] == ["create-topics"] for command in jobs)
    for name, deployment in named("Deployment").items():
        init = [module_command(c) for c in deployment["spec"]["template"]["spec"].get("initContainers", [])]
        assert any(command and command[1][:1] == ["create-topics"] for command in init), name
    # `create-topics` with no topic list creates ensure_topics' default: ALL_TOPICS.
    assert inspect.signature(ensure_topics).parameters["topics"].default == ALL_TOPICS


# ---------------------------------------------------------------------------------------------------- pods


@pytest.mark.parametrize("workload, spec", list(pod_specs()), ids=[name for name, _ in pod_specs()])
def test_pods_run_unprivileged_as_the_images_user(workload: str, spec: dict[str, Any]) -> None:
    uid, gid = dockerfile_user()
    pod = spec["securityContext"]
    assert (pod["runAsNonRoot"], pod["runAsUser"], pod["runAsGroup"]) == (True, uid, gid)
    assert spec.get("automountServiceAccountToken") is False
    assert spec.get("enableServiceLinks") is False  # no injected *_PORT variables to shadow a setting
    for container in containers(spec):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert context.get("runAsUser", uid) != 0 and context.get("privileged") is not True, container["name"]
        seccomp = context.get("seccompProfile", pod.get("seccompProfile"))
        assert seccomp == {"type": "RuntimeDefault"}, container["name"]


@pytest.mark.parametrize("workload, spec", list(pod_specs()), ids=[name for name, _ in pod_specs()])
def test_every_container_has_requests_and_limits(workload: str, spec: dict[str, Any]) -> None:
    for container in containers(spec):
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request, limit = resources["requests"][resource], resources["limits"][resource]
            assert 0 < quantity(request) <= quantity(limit), (container["name"], resource)


def test_services_write_only_to_an_empty_dir_tmp() -> None:
    for name, deployment in named("Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        (tmp,) = [m for m in main_container(deployment)["volumeMounts"] if m["mountPath"] == "/tmp"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == tmp["name"]]
        assert "emptyDir" in volume, name


def test_selectors_match_their_pods() -> None:
    """Each Deployment, Service, PodDisruptionBudget and spread constraint selects the pods it is meant for."""
    for name, deployment in named("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
        for constraint in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
            assert constraint["labelSelector"]["matchLabels"] == selector, name
        assert the("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"] == selector
        assert the("Service", name)["spec"]["selector"] == selector
    assert set(named("Service")) == set(named("Deployment")) == set(named("PodDisruptionBudget"))


def test_services_reach_the_containers_http_port() -> None:
    for name, service in named("Service").items():
        (port,) = service["spec"]["ports"]
        assert container_port(main_container(the("Deployment", name)), port["targetPort"]) == 8000, name


# ---------------------------------------------------------------------------------------------------- scaling


def test_http_services_scale_on_cpu_and_the_relay_runs_two() -> None:
    # operations, a low-traffic admin API, runs a fixed two (operations.yaml says why).
    http_services = {deployment_of(s.package)["metadata"]["name"] for s in SERVICES if s.prefixes} - {"operations"}
    autoscalers = named("HorizontalPodAutoscaler")
    assert set(autoscalers) == http_services
    for name, autoscaler in autoscalers.items():
        spec = autoscaler["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        (metric,) = spec["metrics"]
        assert (metric["type"], metric["resource"]["name"]) == ("Resource", "cpu")
        assert 2 <= spec["minReplicas"] <= spec["maxReplicas"], name
        # The autoscaler owns the count: a `replicas` in the Deployment would reset it on every apply.
        assert "replicas" not in the("Deployment", name)["spec"], name
        # Utilization is a share of the CPU request, which every container of the pod must have.
        pod = the("Deployment", name)["spec"]["template"]["spec"]
        assert all("cpu" in c["resources"]["requests"] for c in pod["containers"]), name
    for name, deployment in named("Deployment").items():
        if name not in autoscalers:
            assert deployment["spec"]["replicas"] >= 2, name


def test_consumers_scale_no_further_than_the_partitions() -> None:
    """A consumer group gives each member whole partitions: replicas past PARTITIONS would consume nothing."""
    for package in ("stock_svc", "order_svc", "saga"):
        name = deployment_of(package)["metadata"]["name"]
        assert the("HorizontalPodAutoscaler", name)["spec"]["maxReplicas"] <= PARTITIONS, package


def test_disruption_budgets_let_a_drain_proceed_one_pod_at_a_time() -> None:
    for name, budget in named("PodDisruptionBudget").items():
        assert budget["spec"].get("maxUnavailable") == 1, name
        assert "minAvailable" not in budget["spec"], name


# ---------------------------------------------------------------------------------------------------- ingress


def ingress_paths() -> list[dict[str, Any]]:
    (ingress,) = named("Ingress").values()
    assert ingress["spec"]["ingressClassName"] == "nginx"
    return [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]


def matches(path: dict[str, Any], request: str) -> bool:
    """Whether an Ingress path matches a request path: Exact; Prefix element by element (the Ingress API's rule);
    ImplementationSpecific as NGINX controllers read it without regexes, a plain string prefix."""
    if path["pathType"] == "Exact":
        return request == path["path"]
    if path["pathType"] == "Prefix":
        elements = [e for e in path["path"].split("/") if e]
        return [e for e in request.split("/") if e][: len(elements)] == elements
    return request.startswith(path["path"])


def routed_to(request: str) -> str | None:
    """The Service a request goes to: the longest matching path wins, Exact before Prefix."""
    found = [p for p in ingress_paths() if matches(p, request)]
    if not found:
        return None
    best = max(found, key=lambda p: (len(p["path"]), p["pathType"] == "Exact"))
    return best["backend"]["service"]["name"]


@pytest.mark.parametrize(
    "prefix, package", [(prefix, service.package) for service in SERVICES for prefix in service.routes]
)
def test_the_ingress_routes_every_prefix_to_its_service(prefix: str, package: str) -> None:
    service = deployment_of(package)["metadata"]["name"]
    for request in (prefix, f"{prefix}/", f"{prefix}/some/thing"):
        assert routed_to(request) == service, request
    (path,) = [p for p in ingress_paths() if p["path"] == prefix]
    if path["pathType"] == "Prefix":
        assert routed_to(f"{prefix}x") is None  # whole path segments only, as the other gateways


def test_the_ingress_routes_nothing_else() -> None:
    """Only the prefixes of stack/services.py; `/` stays free for the saga console; backends exist."""
    assert sorted(p["path"] for p in ingress_paths()) == sorted(p for s in SERVICES for p in s.routes)
    for request in ("/", "/api/v1/unknown", "/api/v1/docs", "/health"):
        assert routed_to(request) is None, request
    for path in ingress_paths():
        backend = path["backend"]["service"]
        service = the("Service", backend["name"])
        assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_ingress_paths_pass_ingress_nginxs_strict_path_validation() -> None:
    """ingress-nginx refuses an Exact or Prefix path outside [A-Za-z0-9_-/] (strict-validate-path-type, on by
    default): such a path (/api/v1/.well-known) must be ImplementationSpecific, which it takes as a prefix."""
    for path in ingress_paths():
        if path["pathType"] in ("Exact", "Prefix"):
            assert STRICT_PATH.match(path["path"]), path["path"]
        else:
            assert path["pathType"] == "ImplementationSpecific" and not STRICT_PATH.match(path["path"]), path["path"]
            assert not re.search(r"[\^$()*+?\[\]{}|\\]", path["path"]), "a plain prefix, not a regex"
