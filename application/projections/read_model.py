"""The read side the API and the CLI use: access views, the directory, view lag.

Who keeps the views current is a setting (``SUITE_VIEW_FOLLOWER``):

- ``api`` (default on ``memory://`` and SQLite): every read first applies
  whatever the log has that the views have not (usually nothing: two indexed
  look-ups), so the API keeps its views current by itself however many
  gunicorn workers run, with no other process;
- ``worker`` (default on PostgreSQL): ``suitesub worker`` follows the log
  and the API only reads; ``min_position`` waits for the worker.

``min_position`` (read-your-writes) waits at most ``SUITE_MIN_POSITION_TIMEOUT``
seconds (default 2) and then refuses with ``view_not_caught_up`` (HTTP 503,
``Retry-After``): a caller never gets an older view than it asked for. A
position beyond the log's end is refused at once (422
``min_position_ahead_of_log``).

On PostgreSQL with a worker, each process keeps the access rows it read in
a :class:`~application.projections.view_cache.ViewCache`, evicted by the
views' own ``NOTIFY`` (``SUITE_VIEW_CACHE``, default ``on`` there, ``off``
to read every row from the database; ``SUITE_VIEW_CACHE_TTL``, seconds): a
cached row is served only if the views are known to have reached
``min_position``; otherwise the read goes to the database as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory
from psycopg.sql import SQL, Identifier

from application.errors import OrganizationNotFound, ViewNotCaughtUp
from application.event_stream import select_organization_notifications
from application.projections.access_reads import (
    AccessRead,
    AccessReader,
    PostgresAccessReader,
    SQLiteAccessReader,
)
from application.projections.projection import ViewFollower
from application.projections.rows import OrganizationRow
from application.projections.sql_views import PostgresOrganizationViews, SQLiteOrganizationViews
from application.projections.view_cache import DEFAULT_TTL, ViewCache, channel_name
from application.projections.views import (
    DIRECTORY_STATES,
    UPSTREAM,
    MemoryOrganizationViews,
    OrganizationViews,
)
from application.schema import schema_lock
from application.settings import SettingsError
from domain.access_view import access_view
from domain.catalog import Catalog
from domain.clock import Clock
from domain.errors import InvalidRequest

LIVE_PREFIX = "views"
DEFAULT_MIN_POSITION_TIMEOUT = 2.0
MAX_DIRECTORY_PAGE = 500


@dataclass(frozen=True, slots=True)
class ViewSettings:
    #: The API applies pending events itself before reading (else a worker does).
    follow_on_read: bool
    #: How long ``min_position`` waits before answering ``view_not_caught_up``.
    min_position_timeout: float
    #: Keep read access rows in the process, evicted by the views' NOTIFY
    #: (PostgreSQL with a worker only).
    view_cache: bool = False
    #: Seconds a cached row may be served at most (a safety net, not the mechanism).
    view_cache_ttl: float = DEFAULT_TTL

    @classmethod
    def from_env(cls, store_kind: str, env: dict[str, str] | None = None) -> ViewSettings:
        env = dict(os.environ if env is None else env)
        follower = env.get("SUITE_VIEW_FOLLOWER") or (
            "worker" if store_kind == "postgres" else "api"
        )
        if follower not in ("api", "worker"):
            msg = f"SUITE_VIEW_FOLLOWER {follower!r}: expected 'api' or 'worker'"
            raise SettingsError(msg)
        if store_kind == "memory" and follower == "worker":
            msg = "SUITE_VIEW_FOLLOWER=worker needs a shared store (SQLite or PostgreSQL)"
            raise SettingsError(msg)
        raw_timeout = env.get("SUITE_MIN_POSITION_TIMEOUT") or str(DEFAULT_MIN_POSITION_TIMEOUT)
        try:
            timeout = float(raw_timeout)
        except ValueError:
            msg = f"SUITE_MIN_POSITION_TIMEOUT {raw_timeout!r} is not a number of seconds"
            raise SettingsError(msg) from None
        cache = (env.get("SUITE_VIEW_CACHE") or "on").lower()
        if cache not in ("on", "off"):
            msg = f"SUITE_VIEW_CACHE {cache!r}: expected 'on' or 'off'"
            raise SettingsError(msg)
        raw_ttl = env.get("SUITE_VIEW_CACHE_TTL") or str(DEFAULT_TTL)
        try:
            ttl = float(raw_ttl)
        except ValueError:
            msg = f"SUITE_VIEW_CACHE_TTL {raw_ttl!r} is not a number of seconds"
            raise SettingsError(msg) from None
        return cls(
            follow_on_read=follower == "api",
            min_position_timeout=max(timeout, 0.0),
            view_cache=cache == "on" and follower == "worker" and store_kind == "postgres",
            view_cache_ttl=max(ttl, 0.0),
        )


def construct_views(app: Application[Any], prefix: str = LIVE_PREFIX) -> OrganizationViews:
    """The views on the application's own store, tables created if missing."""
    factory = app.factory
    views: OrganizationViews
    if isinstance(factory, SQLiteFactory):
        views = SQLiteOrganizationViews(factory.datastore, prefix)
    elif isinstance(factory, PostgresFactory):
        views = PostgresOrganizationViews(factory.datastore, prefix)
    else:
        return MemoryOrganizationViews(prefix)
    with schema_lock(app.env):
        views.create_table()
    return views


