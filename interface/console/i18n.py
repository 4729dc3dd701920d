"""Japanese and English (SPEC §13): which language a page is shown in, and how
money and times read in it.

The language is, in this order: the one picked with the switch (a cookie,
kept a year); Japanese when the signed-in user acts for an organization in
Japan; the browser's ``Accept-Language``; English.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, format_datetime

LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "console_lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600
TRANSLATIONS = Path(__file__).parent / "translations"
#: The session key holding the signed-in organization's country.
COUNTRY_SESSION_KEY = "country"
JAPANESE_BY_DEFAULT_COUNTRIES = frozenset({"JP"})


def select_language() -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    if session.get(COUNTRY_SESSION_KEY) in JAPANESE_BY_DEFAULT_COUNTRIES:
        return "ja"
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def yen(amount: int) -> str:
    """An amount of the catalog's currency (JPY: no minor unit), as ``¥1,234``."""
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,}"


def moment(value: datetime | str | None) -> str:
    """A stored UTC time in the page's language, always marked UTC."""
    if value is None:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{format_datetime(when, 'medium')} UTC"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    Babel(
        app,
        locale_selector=select_language,
        default_translation_directories=str(TRANSLATIONS),
        default_domain="messages",
    )
    app.jinja_env.filters["yen"] = yen
    app.jinja_env.filters["moment"] = moment
