"""The read side (docs/architecture.md): ``tracking`` (the one shape of a view),
``follower`` (runs any view), ``rows`` and ``views`` (the organization views and their
SQL), ``read_model`` (one reader per view), ``view_cache`` (the optional NOTIFY-fed
adapter), ``rebuild`` (rebuild and compare any view)."""
