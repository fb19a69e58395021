"""Mechanics shared by every service: settings, database, outbox, tokens, errors, logging.

A service package imports from here and never from another service's package.
"""
