"""The baseline for every whole-log benchmark: read every notification and decode it.

This is the least any consumer of the log can do with the library — page
through the notification log and turn each stored event into a domain event
with the application's mapper — so rebuilding views or verifying the chain
is compared against it. Runs in-process (:func:`read_and_decode`) or as its
own process, like ``suitesub audit verify``:
``python -m benchmarks.raw_log URL`` prints ``{"events", "seconds", "peak_rss_mb"}``.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from application.service import SuiteSubscriptions
from benchmarks.organizations import T0
from domain.clock import ManualClock

PAGE = 5_000


def read_and_decode(app: SuiteSubscriptions, page: int = PAGE) -> int:
    """Decode the whole log; the number of events."""
    recorder, mapper = app.recorder, app.mapper
    count = 0
    start = 1
    while True:
        notifications = recorder.select_notifications(start=start, limit=page)
        if not notifications:
            return count
        for notification in notifications:
            mapper.to_domain_event(notification)
        count += len(notifications)
        start = notifications[-1].id + 1


def main(argv: list[str]) -> int:
    [url] = argv
    started = time.perf_counter()
    app = SuiteSubscriptions.from_database_url(url, clock=ManualClock(T0))
    try:
        events = read_and_decode(app)
    finally:
        app.close()
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"events": events, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
