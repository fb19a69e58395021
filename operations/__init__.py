"""The operations service: what an operator asks of an outbox-and-saga system (is anything waiting to be published,
is any consumer behind, what failed for good) answered over /api/v1/operations for admins, with the dead letters'
re-drive. It runs apart from the relay, so that a relay stalled or stopped does not take the page down with it."""
