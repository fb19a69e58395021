"""The local stack: real PostgreSQL, Kafka-protocol broker and MongoDB-wire servers, the services and a gateway."""
