"""The outboxes named by the settings: a PostgreSQL one per database in OUTBOX_DATABASE_URLS, and the MongoDB one of
OUTBOX_MONGO_URL. The relay drains them; operators (the operations service, the CLI) read and repair them through
the store classes, which open no listener, change stream or lease."""

import asyncpg
from pymongo.errors import PyMongoError

from common.settings import OutboxSettings
from outbox_relay.mongo_outbox import MongoOutbox, MongoOutboxStore
from outbox_relay.postgres_outbox import PostgresOutbox, PostgresOutboxStore

OutboxStore = PostgresOutboxStore | MongoOutboxStore

# A store failing (PostgreSQL or MongoDB down, a database not created yet). asyncpg raises InternalClientError
# ("another operation is in progress") for a pooled connection that PostgreSQL terminated in the middle of an
# operation, as it does when it shuts down.
STORE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, PyMongoError)


def outbox_stores(settings: OutboxSettings) -> list[OutboxStore]:
    stores: list[OutboxStore] = [PostgresOutboxStore(url) for url in settings.database_urls()]
    if settings.outbox_mongo_url:
        stores.append(MongoOutboxStore(settings.outbox_mongo_url))
    return stores


def drained_outboxes(settings: OutboxSettings) -> list[PostgresOutbox | MongoOutbox]:
    outboxes: list[PostgresOutbox | MongoOutbox] = [PostgresOutbox(url) for url in settings.database_urls()]
    if settings.outbox_mongo_url:
        outboxes.append(MongoOutbox(settings.outbox_mongo_url))
    return outboxes
