"""Text the log accepts: no control characters, no lone surrogates.

A NUL, a control character or a lone surrogate recorded once stays in the
immutable log for ever: PostgreSQL's ``text`` columns cannot hold a NUL (so a
view built from such an event cannot be written), a lone surrogate cannot be
encoded as UTF-8 (so its hash-chain link cannot be computed), and control
characters forge lines in logs and terminals. So they are refused wherever
text enters: at the HTTP edge (``interface/request_guard.py``, naming the
field) and in the domain (every event's data, :func:`refuse_unsafe_text`), so
that no path — the API, the CLI, a test, future code — can record one.

Refused, in every text field of every event: C0 controls (U+0000–U+001F,
tab, line feed and carriage return included: every field the log holds is a
name, an identifier, a code, an address or a token, all one line), DEL
(U+007F), C1 controls (U+0080–U+009F) and lone surrogates (U+D800–U+DFFF,
which only a JSON ``\\ud800`` escape can produce). A future free-text field
that needs line breaks gets its own allowance here, named, not a looser rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from domain.errors import InvalidRequest

#: C0 controls, DEL and C1 controls, as a character class valid both in
#: Python and in the ECMA regular expressions of JSON Schema.
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
#: Lone surrogates: code points, not characters.
LONE_SURROGATES = r"\ud800-\udfff"
#: Every refused code point.
UNSAFE_CHARACTERS = CONTROL_CHARACTERS + LONE_SURROGATES
#: What the OpenAPI document says of every text field (its ``pattern``): no
#: control character. It cannot name the lone surrogates as well — a JSON
#: Schema pattern reads Unicode characters, which a lone surrogate is not,
#: and request generators (schemathesis) stop honouring a pattern that names
#: a range of them — so the fields' description names those.
SAFE_TEXT_PATTERN = rf"^[^{CONTROL_CHARACTERS}]*$"
#: The words beside :data:`SAFE_TEXT_PATTERN` in the OpenAPI document.
SAFE_TEXT_DESCRIPTION = (
    "One line of text: no control character (U+0000-U+001F, U+007F-U+009F, "
    "tab and line breaks included) and no lone surrogate (U+D800-U+DFFF)."
)

_UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")

#: How the refused characters can appear in UTF-8 JSON bytes: escaped
#: (``\u0000``-``\u001f``, ``\b \f \n \r \t``, ``\u007f``-``\u009f``,
#: ``\ud800``-``\udfff``) or raw (DEL, a C1 control, a surrogate's bytes).
_UNSAFE_IN_JSON = re.compile(
    rb"\\(?:u00[01][0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F]|u[dD][89a-fA-F][0-9a-fA-F]{2}|[bfnrt])"
    rb"|\x7f|\xc2[\x80-\x9f]|\xed[\xa0-\xbf]"
)


def text_problem(value: str) -> str | None:
    """Why ``value`` may not be recorded, or ``None`` when it may."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    code_point = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code_point <= 0xDFFF else "a control character"
    return f"must not contain {kind} (U+{code_point:04X} at index {found.start()})"


def may_hold_unsafe_text(json_bytes: bytes) -> bool:
    """A fast first look at UTF-8 JSON: ``False`` means no string in it is refused.

    ``True`` may be a false alarm (an escaped backslash before an ``n``):
    :func:`unsafe_text_locations` on the decoded value decides.
    """
    # Every match starts with one of these bytes: four scans in C skip the
    # regular expression for almost every sound event (the audit reads millions).
    if (
        b"\\" not in json_bytes
        and b"\x7f" not in json_bytes
        and b"\xc2" not in json_bytes
        and b"\xed" not in json_bytes
    ):
        return False
    return _UNSAFE_IN_JSON.search(json_bytes) is not None


def unsafe_text_locations(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(location, problem) for every string in ``value`` (keys too) that is refused.

    Walks dicts and lists without recursion, so a deeply nested value cannot
    exhaust the stack; ``path`` names the top (``""`` for none).
    """
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:
        location, item = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                yield location or "_value", problem
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                name = str(key)
                key_problem = text_problem(name)
                if key_problem is not None:  # named with escapes, never echoed raw
                    name = name.encode("unicode_escape").decode("ascii")
                child_location = f"{location}.{name}" if location else name
                if key_problem is not None:
                    yield child_location, f"field name {key_problem}"
                children.append((child_location, child))
            pending.extend(reversed(children))
        elif isinstance(item, list | tuple):
            pending.extend(
                (f"{location}[{index}]", child) for index, child in reversed(list(enumerate(item)))
            )


def refuse_unsafe_text(value: Any, path: str = "") -> None:
    """Raise :class:`InvalidRequest` (``validation_failed``) naming every field of
    ``value`` whose text may not be recorded."""
    # Every event's data passes here (benchmark renewal_sweep: walking a
    # renewal's invoice string by string was an eighth of the sweep). orjson
    # writes every string of the value — keys too — escaped or raw, so no
    # match in its bytes proves the walk below would find nothing; anything
    # orjson refuses (a lone surrogate, a key that is no string) is walked.
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        pass
    else:
        if not may_hold_unsafe_text(encoded):
            return
    problems: dict[str, list[str]] = {}
    for location, problem in unsafe_text_locations(value, path):
        problems.setdefault(location, []).append(problem)
    if problems:
        raise InvalidRequest(
            "Text may not contain control characters or lone surrogates.",
            details={"fields": problems},
        )
