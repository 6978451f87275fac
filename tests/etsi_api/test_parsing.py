"""etsi_api.parsing: JSON bodies that Python's json module would accept or choke on
(huge numbers, deep nesting, repeated keys, NaN) are BadRequests, never crashes."""

from __future__ import annotations

import pytest

from etsi_api.parsing import parse_json_object
from kms.errors import BadRequest


@pytest.mark.parametrize("body, message", [
    (b'{"number": ' + b"1" * 5000 + b"}", "request body holds a number of more than 64 digits"),
    (b'{"size": -' + b"7" * 65 + b"}", "request body holds a number of more than 64 digits"),
    (b"[" * 30000 + b"]" * 30000, "request body nests too deeply"),
    (b'{"a": ' + b'{"b": ' * 30000 + b"1" + b"}" * 30001, "request body nests too deeply"),
    (b'{"number": 1, "number": 1}', "duplicate key in request body: number"),
    (b'{"key_IDs": [{"key_ID": "x", "key_ID": "y"}]}', "duplicate key in request body: key_ID"),
    (b'{"number": NaN}', "request body is not valid JSON"),
    (b'{"size": Infinity}', "request body is not valid JSON"),
])
def test_hostile_json_is_a_bad_request(body, message):
    with pytest.raises(BadRequest) as error:
        parse_json_object(body, required=True)
    assert error.value.message == message


def test_duplicate_key_names_are_cut_short():
    with pytest.raises(BadRequest) as error:
        parse_json_object(b'{"%s": 1, "%s": 2}' % (b"k" * 500, b"k" * 500), required=True)
    assert len(error.value.message) < 120


def test_ordinary_bodies_still_parse():
    assert parse_json_object(b'{"number": 2, "size": 256, "extension_optional": [{"a": {"b": [1.5]}}]}',
                             required=True) == {"number": 2, "size": 256, "extension_optional": [{"a": {"b": [1.5]}}]}
    assert parse_json_object(b"  ", required=False) == {}
    assert parse_json_object(b'{"offset": -' + b"9" * 64 + b"}", required=True) == {"offset": -int("9" * 64)}
