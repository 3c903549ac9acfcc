"""Shared infrastructure: database base classes, Redis, queues, mail transports, accounts, CLI."""
