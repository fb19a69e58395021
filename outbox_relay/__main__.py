"""`python -m outbox_relay` serves; `replay --since T` and `dead-letters [--redrive [ID]]` are operator commands."""

import argparse
import asyncio
import json
from datetime import datetime

from common.service import run
from outbox_relay.app import create_relay_app
from outbox_relay.outboxes import outbox_stores
from outbox_relay.settings import RelaySettings


async def replay(settings: RelaySettings, since: datetime) -> None:
    for outbox in outbox_stores(settings):
        await outbox.open()
        try:
            print(f"{outbox.name}: {await outbox.replay(since)} events will be published again")
        finally:
            await outbox.close()


async def dead_letters(settings: RelaySettings, redrive: str | None) -> None:
    for outbox in outbox_stores(settings):
        await outbox.open()
        try:
            if redrive is None:
                for letter in await outbox.dead_letters(limit=10_000):
                    print(json.dumps(letter, default=str))
            else:
                count = await outbox.redrive(None if redrive == "all" else redrive)
                print(f"{outbox.name}: {count} dead letters moved back to the outbox")
        finally:
            await outbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="outbox_relay", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="drain the outboxes (the default)")
    replay_parser = commands.add_parser("replay", help="publish again the events published since a time")
    replay_parser.add_argument("--since", required=True, type=datetime.fromisoformat, help="ISO 8601, with zone")
    letters_parser = commands.add_parser("dead-letters", help="list dead letters, or re-drive them")
    letters_parser.add_argument("--redrive", metavar="EVENT_ID|all", help="move back into the outbox")
    arguments = parser.parse_args()

    settings = RelaySettings()
    if arguments.command == "replay":
        asyncio.run(replay(settings, arguments.since))
    elif arguments.command == "dead-letters":
        asyncio.run(dead_letters(settings, arguments.redrive))
    else:
        run(create_relay_app(settings), settings)


main()
