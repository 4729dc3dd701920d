"""The read side: projections of the event log into materialised views.

- :mod:`~application.projections.follower` — the one follower of the log, for any view
  (public: new read models reuse it);
- :mod:`~application.projections.rows` — the organization row and the fold;
- :mod:`~application.projections.views` — the organization views, their projection,
  the in-memory store; :mod:`~application.projections.sql_views` — SQLite and PostgreSQL;
- :mod:`~application.projections.read_model` — one reader per view, read-your-writes;
- :mod:`~application.projections.view_cache` — the optional NOTIFY-fed cache adapter;
- :mod:`~application.projections.rebuild` — rebuild from the log, compare, swap.
"""
