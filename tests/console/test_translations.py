"""Every message of the console reads in Japanese, and the app loads what the .po says."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "interface" / "console"
JAPANESE = CONSOLE / "translations" / "ja" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "_l": None, "gettext": None, "ngettext": (1, 2)}


def extracted_messages() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(CONSOLE), METHODS, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_console_message_has_a_japanese_translation() -> None:
    with (JAPANESE / "messages.po").open("rb") as source:
        catalog = read_po(source)
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalog
        if m.id and all(m.string if isinstance(m.string, tuple) else (m.string,))
    }
    messages = extracted_messages()
    assert len(messages) > 150
    assert sorted(messages - translated) == []


def test_translations_keep_every_placeholder() -> None:
    with (JAPANESE / "messages.po").open("rb") as source:
        catalog = read_po(source)
    problems = [(message.id, errors) for message, errors in catalog.check()]
    assert problems == []


def _as_key(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def test_the_compiled_catalog_is_the_po_file() -> None:
    with (JAPANESE / "messages.po").open("rb") as source:
        written = {_as_key(m.id): _as_key(m.string) for m in read_po(source) if m.id}
    with (JAPANESE / "messages.mo").open("rb") as source:
        compiled = {_as_key(m.id): _as_key(m.string) for m in read_mo(source) if m.id}
    assert compiled == written, "run `make translations` to compile the .po"
