"""Strict parsing of ETSI 014 requests into domain objects.

ETSI field names appear here (reading) and in ``etsi_api.responses`` (writing) only.
Anything malformed is a BadRequest naming the offending field.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

from kms.errors import BadRequest
from kms.keys import KeyRequest

KEY_REQUEST_FIELDS = {"number", "size", "additional_slave_SAE_IDs",
                      "extension_mandatory", "extension_optional"}
KEY_IDS_FIELDS = {"key_IDs", "key_IDs_extension"}
KEY_ID_FIELDS = {"key_ID", "key_ID_extension"}
_MAX_INT = 2**31 - 1


_MAX_JSON_INT_DIGITS = 64


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        repeated = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise BadRequest(f"duplicate key in request body: {repeated[:64]}")
    return data


def _short_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_JSON_INT_DIGITS:
        raise BadRequest(f"request body holds a number of more than {_MAX_JSON_INT_DIGITS} digits")
    return int(digits)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def parse_json_object(body: bytes, required: bool) -> dict[str, Any]:
    """Decode a JSON object body; an empty body is ``{}`` unless ``required``.

    Stricter than ``json.loads``: a key repeated within an object, NaN, Infinity and
    integers of more than 64 digits are refused, and so is nesting deeper than the
    interpreter's recursion limit.
    """
    if not body.strip():
        if required:
            raise BadRequest("request body must be a JSON object")
        return {}
    try:
        data = json.loads(body, object_pairs_hook=_object_without_repeated_keys, parse_int=_short_int,
                          parse_constant=_not_json)
    except RecursionError:
        raise BadRequest("request body nests too deeply") from None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError among them
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _reject_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"unknown field in {where}: {', '.join(unknown)}", [{"unknown_fields": unknown}])


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    if not 0 < value <= _MAX_INT:
        raise BadRequest(f"{name} must be a positive integer")
    return value


def _objects(value: Any, name: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadRequest(f"{name} must be an array of objects")
    return tuple(value)


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest(f"{name} must be an array of strings")
    return tuple(value)


def key_request(data: Mapping[str, Any], default_size_bits: int) -> KeyRequest:
    """A Key request object (POST body or GET query) as a KeyRequest."""
    _reject_unknown(data, KEY_REQUEST_FIELDS, "key request")
    return KeyRequest(
        number=_integer(data.get("number", 1), "number"),
        size_bits=_integer(data.get("size", default_size_bits), "size"),
        additional_slave_ids=_strings(data.get("additional_slave_SAE_IDs", []), "additional_slave_SAE_IDs"),
        extension_mandatory=_objects(data.get("extension_mandatory", []), "extension_mandatory"),
        extension_optional=_objects(data.get("extension_optional", []), "extension_optional"),
    )


def query_integers(args: Mapping[str, str], allowed: set[str]) -> dict[str, int]:
    """Decimal integer query parameters, each given at most once."""
    _reject_unknown(args, allowed, "query")
    out = {}
    for name in args:
        values = args.getlist(name) if hasattr(args, "getlist") else [args[name]]
        if len(values) != 1 or not values[0].isascii() or not values[0].isdecimal():
            raise BadRequest(f"{name} must be given once, as a decimal integer")
        out[name] = int(values[0])
    return out


def key_id(value: Any) -> str:
    """A key_ID in canonical lowercase UUID form."""
    if not isinstance(value, str):
        raise BadRequest("key_ID must be a UUID string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest("key_ID must be a UUID", [{"key_ID": value[:64]}]) from None


def key_ids(data: Mapping[str, Any]) -> list[str]:
    """The key_IDs of a Key IDs object."""
    _reject_unknown(data, KEY_IDS_FIELDS, "key IDs")
    entries = data.get("key_IDs")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("key_IDs must be a non-empty array")
    ids = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadRequest("key_IDs entries must be objects")
        _reject_unknown(entry, KEY_ID_FIELDS, "key_IDs entry")
        ids.append(key_id(entry.get("key_ID")))
    return ids
