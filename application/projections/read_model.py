"""The read side the API and the CLI use: one reader per view, read-your-writes.

``SUITE_VIEW_FOLLOWER``: ``api`` (``memory://`` and SQLite default) — every
read first applies what the log has that the views have not; ``worker``
(PostgreSQL default) — ``suitesub worker`` follows, the API only reads and
``min_position`` waits for it, at most ``SUITE_MIN_POSITION_TIMEOUT`` seconds
(then 503 ``view_not_caught_up``; a position beyond the log is 422 at once).
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.application import Application

from application.errors import MinPositionAheadOfLog, OrganizationNotFound, ViewNotCaughtUp
from application.event_stream import connection_kwargs, select_organization_notifications
from application.projections.follower import Follower
from application.projections.rows import OrganizationRow
from application.projections.tracking import UPSTREAM, ViewProjection
from application.projections.view_cache import CachedAccessReader, ViewCache, channel_name
from application.projections.views import AccessRead, OrganizationViews, OrganizationViewsProjection
from application.schema import schema_lock
from application.settings import ViewSettings
from application.sql_dialect import view_store
from application.view_faults import ViewFaults
from domain.access_view import access_view
from domain.catalog import Catalog
from domain.clock import Clock
from domain.errors import InvalidRequest
from domain.facts import BundleState

LIVE_PREFIX = "views"
MAX_DIRECTORY_PAGE = 500


def construct_views(app: Application[Any], prefix: str = LIVE_PREFIX) -> OrganizationViews:
    """The views on the application's own store (so the access statement reads the log's
    end too), tables created; ``memory://``'s views are an in-memory SQLite database."""
    store = view_store(app, "views")
    views = OrganizationViews(
        store.datastore, store.dialect, prefix, store.log_table, owns_store=store.owned
    )
    with schema_lock(app.env):
        views.create_table()
    return views


def construct_cache(views: OrganizationViews, ttl: float) -> ViewCache | None:
    """The process's cache of access rows, fed by the PostgreSQL views' NOTIFY."""
    if not views.dialect.notifies:
        return None
    kwargs = connection_kwargs(views.datastore)

    def read_position(connection: psycopg.Connection[Any]) -> int:
        found = connection.execute(views.select_tracked, (UPSTREAM,)).fetchone()
        return int(found[0]) if found else 0

    return ViewCache(
        lambda: psycopg.connect(**kwargs, autocommit=True),
        channel_name(views.prefix, views.datastore.schema),
        read_position,
        ttl=ttl,
    )


class FollowedView:
    """A view, its follower and read-your-writes over it, wired once: every view's
    read model is one (the invoices view's too, application/invoices/)."""

    def __init__(
        self,
        app: Application[Any],
        projection: ViewProjection[Any],
        *,
        settings: ViewSettings,
        faults: ViewFaults | None = None,
    ) -> None:
        self.app, self.settings = app, settings
        self.follower = Follower(app, projection, faults=faults)
        self.applied = 0  # a position this process saw the view apply

    def lag(self) -> dict[str, int]:
        """``latest_position``, ``view_position`` and ``lag`` (for ``/readyz``)."""
        return self.follower.lag()

    def catch_up(self) -> int:
        return self.follower.catch_up()

    def close(self) -> None:
        """Close the view's own store if it has one."""
        self.follower.view.close()

    def wait_for(self, min_position: int | None) -> None:
        """Return once the view has applied ``min_position`` (bounded wait); a position
        beyond the log's end was never handed out, so it is refused at once."""
        follow = self.settings.follow_on_read
        if min_position is None and not follow:
            return  # a worker keeps the views; nothing to wait for
        latest = self.follower.latest_position()
        if min_position is not None and min_position > latest:
            raise MinPositionAheadOfLog(min_position, latest)
        if follow:
            # The views never move back: once they applied the log's end, the
            # log's end alone (one query) says they still have.
            if latest > self.applied:
                self.applied = self.follower.catch_up()
            return
        assert min_position is not None
        follower = self.follower
        try:
            timeout = self.settings.min_position_timeout
            follower.view.wait(follower.app.name, min_position, timeout=timeout)
        except TimeoutError:
            raise ViewNotCaughtUp(min_position, follower.position()) from None

    def current(self, read: AccessRead, min_position: int | None) -> bool:
        """Whether a row read with its positions may be served; if not, wait first."""
        if min_position is not None and min_position > read.latest:
            raise MinPositionAheadOfLog(min_position, read.latest)
        if self.settings.follow_on_read:
            if read.tracked >= read.latest:
                self.applied = max(self.applied, read.tracked)
                return True
        elif min_position is None or read.tracked >= min_position:
            return True
        self.wait_for(min_position)
        return False


class AccessReads(Protocol):
    """What the API asks of the access view (the cache adapter answers it too)."""

    def access(
        self, organization_id: UUID, *, min_position: int | None = None
    ) -> dict[str, Any]: ...


