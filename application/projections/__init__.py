"""The read side: projections of the event log into materialised views.

- :mod:`~application.projections.rows` — the row every view is derived from, and the fold;
- :mod:`~application.projections.views` — the views' interface and in-memory store;
- :mod:`~application.projections.sql_views` — the views on SQLite and PostgreSQL;
- :mod:`~application.projections.projection` — the projection and the log follower;
- :mod:`~application.projections.read_model` — what the API reads, read-your-writes;
- :mod:`~application.projections.rebuild` — rebuild from the log, compare, swap.
"""
