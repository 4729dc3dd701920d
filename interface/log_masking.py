"""No card number reaches a log line: gunicorn's access and error logs, Flask's,
werkzeug's and the service's own.

The request guard refuses a request that carries a card number, but its
request line is logged all the same (gunicorn writes the access log after the
answer; it logs a request it could not even parse). So every log line is
masked on its way out:

- **access log** (``interface.gunicorn_logging.CardSafeGunicornLogger``):
  the query string is never written — each parameter's value is withheld (``?min_position=…``) —
  and every field a client chose (the path, parameter names, the user of a
  Basic ``Authorization``, the referer, the user agent, any header or
  environment field a format names) has its card numbers replaced by
  ``[card number removed]`` — found as a reader would decode the line, so
  also when written with ``%20`` or ``\\t`` escapes
  (:func:`mask_card_numbers_in_log_text`, over ``domain.card_numbers``);
- **error logs** (:class:`CardNumberFilter`, on gunicorn's error log, on the
  handlers of the root logger that ``suitesub serve`` and ``suitesub
  worker`` configure, and on werkzeug's logger): each message, with its
  arguments and any traceback, is masked the same way, and a request line
  in it (``GET /path?query HTTP/1.1``) has its query values withheld.

A card number in a log line is masked, not refused: the line still says that
a request came and what became of it.
"""

from __future__ import annotations

import logging
import re

from flask import Flask
from flask.logging import default_handler

from domain.card_numbers import MASK, card_number_spans

#: How a withheld query value reads in a log line.
WITHHELD = "…"
_REQUEST_LINE = re.compile(r"^([A-Z]{1,20}) (\S+) (HTTP/\d(?:\.\d)?)$")
#: How a character can be written escaped in a log line: a URL's ``%e3%80%80``,
#: a repr's ``\\xa0`` / ``\\u3000`` / ``\\t``, a bytes repr's ``\\xe3\\x80\\x80``.
_ESCAPES = re.compile(
    r"(?P<percent>(?:%[0-9A-Fa-f]{2})+)|(?P<hex>(?:\\x[0-9A-Fa-f]{2})+)"
    r"|\\u(?P<u>[0-9A-Fa-f]{4})|\\U(?P<U>[0-9A-Fa-f]{8})|(?P<control>\\[tnrvf])"
)


def _unescaped(match: re.Match[str]) -> str:
    if match["percent"]:
        return bytes.fromhex(match["percent"].replace("%", "")).decode("utf-8", "replace")
    if match["hex"]:
        raw = bytes.fromhex(match["hex"].replace("\\x", ""))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    code = match["u"] or match["U"]
    if code:
        return chr(min(int(code, 16), 0x10FFFF))
    return " "


def mask_card_numbers_in_log_text(text: str) -> str:
    """``text`` with every card number masked, also one written with escapes.

    A card number is looked for in the text as a reader would decode it (see
    :data:`_ESCAPES`); each one found is masked in the text as written, with
    the escapes it spans.
    """
    if not any(char.isdigit() for char in text) and "%" not in text and "\\" not in text:
        return text
    decoded: list[str] = []
    origin: list[tuple[int, int]] = []  # the written span of each decoded character
    cursor = 0
    for match in _ESCAPES.finditer(text):
        for index in range(cursor, match.start()):
            decoded.append(text[index])
            origin.append((index, index + 1))
        for char in _unescaped(match):
            decoded.append(char)
            origin.append(match.span())
        cursor = match.end()
    for index in range(cursor, len(text)):
        decoded.append(text[index])
        origin.append((index, index + 1))
    spans = [
        (origin[start][0], origin[end - 1][1]) for start, end in card_number_spans("".join(decoded))
    ]
    if not spans:
        return text
    pieces: list[str] = []
    written = 0
    for start, end in sorted(spans):
        if start < written:  # overlaps the span masked last
            written = max(written, end)
            continue
        pieces += [text[written:start], MASK]
        written = end
    pieces.append(text[written:])
    return "".join(pieces)


def loggable_query(query: str) -> str:
    """The parameter names of a query string, each value withheld."""
    if not query:
        return ""
    names = [part.split("=", 1)[0] for part in query.split("&") if part]
    return mask_card_numbers_in_log_text("&".join(f"{name}={WITHHELD}" for name in names))


def loggable_path(path: str) -> str:
    """``path`` with its card numbers masked, whether written plainly or %-encoded."""
    return mask_card_numbers_in_log_text(path)


def loggable_target(target: str) -> str:
    """A request target (``/path?query``) as it may be logged."""
    path, question, query = target.partition("?")
    return loggable_path(path) + (f"?{loggable_query(query)}" if question else "")


def loggable_request_line(line: str) -> str:
    match = _REQUEST_LINE.match(line)
    if match is None:
        return mask_card_numbers_in_log_text(line)
    method, target, protocol = match.groups()
    return f"{method} {loggable_target(target)} {protocol}"


class CardNumberFilter(logging.Filter):
    """Masks card numbers (and query values of request lines) in a log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                loggable_request_line(arg)
                if isinstance(arg, str) and _REQUEST_LINE.match(arg)
                else arg
                for arg in record.args
            )
        record.msg = mask_card_numbers_in_log_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_card_numbers_in_log_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_card_numbers_in_log_text(record.stack_info)
        return True


def add_card_number_filter(to: logging.Filterer) -> None:
    """Give ``to`` (a logger or a handler) a :class:`CardNumberFilter`, once."""
    if not any(isinstance(each, CardNumberFilter) for each in to.filters):
        to.addFilter(CardNumberFilter())


def mask_card_numbers_in_logs() -> None:
    """Mask every line the root logger's handlers write (after ``basicConfig``)."""
    for handler in logging.getLogger().handlers:
        add_card_number_filter(handler)


def init_app(app: Flask) -> None:
    """Mask Flask's own log handler and werkzeug's request log (``flask run``)."""
    add_card_number_filter(default_handler)
    add_card_number_filter(logging.getLogger("werkzeug"))
