"""Errors of the application layer (the domain's own are in ``domain.errors``)."""

from __future__ import annotations

from domain.errors import DomainError, InvalidRequest, NotFound


class OrganizationNotFound(NotFound):
    code = "organization_not_found"

    def __init__(self, organization_id: object) -> None:
        super().__init__(
            f"No organization {organization_id}.",
            details={"organization_id": str(organization_id)},
        )


class ConcurrentModification(DomainError):
    """Another request changed the organization at the same moment, repeatedly."""

    code = "concurrent_modification"


class ViewNotCaughtUp(DomainError):
    """The views have not applied the position the caller asked for (HTTP 503).

    Answered instead of an older view when ``min_position`` is not reached
    within the bounded wait; the caller retries after ``retry_after`` seconds.
    """

    code = "view_not_caught_up"
    retry_after = 1

    def __init__(self, min_position: int, view_position: int) -> None:
        super().__init__(
            f"The views have applied the log up to position {view_position}, "
            f"not yet {min_position}; retry shortly.",
            details={"min_position": min_position, "view_position": view_position},
        )


class MinPositionAheadOfLog(InvalidRequest):
    """``min_position`` beyond the log's end (HTTP 422): a position never handed out,
    refused at once rather than waited for."""

    code = "min_position_ahead_of_log"

    def __init__(self, min_position: int, latest: int) -> None:
        super().__init__(
            "min_position is beyond the event log's last position.",
            details={"min_position": min_position, "latest_position": latest},
        )
