"""outbox_relay: drains every service's outbox into Kafka, in order per aggregate, at least once."""
