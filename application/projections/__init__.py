"""The read side (docs/architecture.md): ``follower`` (any view), ``rows`` and ``views``
(the organization views and their SQL), ``read_model`` (one reader per view),
``view_cache`` (the optional NOTIFY-fed adapter), ``rebuild`` (rebuild and compare)."""