class AccessReader:
    """The access view: one row looked up, the time-dependent parts computed now."""

    def __init__(
        self,
        app: Application[Any],
        views: OrganizationViews,
        positions: FollowedView,
        *,
        catalog: Catalog,
        clock: Clock,
    ) -> None:
        self.app, self.views, self.positions = app, views, positions
        self.catalog, self.clock = catalog, clock

    def read(self, organization_id: str) -> AccessRead:
        """The row with the log's end and the views' position: one statement, or (log
        elsewhere) in an order that keeps the guarantee, as the views never move back."""
        found = self.views.read_access(organization_id)
        if found is not None:
            return found
        latest, tracked = self.positions.follower.latest_position(), self.views.position()
        return AccessRead(self.views.access_row(organization_id), latest, tracked)

    def row(
        self, organization_id: UUID, min_position: int | None, *, with_positions: bool = False
    ) -> tuple[OrganizationRow, int | None]:
        """A row current enough for ``min_position``, and the views' position read in
        the same snapshot when there was one (``None`` otherwise)."""
        key, tracked = str(organization_id), None
        row: OrganizationRow | None
        if with_positions or min_position is not None or self.positions.settings.follow_on_read:
            read = self.read(key)
            if self.positions.current(read, min_position):
                row, tracked = read.row, read.tracked
            else:
                row = self.views.access_row(key)
        else:
            row = self.views.access_row(key)
        if row is None:
            return self._wait_for_registration(organization_id), None
        return row, tracked

    def answer(self, row: OrganizationRow) -> dict[str, Any]:
        view = access_view(row.facts, self.catalog, self.clock.now()).to_dict()
        return {"version": row.version, "position": row.position, **view}

    def access(self, organization_id: UUID, *, min_position: int | None = None) -> dict[str, Any]:
        return self.answer(self.row(organization_id, min_position)[0])

    def _wait_for_registration(self, organization_id: UUID) -> OrganizationRow:
        """A row missing from the view: unknown organization, or one not applied yet."""
        first = select_organization_notifications(self.app.recorder, organization_id, 0, 1)
        if not first:
            raise OrganizationNotFound(organization_id)
        self.positions.wait_for(max(first[0].id, 1))
        row = self.views.access_row(str(organization_id))
        if row is None:  # pragma: no cover - the position was applied, so the row exists
            raise ViewNotCaughtUp(first[0].id, self.views.position())
        return row


def _refused(field: str, message: str, detail: str) -> InvalidRequest:
    return InvalidRequest(message, details={field: [detail]})


class DirectoryReader:
    """The operators' directory, a page at a time, by the state shown now."""

    def __init__(self, views: OrganizationViews, positions: FollowedView, *, clock: Clock) -> None:
        self.views, self.positions, self.clock = views, positions, clock

    def organizations(
        self,
        *,
        state: str | None = None,
        after: str | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        """A page by organization id, ``next`` its cursor; ``state`` is the state shown
        now (a trial past its end is ``trial_expired`` before the sweep records it)."""
        if state is not None and state not in BundleState.ALL:
            one_of = f"must be one of: {', '.join(BundleState.ALL)}"
            raise _refused("state", f"Unknown state {state!r}.", one_of)
        if not 1 <= limit <= MAX_DIRECTORY_PAGE:
            between = f"must be between 1 and {MAX_DIRECTORY_PAGE}"
            raise _refused("limit", "limit is out of range.", between)
        try:
            after = None if after is None else str(UUID(after))
        except ValueError:
            last = "must be the id of the last organization of a page"
            raise _refused("after", "after is not an organization id.", last) from None
        self.positions.wait_for(min_position)
        now = self.clock.now()
        entries = self.views.directory(now=now, state=state, after=after, limit=limit + 1)
        page = entries[:limit]
        more = len(entries) > limit
        return {
            "organizations": [entry.to_dict(now) for entry in page],
            "next": page[-1].organization_id if more else None,
        }


class ReadModel(FollowedView):
    """The organization views, their follower and their two readers, wired once."""

    def __init__(
        self,
        app: Application[Any],
        views: OrganizationViews,
        *,
        clock: Clock,
        catalog: Catalog,
        settings: ViewSettings,
        faults: ViewFaults | None = None,
    ) -> None:
        projection = OrganizationViewsProjection(view=views)
        super().__init__(app, projection, settings=settings, faults=faults)
        self.views = views
        self.access_reader = AccessReader(app, views, self, catalog=catalog, clock=clock)
        cached = settings.view_cache and not settings.follow_on_read
        self.view_cache = construct_cache(views, settings.view_cache_ttl) if cached else None
        self.access_reads: AccessReads = (
            self.access_reader
            if self.view_cache is None
            else CachedAccessReader(self.access_reader, self.view_cache)
        )
        self.directory_reader = DirectoryReader(views, self, clock=clock)

    def access(self, organization_id: UUID, *, min_position: int | None = None) -> dict[str, Any]:
        return self.access_reads.access(organization_id, min_position=min_position)

    def organizations(self, **query: Any) -> dict[str, Any]:
        return self.directory_reader.organizations(**query)

    def close(self) -> None:
        """Stop the view cache's listener; close the views' own store if they have one."""
        if self.view_cache is not None:
            self.view_cache.close()
        super().close()