def access_reader(app: Application[Any], views: OrganizationViews) -> AccessReader:
    """The one-statement reader when the views share the log's database."""
    recorder = app.recorder
    if (
        isinstance(views, SQLiteOrganizationViews)
        and isinstance(recorder, SQLiteApplicationRecorder)
        and views.datastore is recorder.datastore
    ):
        return SQLiteAccessReader(app, views, views.datastore, views.prefix)
    if (
        isinstance(views, PostgresOrganizationViews)
        and isinstance(recorder, PostgresApplicationRecorder)
        and views.datastore is recorder.datastore
    ):
        return PostgresAccessReader(app, views, views.datastore, views.prefix)
    return AccessReader(app, views)


def construct_view_cache(views: OrganizationViews, settings: ViewSettings) -> ViewCache | None:
    """The process's cache of access rows, when the settings and the store allow one."""
    if not settings.view_cache or not isinstance(views, PostgresOrganizationViews):
        return None
    if settings.follow_on_read:
        return None  # no worker announces the views' changes
    kwargs: dict[str, Any] = dict(cast(dict[str, Any], views.datastore.pool.kwargs))
    kwargs.pop("row_factory", None)
    position_statement = SQL(
        "SELECT notification_id FROM {0}.{1} WHERE application_name = %s"
    ).format(Identifier(views.datastore.schema), Identifier(f"{views.prefix}_tracking"))

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(**kwargs, autocommit=True)

    def read_position(connection: psycopg.Connection[Any]) -> int:
        found = connection.execute(position_statement, (UPSTREAM,)).fetchone()
        return int(found[0]) if found else 0

    return ViewCache(
        connect,
        channel_name(views.prefix, views.datastore.schema),
        read_position,
        ttl=settings.view_cache_ttl,
    )


