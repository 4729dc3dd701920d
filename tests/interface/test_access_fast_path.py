"""``GET .../access``'s cheaper path answers exactly what the general one did.

The answer is serialised with orjson (the document jsonify made), a query
string is parsed as strictly after an empty one was reused, and the error
answers are documented although their documenting wrappers no longer run.
"""

from __future__ import annotations

import json

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from interface import schemas as s
from interface.app import SuiteFlask
from interface.routes.blueprint import ApiBlueprint
from tests.interface.conftest import Caller, error_code


@pytest.fixture
def caller(client: FlaskClient) -> Caller:
    return Caller(client)


def test_the_access_answer_is_the_document_jsonify_made(
    api: Flask, client: FlaskClient, caller: Caller
) -> None:
    org = caller.acme_with_crm_and_desk()
    answer = caller.as_user(org, "u-alice", "GET", "/access")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    view = json.loads(answer.data)
    assert s.AccessViewSchema().validate(view) == {}
    with api.test_request_context():
        assert answer.data == jsonify(view).get_data()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?min_position=soon", "min_position"),
        ("?min_position=-1", "min_position"),
        ("?wait=1", "wait"),
    ],
)
def test_a_query_string_is_validated_after_an_empty_one_was_reused(
    caller: Caller, query: str, field: str
) -> None:
    org = caller.register()
    for _ in range(2):  # the second empty query reuses the first one's parse
        assert caller.as_user(org, "u-owner", "GET", "/access").status_code == 200
    reused = ApiBlueprint.ARGUMENTS_PARSER._empty_query.values()
    assert any(isinstance(schema, s.AccessQuerySchema) for schema, _ in reused)
    refused = caller.as_user(org, "u-owner", "GET", f"/access{query}")
    assert refused.status_code == 422, refused.json
    assert error_code(refused) == "validation_failed"
    assert f"query.{field}" in refused.json["error"]["details"]["fields"]
    again = caller.as_user(org, "u-owner", "GET", "/access")
    assert again.status_code == 200
    assert again.json["organization_id"] == org


def test_the_access_errors_stay_documented(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    operation = spec["paths"]["/v1/organizations/{organization_id}/access"]["get"]
    assert {"401", "404", "422", "500", "503"} <= operation["responses"].keys()
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["min_position"]


def test_the_app_remembers_plain_functions_and_still_wraps_async_ones(api: Flask) -> None:
    """``SuiteFlask.ensure_sync`` remembers what is plain (benchmark access_read_http)."""
    assert isinstance(api, SuiteFlask)

    def plain() -> str:
        return "plain"

    async def coroutine() -> str:
        return "async"

    for _ in range(2):  # the second time from what the first remembered
        assert api.ensure_sync(plain) is plain
        # Never taken for plain: Flask's own answer for a coroutine every time
        # (here, without the 'async' extra, its refusal).
        with pytest.raises(RuntimeError, match="async"):
            api.ensure_sync(coroutine)
    assert plain in api._plain
    assert coroutine not in api._plain
