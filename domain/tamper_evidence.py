"""A per-organization hash chain over the event log.

Each event carries ``chain``: SHA-256 over the previous event's link and the
event's canonical content (organization, version, type, business time and
data). Editing, removing or reordering any stored event breaks every link
after it; the audit tool's ``verify`` recomputes the chain from the stored
bytes, and a saved digest of the chain heads proves the tail was not cut.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

from domain.facts import GENESIS_LINK

#: Attributes of a stored event that are not part of its "data".
ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "chain"}
)

__all__ = [
    "ENVELOPE_FIELDS",
    "GENESIS_LINK",
    "canonical_json",
    "chain_link",
    "event_data",
    "require_plain_json",
]


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    msg = f"not canonicalisable: {type(value).__name__}"
    raise TypeError(msg)


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8.

    Total: a lone surrogate (which the domain refuses, domain/text.py, so only
    an event written past it holds one) is encoded as its three bytes instead
    of failing, so the audit tool can still recompute and report such a link.
    Every other string encodes exactly as strict UTF-8 does.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    ).encode("utf-8", "surrogatepass")


def event_data(attributes: dict[str, Any]) -> dict[str, Any]:
    """The business data of an event: its attributes without the envelope."""
    return {k: v for k, v in attributes.items() if k not in ENVELOPE_FIELDS}


def require_plain_json(value: Any, path: str = "data") -> None:
    """Refuse anything a JSON round trip would change (dates, floats, tuples…).

    Events carry plain JSON only: then the stored bytes are exactly what was
    decided, the chain recomputed from them matches, and a replay folds the
    same values the aggregate folded (a tuple would come back as a list).
    """
    # Every event's data passes here (benchmark renewal_sweep): the common,
    # sound case is checked without building a path per item; only a refusal
    # walks again to name where.
    if _plain(value):
        return
    _require_plain_json(value, path)


_SCALARS = (str, bool, int)


def _plain(value: Any) -> bool:
    kind = type(value)
    if value is None or kind in _SCALARS:
        return True
    if kind is list:
        return all(map(_plain, value))
    if kind is dict:
        return all(type(key) is str for key in value) and all(map(_plain, value.values()))
    return False


def _require_plain_json(value: Any, path: str) -> None:
    if value is None or type(value) in _SCALARS:
        return
    if type(value) is list:
        for index, item in enumerate(value):
            _require_plain_json(item, f"{path}[{index}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                msg = f"{path}: key {key!r} is not a string"
                raise TypeError(msg)
            _require_plain_json(item, f"{path}.{key}")
        return
    msg = f"{path}: {type(value).__name__} is not plain JSON (use str, int, bool, list, dict)"
    raise TypeError(msg)


def chain_link(
    previous: str,
    organization_id: str,
    version: int,
    event_type: str,
    at: datetime,
    data: dict[str, Any],
) -> str:
    content = canonical_json(
        {
            "organization_id": organization_id,
            "version": version,
            "type": event_type,
            "at": at.isoformat(),
            "data": data,
        }
    )
    return hashlib.sha256(previous.encode("ascii") + content).hexdigest()
