"""Errors of the application layer (the domain's own are in ``domain.errors``)."""

from __future__ import annotations

from domain.errors import DomainError, NotFound


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
