"""Apache Kafka 4 as the local broker: its jars (jars.py, pinned by pom.xml and jars.sha256) and its nodes
(nodes.py: configuration, storage formatting, the command that starts each)."""
