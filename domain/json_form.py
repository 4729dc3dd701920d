"""The JSON form of the domain's dataclasses, derived from their fields.

One rule, in one place, for every value the domain writes as JSON (the facts
in snapshots and projection rows, the accepted quote in events and answers):
a dataclass is an object whose keys are its field names, in field order, and
each field's value follows its type hint —

| type hint | JSON |
|---|---|
| ``str``, ``int``, ``bool`` | as is |
| ``date``, ``datetime`` | ISO 8601 string (``date.isoformat()``, ``datetime.isoformat()``) |
| ``X | None`` | ``null`` or the form of ``X`` |
| ``tuple[X, ...]``, ``tuple[X, Y]`` | array of the forms of the items |
| a dataclass | object, by this same rule |
| ``dict[str, Any]``, ``Mapping[str, Any]`` | a copy of the object (plain JSON already) |
| ``Any`` | as is (plain JSON already) |

A field may name its own codec (``field(metadata=codec(encode, decode))``)
when its stored form is older than this rule (the contract's).

Reading back (:func:`from_json`) is the inverse; a key that is missing takes
the field's default (so an older stored form without a newer field still
reads), a missing key without a default is a ``KeyError``, and unknown keys
are ignored. Nobody writes the keys by hand: add a field to the dataclass and
its JSON form has it.

The converters are compiled once per class (type hints resolved once): the
facts are read back from every view row, so this is on the read path
(docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar, cast

T = TypeVar("T")

Convert = Callable[[Any], Any]

_MISSING = dataclasses.MISSING
#: The field metadata key of a field's own codec (:func:`codec`).
JSON_CODEC = "json_codec"


def to_json(value: Any) -> dict[str, Any]:
    """The JSON form (plain dicts, lists, strings, numbers) of a dataclass instance."""
    return cast(dict[str, Any], _encoder(type(value))(value))


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """The instance of dataclass ``cls`` whose JSON form is ``data``."""
    return cast(T, _decoder(cls)(data))


def json_keys(cls: type[Any]) -> tuple[str, ...]:
    """The keys of ``cls``'s JSON form, in order (its field names)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def json_field_types(cls: type[Any]) -> dict[str, Any]:
    """Each field's resolved type hint (for checks that a schema agrees)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# -- compiled converters ---------------------------------------------------------

_ENCODERS: dict[type[Any], Convert] = {}
_DECODERS: dict[type[Any], Convert] = {}


def _identity(value: Any) -> Any:
    return value


def _copy(value: Any) -> Any:
    return None if value is None else dict(value)


def _date_in(value: str) -> date:
    return date.fromisoformat(value)


def _datetime_in(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _iso(value: date) -> str:
    return value.isoformat()


def _encoder(cls: type[Any]) -> Convert:
    found = _ENCODERS.get(cls)
    if found is not None:
        return found
    if not dataclasses.is_dataclass(cls):
        msg = f"{cls!r} is not a dataclass"
        raise TypeError(msg)
    hints = typing.get_type_hints(cls)
    plan = tuple(
        (f.name, _custom(f, 0) or _encode_hint(hints[f.name])) for f in dataclasses.fields(cls)
    )

    def encode(value: Any) -> dict[str, Any]:
        return {
            name: (convert(getattr(value, name)) if convert is not None else getattr(value, name))
            for name, convert in plan
        }

    _ENCODERS[cls] = encode
    return encode


def _decoder(cls: type[Any]) -> Convert:
    found = _DECODERS.get(cls)
    if found is not None:
        return found
    if not dataclasses.is_dataclass(cls):
        msg = f"{cls!r} is not a dataclass"
        raise TypeError(msg)
    hints = typing.get_type_hints(cls)
    plan: list[tuple[str, Convert | None, Callable[[], Any] | None]] = []
    for f in dataclasses.fields(cls):
        default: Callable[[], Any] | None = None
        if f.default is not _MISSING:
            default = _constant(f.default)
        elif f.default_factory is not _MISSING:
            default = f.default_factory
        plan.append((f.name, _custom(f, 1) or _decode_hint(hints[f.name]), default))
    frozen_plan = tuple(plan)

    def decode(data: Mapping[str, Any]) -> Any:
        values: dict[str, Any] = {}
        for name, convert, default in frozen_plan:
            if name in data:
                raw = data[name]
                values[name] = convert(raw) if convert is not None else raw
            elif default is not None:
                values[name] = default()
            else:
                msg = f"{cls.__name__}: the JSON form has no {name!r}"
                raise KeyError(msg)
        return cls(**values)

    _DECODERS[cls] = decode
    return decode


def codec(encode: Convert, decode: Convert) -> dict[str, tuple[Convert, Convert]]:
    """A field's own JSON form, as ``field(metadata=codec(encode, decode))``: for
    a value whose stored form predates this module (``None`` stays ``null``)."""
    return {JSON_CODEC: (encode, decode)}


def _custom(f: dataclasses.Field[Any], which: int) -> Convert | None:
    pair = f.metadata.get(JSON_CODEC)
    if pair is None:
        return None
    convert: Convert = pair[which]
    return lambda value: None if value is None else convert(value)


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _optional(convert: Convert | None) -> Convert | None:
    if convert is None:
        return None
    return lambda value: None if value is None else convert(value)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            msg = f"unsupported union {hint!r} in a JSON form"
            raise TypeError(msg)
        return args[0], True
    return hint, False


def _encode_hint(hint: Any) -> Convert | None:
    """``None`` means the value is its own JSON form."""
    inner, optional = _split_optional(hint)
    convert = _encode_plain(inner)
    return _optional(convert) if optional else convert


def _decode_hint(hint: Any) -> Convert | None:
    inner, optional = _split_optional(hint)
    convert = _decode_plain(inner)
    return _optional(convert) if optional else convert


def _encode_plain(hint: Any) -> Convert | None:
    if hint in (str, int, bool):
        return None
    if hint is datetime or hint is date:
        return _iso
    if hint is Any:
        return None
    if typing.get_origin(hint) in (dict, Mapping):
        return _copy
    if typing.get_origin(hint) is tuple:
        items = [_encode_hint(a) for a in typing.get_args(hint) if a is not Ellipsis]
        if typing.get_args(hint)[-1] is Ellipsis:
            item = items[0]
            if item is None:
                return list
            return lambda value: [item(v) for v in value]
        converts = tuple(c or _identity for c in items)
        return lambda value: [c(v) for c, v in zip(converts, value, strict=True)]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _encoder(hint)
    msg = f"unsupported type {hint!r} in a JSON form"
    raise TypeError(msg)


def _decode_plain(hint: Any) -> Convert | None:
    if hint in (str, int, bool):
        return None
    if hint is datetime:
        return _datetime_in
    if hint is date:
        return _date_in
    if hint is Any:
        return None
    if typing.get_origin(hint) in (dict, Mapping):
        return _copy
    if typing.get_origin(hint) is tuple:
        items = [_decode_hint(a) for a in typing.get_args(hint) if a is not Ellipsis]
        if typing.get_args(hint)[-1] is Ellipsis:
            item = items[0]
            if item is None:
                return tuple
            return lambda value: tuple(item(v) for v in value)
        converts = tuple(c or _identity for c in items)
        return lambda value: tuple(c(v) for c, v in zip(converts, value, strict=True))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _decoder(hint)
    msg = f"unsupported type {hint!r} in a JSON form"
    raise TypeError(msg)
