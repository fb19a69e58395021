"""`make demo` / `python -m demo`: the seed walk-through against a running system.

BASE_URL (default http://localhost:8080) is where the gateway answers; ADMIN_EMAIL and ADMIN_PASSWORD are the
first admin's, as the system was started with them (the local stack's defaults otherwise).
"""

import os
import sys

import httpx

from demo.walkthrough import Mismatch, Walkthrough


def main() -> int:
    base_url = os.environ.get("BASE_URL", "http://localhost:8080").rstrip("/")
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=30) as client:
        walk = Walkthrough(
            client,
            admin_email=os.environ.get("ADMIN_EMAIL", "admin@example.com"),
            admin_password=os.environ.get("ADMIN_PASSWORD", "Admin12345"),
        )
        try:
            walk.run()
        except Mismatch as mismatch:
            print(f"\nMISMATCH: {mismatch}", file=sys.stderr)
            return 1
        except httpx.HTTPError as error:
            print(f"\nCannot reach the system at {base_url}: {error}. Is `make run` running?", file=sys.stderr)
            return 2
    return 0


sys.exit(main())
