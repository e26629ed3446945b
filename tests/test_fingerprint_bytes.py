"""Fingerprints and memory hashes hash the stdlib's JSON bytes, whichever encoder writes them.

Every link holds fingerprints (``links.fingerprint``) and value hashes (``links.memory``) of the
JSON of a customer's fields. orjson writes that JSON ten times faster; if it wrote one byte
otherwise, every record would look changed after an upgrade and be written again. So its bytes
are held to the stdlib encoder's for every code point, and the hashes to values computed by the
stdlib alone.
"""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.model import CANONICAL_FIELDS, Customer, canonical_json, fingerprint
from worker.engine.twoway import EMPTY, value_hash

#: what fingerprints hashed before orjson wrote them (connectors/model.py's ``_FINGERPRINTED``).
STDLIB = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
#: every code point that is valid unicode: all but the surrogates.
SCALARS = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
TEXT_FIELDS = [name for name in CANONICAL_FIELDS if name != "active"]

CUSTOMER = Customer(
    kind="company",
    name="Señor Café SpA",
    company_name="Señor Café SpA",
    email="pagos@senorcafe.example",
    phone="+56 2 2345 6789",
    address_line1='Av. Providencia 1234\t"Of." 501',
    city="Santiago",
    country="CL",
    notes="Cliente desde 2019 ☕\n\u2028\x7f\x01",
)


def _old_value_hash(value: str) -> str:
    return hashlib.sha256(json.encoder.encode_basestring(value).encode("utf-8")).hexdigest()[:16]


def test_given_every_code_point_when_written_as_a_json_string_then_orjson_writes_the_stdlibs_bytes() -> None:
    # Both encoders escape one character at a time, whatever stands beside it: equal for each, equal for all.
    differ = [c for c in SCALARS if orjson.dumps(c) != json.encoder.encode_basestring(c).encode("utf-8")]

    assert differ == []


def test_given_a_customer_when_fingerprinted_then_the_hash_is_the_one_the_stdlib_encoder_gave() -> None:
    # Computed with the stdlib alone, before orjson: a link saved then is unchanged now.
    assert fingerprint(CUSTOMER, CANONICAL_FIELDS) == "d11d15c9e3b69c0e42103b5e1fc292f7f39e7ee9712cf23749977319bd0bcf4e"
    assert value_hash(CUSTOMER.notes) == "26715d137af24f46" == _old_value_hash(CUSTOMER.notes or "")
    assert value_hash(None) == value_hash("") == EMPTY


@given(
    st.dictionaries(
        st.sampled_from(TEXT_FIELDS), st.none() | st.text(st.characters(exclude_categories=["Cs"])), max_size=12
    )
)
def test_given_any_text_fields_when_written_then_the_bytes_are_the_stdlibs(payload: dict[str, str | None]) -> None:
    assert canonical_json(payload) == STDLIB(payload).encode("utf-8")
    for value in payload.values():
        if value:
            assert value_hash(value) == _old_value_hash(value)


def test_given_a_lone_surrogate_when_hashed_then_it_fails_as_the_stdlib_made_it_fail() -> None:
    # The reader quarantines such a record before anything hashes it (connectors/reading.py); should one
    # get here, the error is the stdlib's, as it was.
    with pytest.raises(UnicodeEncodeError):
        canonical_json({"name": "bad \ud800"})
    with pytest.raises(UnicodeEncodeError):
        value_hash("bad \udfff")


def test_given_values_that_are_not_text_when_written_then_the_stdlib_writes_them() -> None:
    # orjson writes some numbers otherwise (1e16, big integers): only text and None go through it.
    payload = {"b": 1e16, "a": 10**30, "c": True}
    written = b'{"a":1000000000000000000000000000000,"b":1e+16,"c":true}'

    assert canonical_json(payload) == STDLIB(payload).encode("utf-8") == written
