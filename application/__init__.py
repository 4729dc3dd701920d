"""The application layer: commands and queries over the Organization aggregate,
the ports (payment gateway, idempotency store, clock) and their adapters, and
the persistence settings read from ``SUITE_DATABASE_URL``."""
