"""``OrganizationFacts.updated`` is dataclasses.replace, only faster."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from domain.facts import BundleState, OrganizationFacts


def _facts() -> OrganizationFacts:
    return OrganizationFacts(
        organization_id="org-1",
        name="Acme",
        country="JP",
        owner_user_id="u-owner",
        registered_at=datetime(2026, 11, 26, 9, tzinfo=UTC),
    )


def test_updated_gives_what_replace_gives_and_leaves_the_original_alone() -> None:
    facts = _facts()
    updated = facts.updated(bundle_state=BundleState.TRIAL, chain_head="ab" * 32)
    assert updated == replace(facts, bundle_state=BundleState.TRIAL, chain_head="ab" * 32)
    assert facts.bundle_state == BundleState.NONE
    assert hash(updated) == hash(replace(updated))


def test_updated_refuses_a_field_that_does_not_exist() -> None:
    with pytest.raises(TypeError, match="bundle_sate"):
        _facts().updated(bundle_sate=BundleState.TRIAL)


def test_updated_facts_stay_frozen() -> None:
    with pytest.raises(AttributeError):
        _facts().updated(name="B").name = "C"  # type: ignore[misc]
