"""The relay's process with faults composed in from outside, for the failure tests (the relay itself carries no
fault hooks): `python -m tests.faulty_relay`, configured as `python -m outbox_relay` is, plus

- FAULT_KILL_AFTER_PUBLISH=N: SIGKILL itself right after its N-th publication, acknowledged by the broker and not
  yet marked published (those events go out again after a restart);
- FAULT_PUBLISH_COPIES=N: publish every batch N times in a row, as relays that crash between publishing and marking
  would (at-least-once delivery's duplicates, interleaved).
"""

import logging
import os
import signal

from common.service import run
from outbox_relay.app import create_relay_app
from outbox_relay.publisher import Publisher, PublishResult
from outbox_relay.records import OutboxRecord
from outbox_relay.settings import RelaySettings

log = logging.getLogger(__name__)


class FaultyPublisher(Publisher):
    def __init__(self, bootstrap_servers: str, kill_after_publish: int = 0, publish_copies: int = 1) -> None:
        super().__init__(bootstrap_servers)
        self.kill_after_publish = kill_after_publish
        self.publish_copies = publish_copies
        self._publications = 0

    async def publish(self, records: list[OutboxRecord]) -> PublishResult:
        result = await super().publish(records)
        for _ in range(self.publish_copies - 1):
            log.warning("fault injection: publishing %d records again", len(result.published))
            await super().publish(result.published)
        self._publications += 1
        if self._publications == self.kill_after_publish:
            log.error("fault injection: SIGKILL after publishing, before marking published")
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def main() -> None:
    settings = RelaySettings()
    publisher = FaultyPublisher(
        settings.kafka_bootstrap_servers,
        kill_after_publish=int(os.environ.get("FAULT_KILL_AFTER_PUBLISH", "0")),
        publish_copies=int(os.environ.get("FAULT_PUBLISH_COPIES", "1")),
    )
    run(create_relay_app(settings, publisher), settings)


if __name__ == "__main__":
    main()
