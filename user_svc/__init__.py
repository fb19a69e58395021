"""user_svc: users, addresses, roles, sign-in with RS256 access tokens and rotated refresh tokens."""
