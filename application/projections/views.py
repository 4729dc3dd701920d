"""The organization views (``{prefix}_access``, whose directory columns are the operators'
directory, and ``{prefix}_tracking``; ``views`` live): one tracked view, its SQL, its
projection (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

import orjson

from application.projections.rows import DirectoryEntry, OrganizationRow, fold_run, row_from_json
from application.projections.tracking import (
    UPSTREAM,
    Changes,
    TrackedView,
    ViewProjection,
    upsert,
)
from application.projections.view_cache import change_payload, channel_name
from application.sql_dialect import Dialect
from domain.bundle_state import RecordedAs, recorded_as_showing, recorded_as_turning
from domain.events import OrganizationEvent
from domain.facts import OrganizationFacts, facts_to_dict

SELECT_CHUNK = 500  # ids per ``IN (...)`` (SQLite allows 999 parameters at least)
FACTS_MEMO_SIZE = 10_000  # organizations whose decoded facts are remembered
#: The directory's own columns, beside the access row's in the one table.
LINE_COLUMNS = "name, recorded_state, trial_ends_at, contract_due_at"
COLUMNS = f"organization_id, version, position, facts, {LINE_COLUMNS}"


@dataclass(frozen=True, slots=True)
class AccessRead:
    """One access row and the positions read in the same snapshot (0: not read)."""

    row: OrganizationRow | None
    latest: int = 0  # the log's last position
    tracked: int = 0  # the views' tracked position


@dataclass
class ViewPage:
    """Rows with ids in ``(after, last]`` at ``position`` (``last`` ``None``: to the end),
    each as an access row and a directory line. :meth:`OrganizationViews.snapshot` is one
    page of everything."""

    position: int
    last: str | None = None
    access: dict[str, OrganizationRow] = field(default_factory=dict)
    directory: dict[str, DirectoryEntry] = field(default_factory=dict)

    def up_to(self, last: str | None) -> ViewPage:
        if last is None:
            return self
        access = {key: row for key, row in self.access.items() if key <= last}
        directory = {key: line for key, line in self.directory.items() if key <= last}
        return ViewPage(self.position, last, access, directory)

    def compared(self) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
        """Each row's fields by ``(id, "access")``, as a rebuild compares them."""
        found: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        for key, row in self.access.items():
            facts = {f"facts.{name}": value for name, value in facts_to_dict(row.facts).items()}
            found[(key, "access")] = (key, {**self.directory[key].fields(), **facts})
        return found


def recorded_as_sql(forms: tuple[RecordedAs, ...], now: Any, p: str) -> tuple[str, list[Any]]:
    """The domain's :class:`RecordedAs` forms as a ``WHERE`` clause on the directory
    (held to agree with ``shown_state`` by tests/application/test_directory_filter_agrees.py)."""
    clauses: list[str] = []
    params: list[Any] = []
    for form in forms:
        if form.trial_end_passed is None:
            clauses.append(f"recorded_state = {p}")
            params.append(form.state)
        else:
            passed = (
                "trial_ends_at <= {p}"
                if form.trial_end_passed
                else "(trial_ends_at IS NULL OR trial_ends_at > {p})"
            )
            clauses.append(f"(recorded_state = {p} AND {passed.format(p=p)})")
            params += [form.state, now]
    return f"({' OR '.join(clauses)})", params


class ViewChanges(Changes):
    """One write transaction's changes: rows read and put, the position tracked."""

    views: OrganizationViews

    def __init__(self, views: OrganizationViews, cursor: Any) -> None:
        super().__init__(views, cursor)
        self.views = views
        self.rows: dict[str, OrganizationRow | None] = {}
        self.dirty: dict[str, OrganizationRow] = {}

    def row(self, organization_id: str) -> OrganizationRow | None:
        self.preload([organization_id])
        return self.rows[organization_id]

    def preload(self, organization_ids: Iterable[str]) -> None:
        """Read the rows of a whole batch at once (few queries, not one per row)."""
        missing = [i for i in dict.fromkeys(organization_ids) if i not in self.rows]
        if missing:
            self.rows.update(self.views.select_access_rows(self.cursor, missing))

    def put(self, row: OrganizationRow) -> None:
        self.rows[row.organization_id] = self.dirty[row.organization_id] = row

    def take(self, events: list[tuple[OrganizationEvent, int]]) -> None:
        """Each organization's row is read (a batch at once), folded through its run,
        put once."""
        runs: dict[int, list[OrganizationEvent]] = {}  # by the id's int (a UUID hashes in Python)
        ends: dict[int, int] = {}
        for domain_event, position in events:
            key = domain_event.originator_id.int
            runs.setdefault(key, []).append(domain_event)
            ends[key] = position
        ids = {key: str(run[0].originator_id) for key, run in runs.items()}
        self.preload(ids.values())
        for key, run in runs.items():
            self.put(fold_run(self.rows[ids[key]], run, ends[key]))

    def write(self) -> list[str]:
        if self.dirty:
            self.views.write_rows(self.cursor, list(self.dirty.values()))
        return list(self.dirty)


