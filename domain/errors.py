"""Domain errors.

Every refusal carries the SPEC's machine-readable ``code`` and structured
``details`` so that a caller can act on it. The *kind* of error (not allowed,
state conflict, invalid request, not found) is what the interface layer maps
to a transport status, in exactly one place.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class of every refusal the domain makes."""

    code: str = "domain_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}


class NotAllowed(DomainError):
    """The acting user may not do this (HTTP 403)."""

    code = "not_allowed"


class StateConflict(DomainError):
    """The organization's current state forbids this (HTTP 409)."""

    code = "state_conflict"


class InvalidRequest(DomainError):
    """The request is well formed but breaks a business rule (HTTP 422)."""

    code = "validation_failed"


class NotFound(DomainError):
    """Something the request names does not exist (HTTP 404)."""

    code = "not_found"


class CatalogError(Exception):
    """The catalog file is malformed or inconsistent; raised at start-up."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem
