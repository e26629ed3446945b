"""The field-table machinery (connectors/fields.py): one declaration gives reading, the write
body, the partial-update set, the names in refusals and the spec's fields kept."""

from __future__ import annotations

from typing import Any

import pytest

from connectors import REGISTRY, mexico
from connectors import converters as cv
from connectors.errors import FieldMappingError
from connectors.fields import IDENTITY, Field, FieldTable, Reading, Writing, same
from connectors.model import Customer, NotTextError
from connectors.piriod import PiriodConnector, PiriodSettings
from connectors.spec import TargetSpec
from connectors.thredfi import ThredfiConnector, ThredfiSettings

# A small system: read and written under the same names, except a nested read and a rename.
TABLE = FieldTable(
    Field(IDENTITY, write="ref", when="create"),
    same("name", "title"),
    Field("kind", decode=lambda value, reading: "individual" if reading.got.get("first_name") else "company"),
    same("first_name", kept=False),
    same("email"),
    Field("city", "address.city", "town"),
    same("notes", clears=False),
    Field("currency", ("currency_code", "currency"), "currency", when="create"),
    Field("active", "status", decode=cv.active_unless("gone"), names=()),
)


def a_customer(**changes: Any) -> Customer:
    values: dict[str, Any] = {"name": "Acme", "email": "ops@acme.example", "city": "Lyon", "notes": "vip"}
    return Customer(**{**values, **changes})


def test_given_table_when_asked_its_kept_fields_then_entries_kept_without_kind_active_or_identity() -> None:
    assert TABLE.kept == frozenset({"name", "email", "city", "notes", "currency"})


def test_given_record_when_read_then_names_paths_and_alternatives_land_in_canonical() -> None:
    raw = {"title": " Acme ", "email": "ops@acme.example", "address": {"city": "Lyon"}, "currency": "EUR"}

    customer = TABLE.customer(raw, "demo")

    assert customer == Customer(name="Acme", email="ops@acme.example", city="Lyon", currency="EUR")


def test_given_alternative_keys_when_read_then_first_present_key_wins_even_when_null() -> None:
    assert TABLE.values({"title": "A", "currency_code": None, "currency": "EUR"}, "demo")["currency"] is None
    assert TABLE.values({"title": "A", "currency": "EUR"}, "demo")["currency"] == "EUR"


def test_given_path_through_a_value_that_is_no_object_when_read_then_none() -> None:
    assert TABLE.values({"title": "A", "address": "Lyon"}, "demo")["city"] is None


def test_given_decoder_of_a_derived_field_when_read_then_it_sees_the_fields_read_before_it() -> None:
    # kind is declared before first_name: it sees no first name yet, whatever the record holds.
    assert TABLE.values({"title": "A", "first_name": "Ada"}, "demo")["kind"] == "company"
    later = FieldTable(same("first_name"), Field("kind", decode=TABLE.entries[2].decode))
    assert later.values({"first_name": "Ada"}, "demo")["kind"] == "individual"


def test_given_object_in_a_text_field_when_read_then_refused_naming_the_canonical_field() -> None:
    with pytest.raises(NotTextError) as caught:
        TABLE.customer({"title": "A", "email": {"x": 1}}, "demo")
    assert caught.value.field == "email"


def test_given_required_decoder_when_value_missing_then_mapping_error_names_the_field() -> None:
    table = FieldTable(Field("name", "title", decode=cv.required(cv.text, "the record has no title")))
    with pytest.raises(FieldMappingError) as caught:
        table.customer({"title": "  "}, "demo")
    assert (caught.value.field, caught.value.reason) == ("name", "the record has no title")


def test_given_create_when_payload_built_then_identity_create_only_keys_and_no_nulls() -> None:
    customer = a_customer(email=None, currency="EUR")

    body = TABLE.payload(Writing(customer, "demo:t:1", create=True))

    assert body == {"ref": "demo:t:1", "title": "Acme", "town": "Lyon", "notes": "vip", "currency": "EUR"}


def test_given_update_when_payload_built_then_nulls_clear_unless_the_field_says_otherwise() -> None:
    customer = a_customer(email=None, notes=None, currency="EUR")

    body = TABLE.payload(Writing(customer, "demo:t:1", create=False))

    # email is cleared with a null; notes (clears=False) is left out; ref and currency are create-only.
    assert body == {"title": "Acme", "first_name": None, "email": None, "town": "Lyon"}


def test_given_table_default_of_no_clearing_when_update_built_then_only_clearing_entries_send_nulls() -> None:
    table = FieldTable(same("email"), same("phone", clears=True), same("notes"), clears=False)

    body = table.payload(Writing(Customer(name="A"), "x", create=False))

    assert body == {"phone": None}


def test_given_encoder_when_payload_built_then_it_sees_the_writing() -> None:
    table = FieldTable(Field("name", write="display", encode=lambda value, w: f"{value} ({w.external_id})"))

    body = table.payload(Writing(Customer(name="Acme"), "demo:t:9", create=True))

    assert body == {"display": "Acme (demo:t:9)"}


def test_given_table_when_vendor_names_derived_then_renamed_reads_and_writes_without_paths_or_identity() -> None:
    assert dict(TABLE.vendor_fields) == {
        "title": "name",
        "town": "city",
        "currency_code": "currency",
    }
    assert dict(TABLE.owners) == {
        "ref": IDENTITY,
        "title": "name",
        "first_name": "first_name",
        "email": "email",
        "town": "city",
        "notes": "notes",
        "currency": "currency",
    }


def test_given_explicit_names_when_vendor_names_derived_then_they_replace_the_default() -> None:
    table = FieldTable(Field("notes", "meta.notes", "meta", names=("meta.notes",)), same("phone", "tel"))
    assert dict(table.vendor_fields) == {"meta.notes": "notes", "tel": "phone"}


def test_given_reading_when_a_converter_raises_then_the_field_being_read_is_named() -> None:
    reading = Reading("bigcapital", {}, field="kind")
    decode = cv.choice({"business": "company"}, "not a customer type")
    with pytest.raises(FieldMappingError) as caught:
        decode("vendor", reading)
    assert caught.value.field == "kind"


# -- the real tables ---------------------------------------------------------------------


def thredfi() -> ThredfiConnector:
    settings = ThredfiSettings(
        system="thredfi", base_url="http://thredfi.test", partner_uuid="p", api_key="k", business_id="b-1"
    )
    return ThredfiConnector("ledger", settings)


@pytest.mark.parametrize(
    "customer",
    [
        Customer(name="Acme SA", email="ops@acme.example", phone="+52 55 1234 5678", country="MX", tax_id="X1"),
        Customer(kind="individual", name="María José García", city="Sevilla", notes="pays late", country="ES"),
        Customer(name="Bare"),
    ],
)
def test_given_customer_when_thredfi_payload_read_back_then_round_trip_equals_shape(customer: Customer) -> None:
    connector = thredfi()

    body = connector.to_payload(customer, "bigcapital:org:1", create=False)

    assert connector.to_canonical({"id": 1, **body}) == connector.shape(customer)


def test_given_thredfi_table_then_it_keeps_the_declared_fields_and_names_both_name_fields() -> None:
    connector = thredfi()
    assert connector.spec.fields == frozenset(
        {"company_name", "email", "phone", "mobile", "address_line1", "address_line2", "city", "state",
         "postal_code", "tax_id", "notes", "country"}
    )  # fmt: skip
    assert connector.vendor_fields["company_name"] == connector.vendor_fields["individual_name"] == "name"
    assert connector.vendor_fields["status"] == "active"


def test_given_piriod_update_not_speaking_for_notes_when_narrowed_then_metadata_left_out() -> None:
    settings = PiriodSettings(system="piriod", base_url="http://piriod.test", api_token="t", workspace="w")
    connector = PiriodConnector("billing", settings)
    body = connector.to_payload(Customer(name="Acme", address_line1="Av. 1", notes="vip"), "piriod:w:1", create=False)

    assert body["metadata"] == {"external_id": "piriod:w:1", "notes": "vip"}
    assert "metadata" not in connector.only(body, frozenset({"name", "address_line1"}))
    assert connector.only(body, frozenset({"name", "notes"}))["metadata"] == body["metadata"]


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        ("Av. Vallarta 3000 Int. 4", ("Av. Vallarta", "3000", "4")),
        ("Calle Interior 5", ("Calle Interior", "5", None)),
        ("Reforma", ("Reforma", "S/N", None)),
    ],
)
def test_given_street_line_when_split_and_joined_then_the_line_comes_back(
    line: str, parts: tuple[str, str, str | None]
) -> None:
    assert mexico.split_street(line) == parts
    assert mexico.join_street(*parts) == (line if parts[1] != "S/N" else f"{line} S/N")


# -- round trips: how each field comes back -------------------------------------------------------


def test_given_entries_without_a_round_trip_when_table_built_then_every_field_is_exact() -> None:
    assert Field("email").round_trip == "exact"
    assert TABLE.lossy == {}


def test_given_lossy_entries_when_table_built_then_lossy_names_only_them_once_per_field() -> None:
    table = FieldTable(
        same("name"),
        Field("kind", decode=cv.constant("company"), round_trip="constant"),
        Field("address_line1", "street", "street", round_trip="derived"),
        Field("address_line1", write="number", decode=None),  # one entry of a field saying it is enough
        same("address_line2", kept=False),
        same("company_name", round_trip="folded"),
    )

    assert table.lossy == {"address_line1": "derived", "company_name": "folded", "kind": "constant"}
    assert list(table.lossy) == sorted(table.lossy)


@pytest.mark.parametrize(
    "entries",
    [
        (same("city", round_trip="derived"), Field("city", write="municipality", decode=None, round_trip="folded")),
        (Field(IDENTITY, write="ref", round_trip="derived"),),
        (Field("active", "status", decode=cv.active_unless("gone"), round_trip="constant"),),
    ],
    ids=["two_round_trips_for_one_field", "identity", "active"],
)
def test_given_contradicting_or_fieldless_round_trips_when_table_built_then_refused(entries: tuple[Field, ...]) -> None:
    with pytest.raises(ValueError, match="round trip"):
        FieldTable(*entries)


def test_given_spec_when_asked_exact_then_kept_kind_and_name_minus_lossy() -> None:
    spec = TargetSpec(
        fields=frozenset({"email", "address_line1"}), lossy={"kind": "constant", "address_line1": "folded"}
    )

    assert spec.exact == frozenset({"email", "name"})
    assert spec.flows_out == frozenset({"email", "name"})  # neither folded nor constant values flow
    derived = TargetSpec(fields=frozenset({"city"}), lossy={"city": "derived"})
    assert (derived.exact, derived.flows_out) == (frozenset({"kind", "name"}), frozenset({"city", "kind", "name"}))
    assert TargetSpec(fields=frozenset({"email"})).lossy == {}
    assert TargetSpec(fields=frozenset({"email"})).exact == frozenset({"email", "kind", "name"})


@pytest.mark.parametrize(
    ("lossy", "message"),
    [
        ({"city": "derived"}, "does not keep"),
        ({"email": "rounded"}, "unknown round trips"),
        ({"email": "exact"}, "unknown round trips"),
    ],
)
def test_given_spec_with_a_lossy_field_it_does_not_keep_or_an_unknown_round_trip_then_refused(
    lossy: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TargetSpec(fields=frozenset({"email"}), lossy=lossy)


#: What each system declares (docs/fidelity.md, "Per pair: what round-trips exactly").
DECLARED = {
    "bigcapital": {},
    "thredfi": {"company_name": "folded"},
    "piriod": {
        "address_line1": "folded",
        "country": "derived",
        "currency": "derived",
        "kind": "constant",
        "state": "derived",
    },
    "timbrix": {
        "address_line1": "derived",
        "address_line2": "derived",
        "city": "derived",
        "company_name": "folded",
        "country": "derived",
        "kind": "derived",
    },
}


@pytest.mark.parametrize("system", sorted(DECLARED))
def test_given_system_connector_when_spec_read_then_lossy_is_its_field_table_s(system: str) -> None:
    connector = REGISTRY[system]
    assert connector.fields is not None

    assert connector.spec.lossy == connector.fields.lossy == DECLARED[system]
    assert connector.spec.exact == (connector.spec.fields | {"kind", "name"}) - set(DECLARED[system])


def test_given_piriod_record_of_a_person_when_read_then_kind_is_the_constant_company() -> None:
    settings = PiriodSettings(system="piriod", base_url="http://piriod.test", api_token="t", workspace="w")
    connector = PiriodConnector("billing", settings)
    person = Customer(kind="individual", name="Ana Pérez", address_line1="Av. 1", address_line2="Of. 2")

    body = connector.to_payload(person, "piriod:w:1", create=True)
    read = connector.to_canonical({"id": 1, **body})

    assert (connector.shape(person).kind, read.kind) == ("individual", "company")  # constant: whatever was written
    assert read.address_line1 == "Av. 1, Of. 2"  # folded: line 2 is in line 1


SHAPED_AGAIN = (
    Customer(name="Acme Ltd", company_name="Acme Ltd", email="ops@acme.example", address_line2="Floor 3"),
    Customer(kind="individual", name="Ana María Pérez", website="https://ana.example", notes="x" * 900),
    Customer(name="Tortillería La Esperanza", tax_id="TLE010101AB1", address_line1="Calle 5 #12", country="MX"),
)


@pytest.mark.parametrize("system", sorted(REGISTRY))
@pytest.mark.parametrize("customer", SHAPED_AGAIN, ids=["company", "person", "mexican"])
def test_given_a_shaped_customer_when_shaped_again_then_it_is_the_same_record_not_a_copy(
    system: str, customer: Customer
) -> None:
    from tests.conftest import make_config
    from worker.runner import build_connector

    config = make_config("sqlite://")
    connector = build_connector(config, next(n for n, c in config.connections.items() if c.system == system))
    for truncate in (False, True):
        shaped = connector.shape(customer, truncate=truncate)

        again = connector.shape(shaped, truncate=truncate)

        assert again == shaped
        assert again is shaped, f"{system}: shaping a shaped customer copied it"
