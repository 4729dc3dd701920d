"""The SQLite application recorder, converting each stored id to a ``UUID`` once per run.

SQLite keeps an originator id as text, and the library's recorder builds a
``UUID`` from it for every row it reads: about a microsecond each, an eighth
of replaying an event (benchmark aggregate_load_growth_worst). The rows of an
aggregate's stream, and runs of one organization's events in the log, carry
the same id, so the recorder keeps the last text it converted and its
``UUID`` (immutable, so sharing it is safe) and converts only a different
one. PostgreSQL's driver reads ``uuid`` columns as ``UUID`` already.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.sqlite import SQLiteApplicationRecorder


class SQLiteApplicationRecorderReusingIds(SQLiteApplicationRecorder):
    #: The last stored id converted and what it became (one tuple, so a
    #: thread reads a pair that belongs together).
    last_converted: tuple[str | None, UUID | str | None] = (None, None)

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        text, converted = self.last_converted
        if text == originator_id and converted is not None:
            return converted
        converted = super().convert_originator_id(originator_id)
        self.last_converted = (originator_id, converted)
        return converted


#: The topic ``APPLICATION_RECORDER_TOPIC`` names (application/settings.py).
TOPIC = f"{__name__}:{SQLiteApplicationRecorderReusingIds.__name__}"