class ReadModel:
    """Access views and the operators' directory, read from the projections."""

    def __init__(
        self,
        app: Application[Any],
        views: OrganizationViews,
        *,
        clock: Clock,
        catalog: Catalog,
        settings: ViewSettings,
    ) -> None:
        self.app = app
        self.views = views
        self.clock = clock
        self.catalog = catalog
        self.settings = settings
        self.follower = ViewFollower(app, views)
        self.access_reader = access_reader(app, views)
        self.view_cache = construct_view_cache(views, settings)
        #: A log position these views are known to have applied (seen by this process).
        self._applied = 0

    # -- queries --------------------------------------------------------------

    def access(self, organization_id: UUID, *, min_position: int | None = None) -> dict[str, Any]:
        """The access view: one row looked up, the time-dependent parts computed now.

        One statement answers the row and, when they matter, the log's end and
        the views' position from the same snapshot (``AccessReader``); only a
        view that is behind costs more (a catch-up, or the bounded wait).
        """
        key = str(organization_id)
        cache = self.view_cache
        row = None if cache is None else cache.get(key, min_position)
        if row is None:
            with_positions = (
                cache is not None or min_position is not None or self.settings.follow_on_read
            )
            read = self.access_reader.read(key, with_positions=with_positions)
            row = read.row
            if with_positions and not self._current(read, min_position):
                row = self.views.access_row(key)
            elif cache is not None and row is not None:
                cache.offer(row, read.tracked)
            if row is None:
                row = self._wait_for_registration(organization_id)
        view = access_view(row.facts, self.catalog, self.clock.now()).to_dict()
        return {"version": row.version, "position": row.position, **view}

    def _current(self, read: AccessRead, min_position: int | None) -> bool:
        """Whether ``read.row`` may be served; if not, the views are brought up first.

        The same rules as :meth:`wait_for`, on positions already read.
        """
        if min_position is not None and min_position > read.latest:
            raise InvalidRequest(
                "min_position is beyond the event log's last position.",
                code="min_position_ahead_of_log",
                details={"min_position": min_position, "latest_position": read.latest},
            )
        if self.settings.follow_on_read:
            if read.tracked >= read.latest:
                self._applied = max(self._applied, read.tracked)
                return True
        elif min_position is None or read.tracked >= min_position:
            return True
        self.wait_for(min_position)
        return False

    def organizations(
        self,
        *,
        state: str | None = None,
        after: str | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        """A page of the directory, ordered by organization id.

        The cursor is the last id of the page (``next``); pass it as ``after``.
        ``state`` filters on the state as shown now (a trial past its end is
        ``trial_expired`` even before the sweep records it).
        """
        if state is not None and state not in DIRECTORY_STATES:
            raise InvalidRequest(
                f"Unknown state {state!r}.",
                details={"state": [f"must be one of: {', '.join(DIRECTORY_STATES)}"]},
            )
        if not 1 <= limit <= MAX_DIRECTORY_PAGE:
            raise InvalidRequest(
                "limit is out of range.",
                details={"limit": [f"must be between 1 and {MAX_DIRECTORY_PAGE}"]},
            )
        if after is not None:
            try:
                after = str(UUID(after))
            except ValueError:
                raise InvalidRequest(
                    "after is not an organization id.",
                    details={"after": ["must be the id of the last organization of a page"]},
                ) from None
        self.wait_for(min_position)
        now = self.clock.now()
        entries = self.views.directory(now=now, state=state, after=after, limit=limit + 1)
        page = entries[:limit]
        return {
            "organizations": [entry.to_dict(now) for entry in page],
            "next": page[-1].organization_id if len(entries) > limit else None,
        }

    def close(self) -> None:
        """Stop the view cache's listener (the views themselves need no closing)."""
        if self.view_cache is not None:
            self.view_cache.close()

    def lag(self) -> dict[str, int]:
        """``latest_position``, ``view_position`` and ``lag`` (for ``/readyz``)."""
        return self.follower.lag()

    def catch_up(self) -> int:
        """Apply whatever the log has that the views have not; the views' position."""
        return self.follower.catch_up()

    # -- read-your-writes -----------------------------------------------------

    def wait_for(self, min_position: int | None) -> None:
        """Return once the views have applied ``min_position`` (bounded wait).

        A position beyond the log's end was never handed out by this store
        (commands answer after their events are committed): it is refused at
        once with ``min_position_ahead_of_log`` rather than held for the
        whole timeout.
        """
        if min_position is None and not self.settings.follow_on_read:
            return  # a worker keeps the views; nothing to wait for
        latest = self.follower.latest_position()
        if min_position is not None and min_position > latest:
            raise InvalidRequest(
                "min_position is beyond the event log's last position.",
                code="min_position_ahead_of_log",
                details={"min_position": min_position, "latest_position": latest},
            )
        if self.settings.follow_on_read:
            # The views never move back: once they applied the log's end, a
            # read needs only the log's end (one query) to know they still
            # have; catching up costs two queries even when there is nothing.
            if latest <= self._applied:
                return
            position = self._applied = self.follower.catch_up()
        elif min_position is None:
            return
        else:
            try:
                self.views.wait(
                    self.app.name, min_position, timeout=self.settings.min_position_timeout
                )
            except TimeoutError:
                raise ViewNotCaughtUp(min_position, self.views.position()) from None
            return
        if min_position is not None and position < min_position:  # pragma: no cover
            raise ViewNotCaughtUp(min_position, position)

    def _wait_for_registration(self, organization_id: UUID) -> OrganizationRow:
        """A row missing from the view: unknown organization, or one not applied yet."""
        first = select_organization_notifications(self.app.recorder, organization_id, 0, 1)
        if not first:
            raise OrganizationNotFound(organization_id)
        self.wait_for(max(first[0].id, 1))
        row = self.views.access_row(str(organization_id))
        if row is None:  # pragma: no cover - the position was applied, so the row exists
            raise ViewNotCaughtUp(first[0].id, self.views.position())
        return row