class OrganizationViews(TrackedView[ViewChanges]):
    """The access view and the organization directory, with their tracking."""

    copied = {"access": COLUMNS}

    def __init__(
        self,
        datastore: Any,
        dialect: Dialect,
        prefix: str = "views",
        log_table: str | None = None,
        *,
        owns_store: bool = False,
    ) -> None:
        super().__init__(datastore, dialect, prefix, owns_store=owns_store)
        self.log_table = log_table
        self.memo: dict[str, tuple[str, OrganizationFacts]] = {}
        self.access = self.table("access")
        p, facts = self.p, dialect.json_text("facts")
        numbers = "organization_id, version, position"
        self.select_access = f"SELECT {numbers}, {facts} FROM {self.access}"
        self.select_directory = f"SELECT {numbers}, {LINE_COLUMNS} FROM {self.access}"
        self.select_rows = f"SELECT {numbers}, {facts}, {LINE_COLUMNS} FROM {self.access}"
        # One statement, one snapshot: if the views had applied the log's end,
        # the row includes every event of it.
        self.read_access_statement = None
        if log_table is not None:
            log = dialect.qualified(datastore, log_table)
            self.read_access_statement = (
                f"SELECT (SELECT MAX({dialect.log_id}) FROM {log}) AS latest, "
                f"({self.select_tracked}) AS tracked, a.version, a.position, a.{facts} "
                f"FROM (SELECT 1) AS one LEFT JOIN {self.access} AS a ON a.organization_id = {p}"
            )

    def with_prefix(self, prefix: str) -> Self:
        return type(self)(self.datastore, self.dialect, prefix, self.log_table)

    def new_changes(self, cursor: Any) -> ViewChanges:
        return ViewChanges(self, cursor)

    def statements(self, cursor: Any) -> list[str]:
        uid, integer, text, moment, facts = self.dialect.types
        directory = {
            "name": f"{text} NOT NULL DEFAULT ''",
            "recorded_state": f"{text} NOT NULL DEFAULT ''",
            "trial_ends_at": moment,
            "contract_due_at": moment,
        }
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self.access} (organization_id {uid} PRIMARY KEY, "
            f"version {integer} NOT NULL, position {integer} NOT NULL, facts {facts} NOT NULL, "
            + ", ".join(f"{name} {kind}" for name, kind in directory.items())
            + ")"
        )
        # Until this release the directory was a table of its own: its columns
        # join the access table, its lines copied in, and the table goes.
        added = [
            self.dialect.add_column(cursor, self.access, *column) for column in directory.items()
        ]
        if any(added):
            old = self.table("directory")
            self.dialect.add_column(cursor, old, "contract_due_at", moment)  # older still
            cursor.execute(
                f"UPDATE {self.access} SET "
                + ", ".join(f"{name} = d.{name}" for name in directory)
                + f" FROM {old} AS d WHERE d.organization_id = {self.access}.organization_id"
            )
            cursor.execute(f"DROP TABLE {old}")
        return [
            f'CREATE INDEX IF NOT EXISTS "{self.prefix}_directory_state_idx" '
            f"ON {self.access} (recorded_state, organization_id)",
            f'CREATE INDEX IF NOT EXISTS "{self.prefix}_directory_trial_end_idx" '
            f"ON {self.access} (trial_ends_at) WHERE recorded_state = 'trial'",
            f'CREATE INDEX IF NOT EXISTS "{self.prefix}_directory_contract_due_idx" '
            f"ON {self.access} (contract_due_at, organization_id) "
            "WHERE contract_due_at IS NOT NULL",
        ]

    # -- writing ----------------------------------------------------------------

    def write_rows(self, cursor: Any, rows: list[OrganizationRow]) -> None:
        if self.dialect.notifies:
            self.write_rows_as_json(cursor, rows)
            return
        db_time = self.dialect.db_time  # one executemany per batch
        cursor.executemany(
            upsert(self.access, COLUMNS, self.p),
            [
                (
                    r.organization_id,
                    r.version,
                    r.position,
                    r.facts_json(),
                    r.facts.name,
                    r.facts.bundle_state,
                    db_time(r.trial_ends_at),
                    db_time(r.contract_due_at),
                )
                for r in rows
            ],
        )

    def write_rows_as_json(self, cursor: Any, rows: list[OrganizationRow]) -> None:
        # PostgreSQL: one statement per batch, the rows as one JSON document; the
        # server takes the directory's columns from the facts (docs/performance.md).
        batch = [
            {
                "organization_id": r.organization_id,
                "version": r.version,
                "position": r.position,
                "facts": facts_to_dict(r.facts),
                # The rule's answer, not SQL's: domain.contract.contract_due_at.
                "contract_due_at": None if (due := r.contract_due_at) is None else due.isoformat(),
            }
            for r in rows
        ]
        from_batch = (
            "SELECT organization_id, version, position, facts, facts ->> 'name', "
            "facts ->> 'bundle_state', (facts -> 'trial' ->> 'ends_at')::timestamptz, "
            "contract_due_at FROM jsonb_to_recordset(%s::jsonb) AS batch (organization_id uuid, "
            "version bigint, position bigint, facts jsonb, contract_due_at timestamptz)"
        )
        cursor.execute(
            upsert(self.access, COLUMNS, from_batch),
            (orjson.dumps(batch).decode(),),  # the same document, a tenth of json.dumps's cost
        )

    def announce(self, cursor: Any, position: int, ids: list[str] | None) -> None:
        # PostgreSQL, inside the writing transaction: delivered at its commit, in
        # commit order, never for a rollback. The API's view caches evict on it.
        if self.dialect.notifies:
            channel = channel_name(self.prefix, self.datastore.schema)
            cursor.execute("SELECT pg_notify(%s, %s)", (channel, change_payload(position, ids)))

    # -- reading ----------------------------------------------------------------

    def decoded(
        self, organization_id: str, text: str, version: int, position: int
    ) -> OrganizationRow:
        """The row from its facts' text, read every time (a row repaired at the same
        version is served at once); only the JSON parse is reused for the same text."""
        entry = self.memo.get(organization_id)
        if entry is not None and entry[0] == text:
            return OrganizationRow(organization_id, entry[1], version, position)
        row = row_from_json(organization_id, text, version, position)
        while len(self.memo) >= FACTS_MEMO_SIZE:
            try:
                self.memo.pop(next(iter(self.memo)))
            except (StopIteration, KeyError, RuntimeError):  # pragma: no cover - raced
                break
        self.memo[organization_id] = (text, row.facts)
        return row

    def access_row_from(self, found: Any) -> OrganizationRow:
        key = str(found["organization_id"])
        return self.decoded(key, found["facts"], found["version"], found["position"])

    def directory_entry_from(self, found: Any) -> DirectoryEntry:
        ends, key = self.dialect.py_time(found["trial_ends_at"]), str(found["organization_id"])
        name, state, version = found["name"], found["recorded_state"], found["version"]
        due = self.dialect.py_time(found["contract_due_at"])
        return DirectoryEntry(key, name, state, ends, version, found["position"], due)

    def select_access_rows(self, cursor: Any, ids: list[str]) -> dict[str, OrganizationRow | None]:
        """Rows of many organizations (``None`` for those without one), few queries."""
        rows: dict[str, OrganizationRow | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), SELECT_CHUNK):
            chunk = ids[start : start + SELECT_CHUNK]
            marks = ", ".join([self.p] * len(chunk))
            cursor.execute(
                f"{self.select_access} WHERE organization_id IN ({marks})",
                [self.dialect.db_id(i) for i in chunk],
            )
            for found in cursor.fetchall():
                row = self.access_row_from(found)
                rows[row.organization_id] = row
        return rows

    def access_row(self, organization_id: str) -> OrganizationRow | None:
        with self.dialect.read_transaction(self) as cursor:
            return self.select_access_rows(cursor, [organization_id])[organization_id]

    def read_access(self, organization_id: str) -> AccessRead | None:
        """The row, the log's end and the tracked position in one statement (``None``
        when the log is in another store: the reader reads them in a safe order)."""
        if self.read_access_statement is None:
            return None
        found = self.dialect.read_one(
            self.datastore,
            self.read_access_statement,
            (UPSTREAM, self.dialect.db_id(organization_id)),
        )
        row = None
        if found["version"] is not None:
            row = self.decoded(organization_id, found["facts"], found["version"], found["position"])
        return AccessRead(row, found["latest"] or 0, found["tracked"] or 0)

    def _directory(self, where: list[str], params: list[Any], order: str, limit: int) -> Any:
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self.dialect.read_transaction(self) as cursor:
            cursor.execute(
                f"{self.select_directory} {clause}ORDER BY {order} LIMIT {self.p}", (*params, limit)
            )
            return cursor.fetchall()

    def directory(
        self, *, now: datetime, state: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        """Directory lines ordered by id, after the id ``after``, showing ``state`` at ``now``."""
        where: list[str] = []
        params: list[Any] = []
        db_now = self.dialect.db_time(now)
        if state is not None:
            clause, params = recorded_as_sql(recorded_as_showing(state), db_now, self.p)
            where.append(clause)
        if after is not None:
            where.append(f"organization_id > {self.p}")
            params.append(self.dialect.db_id(after))
        found = self._directory(where, params, "organization_id", limit)
        return [self.directory_entry_from(line) for line in found]

    def trials_due(self, *, now: datetime, limit: int) -> list[str]:
        """Organizations whose trial's end has turned their state, not yet recorded."""
        clause, params = recorded_as_sql(recorded_as_turning(), self.dialect.db_time(now), self.p)
        found = self._directory([clause], params, "trial_ends_at, organization_id", limit)
        return [str(line["organization_id"]) for line in found]

    def contracts_due(
        self, *, now: datetime, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[tuple[str, datetime]]:
        """Contracts whose due moment (``contract_due_at``) has come, oldest first,
        after the ``(due_at, organization_id)`` cursor ``after``."""
        p, db_time = self.p, self.dialect.db_time
        where = ["contract_due_at IS NOT NULL", f"contract_due_at <= {p}"]
        params: list[Any] = [db_time(now)]
        if after is not None:
            where.append(
                f"(contract_due_at > {p} OR (contract_due_at = {p} AND organization_id > {p}))"
            )
            params += [db_time(after[0]), db_time(after[0]), self.dialect.db_id(after[1])]
        found = self._directory(where, params, "contract_due_at, organization_id", limit)
        due: list[tuple[str, datetime]] = []
        for line in found:
            moment = self.dialect.py_time(line["contract_due_at"])
            assert moment is not None
            due.append((str(line["organization_id"]), moment))
        return due

    def page(self, after: str | None, limit: int) -> ViewPage:
        """Up to ``limit`` rows after the id ``after`` and the views' position, in one short
        read (no transaction idles while rows are decoded: PostgreSQL ends those)."""
        where = "" if after is None else f"WHERE organization_id > {self.p} "
        params = (limit,) if after is None else (self.dialect.db_id(after), limit)
        with self.dialect.read_transaction(self) as cursor:
            position = self.tracked_position(cursor)
            cursor.execute(
                f"{self.select_rows} {where}ORDER BY organization_id LIMIT {self.p}", params
            )
            found = cursor.fetchall()
        page = ViewPage(
            position, str(found[-1]["organization_id"]) if len(found) >= limit else None
        )
        for line in found:
            entry = self.directory_entry_from(line)
            page.access[entry.organization_id] = self.access_row_from(line)
            page.directory[entry.organization_id] = entry
        return page

    def snapshot(self, page_size: int = 1000) -> ViewPage:
        """Every row at one position, read again if the views moved meanwhile (small views)."""
        while True:
            pages = list(self.pages(page_size))
            if all(page.position == pages[0].position for page in pages):
                whole = ViewPage(pages[0].position)
                for page in pages:
                    assert isinstance(page, ViewPage)
                    whole.access.update(page.access)
                    whole.directory.update(page.directory)
                return whole


class OrganizationViewsProjection(ViewProjection[OrganizationViews]):
    """Folds organization events into the access view and the directory."""

    name = "organization_views"
