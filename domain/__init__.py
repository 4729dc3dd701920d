"""The Suite Subscriptions domain: the organization aggregate, its events and rules.

Pure Python plus ``eventsourcing.domain``: nothing here reads the wall clock,
touches storage or knows about HTTP.
"""
