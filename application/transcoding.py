"""The application's transcoder: the library's JSON form, decoded with orjson.

Every load, rebuild and audit decodes each stored event, and the library's
``JSONTranscoder`` spends most of that time in the standard library's JSON
decoder and its per-object hook (benchmark aggregate_load_growth_worst,
docs/performance.md). :class:`OrjsonDecodingTranscoder` keeps the stored
form exactly: it *encodes* with the library's own encoder, so the stored
bytes are the same as before, byte for byte, and it *decodes* the same text
to the same values — orjson parses, then each registered transcoding turns
its ``{"_type_": …, "_data_": …}`` object back into its value, inner objects
first, as the library's object hook does.

orjson differs from the standard library in a few corners, and each goes to
the library's decoder instead: text orjson refuses (``NaN``, a lone surrogate
escape, nesting deeper than orjson's limit) and any number orjson reads as a
float (a fraction, an exponent, or an integer beyond 64 bits, which orjson
would round to a float). The events' data is plain JSON without floats
(domain.tamper_evidence), so that path is rare; tests/application/
test_transcoding.py holds the two decoders to the same values.
"""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding, TranscodingNotRegisteredError


class OrjsonDecodingTranscoder(JSONTranscoder):
    """The library's JSON transcoder with a faster decoder of the same text."""

    def decode(self, data: bytes) -> Any:
        try:
            value = orjson.loads(data)
            return revived(value, self.names)
        except (orjson.JSONDecodeError, NotPlainJSON):
            return super().decode(data)


class NotPlainJSON(Exception):
    """orjson read a number as a float: the library's decoder decides its value."""


def revived(value: Any, names: dict[str, Transcoding]) -> Any:
    """``value`` with every transcoded object decoded, inner ones first (in place).

    Raises :class:`NotPlainJSON` at a float, whose text orjson and the
    standard library may read differently (an integer beyond 64 bits). The
    two shapes every event holds — a transcoded object of a string (its
    ``timestamp``) and a list of strings — are decoded without a call of
    their own (benchmark aggregate_load_growth_worst).
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            item_kind = type(item)
            if item_kind is str:
                continue
            if item_kind is dict:
                type_name = item.get("_type_")
                data = item.get("_data_")
                transcoding = names.get(type_name) if type(type_name) is str else None
                if len(item) == 2 and transcoding is not None and type(data) is str:
                    value[key] = transcoding.decode(data)
                else:
                    value[key] = revived(item, names)
            elif item_kind is list:
                for element in item:
                    if type(element) is not str:
                        revive_items(item, names)
                        break
            elif item_kind is float:
                raise NotPlainJSON
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            return transcoded(value["_type_"], value["_data_"], names)
    elif kind is list:
        revive_items(value, names)
    elif kind is float:
        raise NotPlainJSON
    return value


def revive_items(items: list[Any], names: dict[str, Transcoding]) -> None:
    """Decode the transcoded objects in ``items`` (in place)."""
    for index, item in enumerate(items):
        item_kind = type(item)
        if item_kind is dict or item_kind is list:
            items[index] = revived(item, names)
        elif item_kind is float:
            raise NotPlainJSON


def transcoded(name: str, data: Any, names: dict[str, Transcoding]) -> Any:
    """The value a registered transcoding decodes; the library's error otherwise."""
    try:
        transcoding = names[name]
    except KeyError as error:
        msg = (
            f"Data serialized with name '{name}' is not "
            "deserializable. Please register a "
            "custom transcoding for this type."
        )
        raise TranscodingNotRegisteredError(msg) from error
    return transcoding.decode(data)
