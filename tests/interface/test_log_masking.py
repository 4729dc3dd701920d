"""No card number, and no query value, in a log line (gunicorn, Flask, werkzeug, ours)."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from gunicorn.config import Config
from gunicorn.glogging import SafeAtoms

from domain.card_numbers import MASK
from interface.app import create_app
from interface.gunicorn_logging import ACCESS_LOG_FORMAT, CardSafeGunicornLogger
from interface.log_masking import (
    WITHHELD,
    CardNumberFilter,
    loggable_request_line,
    mask_card_numbers_in_log_text,
)
from tests.card_spellings import CARD_NUMBER, holds_card_number, spellings
from tests.interface.conftest import SECRET

SPELLINGS = spellings()


def _written_forms(text: str) -> dict[str, str]:
    """How a log line may show ``text``: as is, %-encoded, as a str's or bytes' repr."""
    return {
        "as is": text,
        "percent": quote(text, safe=""),
        "repr": repr(text),
        "bytes repr": repr(text.encode()),
    }


@pytest.mark.parametrize("label", SPELLINGS)
def test_a_card_number_is_masked_in_log_text_however_it_is_escaped(label: str) -> None:
    for form, written in _written_forms(SPELLINGS[label]).items():
        masked = mask_card_numbers_in_log_text(f"before {written} after")

        assert not holds_card_number(masked.encode()), form
        assert MASK in masked, form


def test_log_text_without_a_card_number_is_left_as_it_is() -> None:
    line = '127.0.0.1 - - [02/Dec/2026:07:52:50 +0000] "GET /v1/x%20y HTTP/1.1" 200 5'

    assert mask_card_numbers_in_log_text(line) == line


def test_a_request_line_keeps_the_parameter_names_and_withholds_their_values() -> None:
    line = f"GET /v1/organizations?state=trial&after={CARD_NUMBER}&limit=5 HTTP/1.1"

    assert loggable_request_line(line) == (
        f"GET /v1/organizations?state={WITHHELD}&after={WITHHELD}&limit={WITHHELD} HTTP/1.1"
    )


def test_the_access_log_masks_every_field_a_client_chose() -> None:
    logger = CardSafeGunicornLogger(Config())
    card = quote(SPELLINGS["nbsp"])
    basic = base64.b64encode(f"{SPELLINGS['dots']}:pw".encode()).decode()
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/v1/x/{card}/y?min_position={CARD_NUMBER}&{card}=1",
        "PATH_INFO": f"/v1/x/{SPELLINGS['nbsp']}/y",
        "QUERY_STRING": f"min_position={CARD_NUMBER}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"https://shop.example/pay?card={SPELLINGS['slash']}",
        "HTTP_USER_AGENT": f"agent {SPELLINGS['underscore']}",
        "HTTP_AUTHORIZATION": f"Basic {basic}",
    }
    request = SimpleNamespace(headers=[("X-NOTE", SPELLINGS["spaced dash"])])
    response = SimpleNamespace(status="422", sent=276, headers=[("X-Request-ID", "req_1")])
    formats = [ACCESS_LOG_FORMAT, "%(U)s %(q)s %({x-note}i)s %({raw_uri}e)s %({query_string}e)s"]

    atoms = SafeAtoms(logger.atoms(response, request, environ, timedelta(milliseconds=3)))
    lines = [line % atoms for line in formats]

    for line in lines:
        assert not holds_card_number(line.encode()), line
    assert f'"GET /v1/x/{MASK}/y?min_position={WITHHELD}&{MASK}={WITHHELD} HTTP/1.1"' in lines[0]
    assert lines[0].endswith(" 3ms req_1")


def test_a_log_record_is_masked_with_its_arguments_and_its_traceback() -> None:
    try:
        raise ValueError(f"bad value {SPELLINGS['spaces']}")
    except ValueError as error:
        record = logging.LogRecord(
            "suitesub.api",
            logging.ERROR,
            __file__,
            1,
            "request %s from %s",
            (f"GET /v1/x?a={CARD_NUMBER} HTTP/1.1", SPELLINGS["full-width"]),
            (type(error), error, error.__traceback__),
        )

    assert CardNumberFilter().filter(record)
    formatted = logging.Formatter().format(record)

    assert not holds_card_number(formatted.encode())
    assert f"GET /v1/x?a={WITHHELD} HTTP/1.1" in formatted
    assert "ValueError: bad value " + MASK in formatted


def test_flask_and_werkzeug_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    create_app({"DATABASE_URL": "memory://", "JWT_SECRET": SECRET})
    caplog.set_level(logging.INFO)

    logging.getLogger("werkzeug").info(
        '127.0.0.1 - - [02/Dec/2026 07:52:50] "%s" %s %s',
        f"GET /v1/x/{quote(SPELLINGS['tab'])}?q={CARD_NUMBER} HTTP/1.1",
        "422",
        "-",
    )

    assert not holds_card_number(caplog.text.encode())
    assert f"?q={WITHHELD}" in caplog.text
