"""The saga service's frame: the body limit and metrics every service shares."""

from tests.support import assert_refuses_bodies_over_the_limit


async def test_a_body_over_the_limit_is_a_json_413(client):
    await assert_refuses_bodies_over_the_limit(client, "/api/v1/sagas/00000000-0000-0000-0000-000000000000/retry")
