"""The whole seed guide, 1.1 to 6.5, through the gateway, with two accounts (DESIGN §9)."""

import asyncio

import httpx

from demo.walkthrough import Walkthrough


async def test_the_seed_guide_passes_end_to_end(cluster):
    def walk() -> None:
        with httpx.Client(base_url=cluster.api, timeout=30) as client:
            Walkthrough(client, "admin@example.com", "Admin12345", say=lambda _: None, settle_timeout=30).run()

    await asyncio.to_thread(walk)
