"""Apache Kafka nodes for the local stack, the tests and the benchmarks: KRaft mode, every node both broker and
controller, on 127.0.0.1 and free ports, their data in one directory that a later start finds again (topics,
messages, consumer offsets).

    nodes = prepare_cluster(DATA_DIR / "kafka", brokers=1)   # formatted the first time, configured every time
    for node in nodes: start node.command (it listens on node.port)
    bootstrap_servers(nodes)                                  # "127.0.0.1:40123"

The directory holds `cluster.json` (the cluster id and its size), and per node `node-<id>.properties` and its log
directory `node-<id>/`. Ports are chosen anew at every start: the controllers find each other through
`controller.quorum.voters`, which every node is given afresh, and brokers register their new address.
"""

import functools
import json
import os
import re
import shutil
import subprocess
import uuid
from base64 import urlsafe_b64encode
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from common.topics import min_in_sync_replicas, replication_factor
from stack.infra import ServerProcess, free_port
from stack.kafka.jars import HERE, MissingTool, broker_classpath

LOGGING = HERE / "log4j2.properties"
MINIMUM_JAVA = 17  # Kafka 4's brokers run on Java 17 and newer
DEFAULT_HEAP = "512m"


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    port: int  # the PLAINTEXT listener, which clients and the other brokers use
    controller_port: int
    command: list[str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_cluster(directory: Path, log_dir: Path, brokers: int = 1) -> tuple[list[ServerProcess], str]:
    """The cluster kept in `directory` started, for tests and benchmarks: its processes (named `broker` or
    `broker.<id>`, logs in `log_dir`) and its bootstrap servers. The nodes start side by side: a controller
    quorum forms only once a majority runs."""
    nodes = prepare_cluster(directory, brokers)
    processes = [
        ServerProcess(name, node.command, node.port, log_dir / f"{name}.log")
        for node in nodes
        for name in [process_name(node, len(nodes))]
    ]
    with ThreadPoolExecutor(len(processes)) as pool:
        starts = [pool.submit(process.start, 60.0) for process in processes]
    try:
        for start in starts:
            start.result()
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return processes, bootstrap_servers(nodes)


def process_name(node: KafkaNode, brokers: int) -> str:
    """`broker` alone, `broker.1` to `broker.3` in a cluster of three (processes and log files)."""
    return "broker" if brokers == 1 else f"broker.{node.node_id}"


def bootstrap_servers(nodes: list[KafkaNode]) -> str:
    return ",".join(node.address for node in nodes)


def prepare_cluster(directory: Path, brokers: int = 1, heap: str = DEFAULT_HEAP) -> list[KafkaNode]:
    """The nodes of the cluster kept in `directory`, configured on free ports and formatted if they are new.
    Starts nothing."""
    require_tools()
    classpath = broker_classpath()
    directory.mkdir(parents=True, exist_ok=True)
    cluster_id = _cluster_id(directory, brokers)
    ports = [(free_port(), free_port()) for _ in range(brokers)]
    voters = ",".join(f"{number}@127.0.0.1:{controller}" for number, (_, controller) in enumerate(ports, 1))
    nodes: list[KafkaNode] = []
    for number, (port, controller_port) in enumerate(ports, 1):
        properties = directory / f"node-{number}.properties"
        properties.write_text(_server_properties(number, port, controller_port, voters, directory, brokers))
        nodes.append(KafkaNode(number, port, controller_port, _start_command(properties, classpath, heap)))
    unformatted = [node for node in nodes if not (directory / f"node-{node.node_id}" / "meta.properties").exists()]
    with ThreadPoolExecutor(max(len(unformatted), 1)) as pool:  # one JVM each: side by side
        list(pool.map(lambda node: _format(directory, node, cluster_id, classpath), unformatted))
    return nodes


def _cluster_id(directory: Path, brokers: int) -> str:
    """The cluster's id (16 random bytes, base64url: Kafka's format), made once; a cluster keeps its size."""
    description = directory / "cluster.json"
    if description.exists():
        known = json.loads(description.read_text())
        if known["brokers"] != brokers:
            raise RuntimeError(
                f"{directory} holds a Kafka cluster of {known['brokers']} broker(s), not {brokers}: keep "
                f"KAFKA_BROKERS={known['brokers']}, or remove {directory} (its topics and messages) to start anew"
            )
        return known["cluster_id"]
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: a leading "-" reads as an option on the CLI
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    temporary = description.with_suffix(".tmp")
    temporary.write_text(json.dumps({"cluster_id": cluster_id, "brokers": brokers}) + "\n")
    temporary.replace(description)
    return cluster_id


def _server_properties(number: int, port: int, controller_port: int, voters: str, directory: Path, brokers: int) -> str:
    replicas = replication_factor(brokers)
    in_sync = min_in_sync_replicas(replicas)
    settings = {
        "process.roles": "broker,controller",
        "node.id": number,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": directory / f"node-{number}",
        # Topics are created explicitly, with the project's partition count (`python -m common create-topics`).
        "auto.create.topics.enable": "false",
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 4,  # Kafka's 50 make the first group join take seconds
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "group.initial.rebalance.delay.ms": 0,  # a consumer group forms as soon as its members ask
        # The active controller appends a no-op record to the metadata log this often (500 ms by default, for the
        # health metrics of a quorum: KIP-835); each costs a log append and the brokers' metadata update at rest.
        "metadata.max.idle.interval.ms": 5000,
        # Threads for a laptop's few cores (Kafka's defaults are sized for a server's): each idle request handler
        # still wakes three times a second.
        "num.io.threads": 2,
        "num.network.threads": 2,
        "group.coordinator.threads": 1,
        "unclean.leader.election.enable": "false",
    }
    return "".join(f"{name}={value}\n" for name, value in settings.items())


def _start_command(properties: Path, classpath: str, heap: str) -> list[str]:
    return [
        java_binary(),
        f"-Xmx{heap}",
        "-Xms64m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",  # as Kafka's own start script
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOGGING}",
        "-Dlog4j2.shutdownHookEnabled=false",  # Kafka's own hook stops it; log4j's would log a warning at each stop
        "-cp",
        classpath,
        "kafka.Kafka",
        str(properties),
    ]


def _format(directory: Path, node: KafkaNode, cluster_id: str, classpath: str) -> None:
    properties = directory / f"node-{node.node_id}.properties"
    done = subprocess.run(
        [
            java_binary(),
            f"-Dlog4j2.configurationFile={LOGGING}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(properties),
            "--ignore-formatted",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"formatting Kafka node {node.node_id} in {directory} failed:\n{done.stdout}{done.stderr}")


def require_tools() -> None:
    """Java 17+, and the broker's jars (fetched with Maven the first time): raises MissingTool naming what to
    install, before anything is written or started."""
    java_binary()
    broker_classpath()


@functools.cache
def java_binary() -> str:
    """$JAVA_HOME/bin/java, else `java` on the PATH; it must be Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    advice = f"install a Java runtime: apt-get install openjdk-{MINIMUM_JAVA}-jre-headless (or set JAVA_HOME)"
    if java is None or not Path(java).exists():
        raise MissingTool(f"the local Kafka broker needs Java {MINIMUM_JAVA} or newer, and none was found: {advice}")
    shown = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    major = 0 if found is None else int(found[2] if found[1] == "1" else found[1])  # "1.8.0" is Java 8
    if major < MINIMUM_JAVA:
        raise MissingTool(f"the local Kafka broker needs Java {MINIMUM_JAVA} or newer; {java} is {major}: {advice}")
    return java
