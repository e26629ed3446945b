"""Timbrix: Mexican CFDI 4.0 e-invoicing (connector-apis.md, section 4).

Timbrix writes a flat ``address*`` body and reads a nested ``address``
object. The canonical address maps by Mexican practice (section 5):

- ``address_line1`` "Av. Vallarta 3000 Int. 4" is street "Av. Vallarta",
  exterior "3000" (the last word when it holds a digit, else "S/N") and
  interior "4" (only after an exterior and "Int."/"Interior"); a read joins
  them back the same way, so a line without a number reads back ending "S/N";
- ``address_line2`` "Col. Juárez" is the colonia "Juárez" (a leading
  "Col."/"Colonia" is dropped on write and always added on read);
- ``city`` is written as both city and municipality (the municipality is the
  city outside Mexico City); an edited municipality is overwritten on update;
- the country is alpha-3 on the wire; Timbrix files a customer without one
  under Mexico.

``kind`` follows the RFC's length (12 company, 13 individual) and the legal
name is the company name of a company. ``shape`` applies all of this, so a
round trip is stable. There are no name parts, mobile, website, currency,
notes, archive state or identity slot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

import httpx
from pydantic import SecretStr, field_validator, model_validator
from typing_extensions import override

from connectors.auth import HeaderAuth
from connectors.base import ConnectionSettings, Connector, FieldMappingError, Listing, TargetSpec
from connectors.mapping import country_alpha2, country_alpha3
from connectors.model import Customer, Kind, clean
from connectors.pagination import SinglePagePaginator

#: SAT's RFC: 3 letters (company) or 4 (person), a yymmdd date, a 3-character homoclave.
RFC_PATTERN = r"[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}"
# "Int. 4" counts as an interior only after an exterior: "Calle Interior 5" is a street.
_INTERIOR = re.compile(r"(?P<rest>.+?\s+(?:\S*\d\S*|S/N))\s+(?:Int\.?|Interior)\s*(?P<int>\S+)", re.I)
_KINDS: dict[int, Kind] = {12: "company", 13: "individual"}
_COLONIA = re.compile(r"^(?:colonia|col\.?)(?:\s+|(?<=\.))", re.I)  # not "Colima"


class TimbrixSettings(ConnectionSettings):
    """A Timbrix organization, reached with an API key or a bearer token."""

    system: Literal["timbrix"]
    api_key: SecretStr | None = None
    token: SecretStr | None = None
    organization_id: str

    @field_validator("api_key", "token", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        return value or None  # an unset ${VARIABLE} must not count as a credential

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if (self.api_key is None) == (self.token is None):
            raise ValueError("timbrix needs exactly one of api_key (X-API-Key) or token (bearer)")
        return self


class TimbrixConnector(Connector[TimbrixSettings]):
    """Customers of one Timbrix organization."""

    system = "timbrix"
    settings_model = TimbrixSettings
    # fmt: off
    spec = TargetSpec(
        fields=frozenset({"name", "company_name", "email", "phone", "address_line1",
                          "address_line2", "city", "state", "postal_code", "country", "tax_id",
                          "tax_system", "invoice_use"}),
        required=frozenset({"name", "tax_id", "tax_system", "invoice_use", "email",
                            "address_line1", "address_line2", "city", "state", "postal_code"}),
        formats={
            "postal_code": (r"[0-9]{5}", "a 5-digit postal code"),
            "tax_id": (RFC_PATTERN, "an RFC of 12 or 13 characters"),
            "tax_system": (r"[0-9]{3}", "a 3-digit SAT régimen fiscal code"),
        },
        # Not documented: the emulator's strict reading (CFDI 4.0's Nombre: 254; other text: 255).
        # The street line and the colonia lose a prefix or a number on the way, never gain one.
        limits={"name": 254, "email": 255, "phone": 255, "address_line1": 255, "address_line2": 255,
                "city": 255, "state": 255},
        checks={"email": "email"},  # class-validator's @IsEmail()
        identity_slot=False,
        archive=False,  # delete only: the base's set_active raises NotSupportedError
    )
    vendor_fields: ClassVar[Mapping[str, str]] = {
        "legalName": "name", "taxId": "tax_id", "taxSystem": "tax_system",
        "defaultInvoiceUse": "invoice_use", "addressStreet": "address_line1",
        "addressExterior": "address_line1", "addressInterior": "address_line1",
        "addressNeighborhood": "address_line2", "addressCity": "city",
        "addressMunicipality": "city", "addressZip": "postal_code", "addressState": "state",
        "addressCountry": "country",
    }
    # fmt: on
    paginator = SinglePagePaginator()  # one bare array of every customer
    update_method = "PUT"  # only the fields sent change

    create_path = "/organizations/{organization_id}/customers"
    item_path = "/organizations/{organization_id}/customers/{id}"

    @override
    def path_params(self) -> Mapping[str, str]:
        return {"organization_id": self.settings.organization_id}

    @property
    def tenant(self) -> str:
        """The organization id."""
        return self.settings.organization_id

    def auth(self) -> httpx.Auth:
        """``X-API-Key``, or a bearer token when one is configured instead."""
        if self.settings.token is not None:
            return HeaderAuth({"Authorization": f"Bearer {self.settings.token.get_secret_value()}"})
        assert self.settings.api_key is not None  # the settings validator guarantees one
        return HeaderAuth({"X-API-Key": self.settings.api_key.get_secret_value()})

    def listings(self) -> Sequence[Listing]:
        """The one listing: no paging, filters or sorting."""
        return [Listing(self.collection)]

    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        """Map a Timbrix customer (nested ``address``, alpha-3 country)."""
        address = raw.get("address") or {}
        if not isinstance(address, Mapping):
            raise FieldMappingError("address_line1", "the timbrix address is not an object")
        name, tax_id = clean(raw.get("legalName"), "name"), clean(raw.get("taxId"), "tax_id")
        if name is None:
            raise FieldMappingError("name", "the timbrix record has no legalName")
        kind = _kind(tax_id) or "company"
        street, colonia = clean(address.get("street")), clean(address.get("neighborhood"))
        exterior, interior = clean(address.get("exterior")), clean(address.get("interior"))
        return Customer(
            kind=kind,
            name=name,
            company_name=name if kind == "company" else None,
            email=clean(raw.get("email"), "email"),
            phone=clean(raw.get("phone"), "phone"),
            address_line1=_join_street(street, exterior, interior) if street else None,
            address_line2=f"Col. {colonia}" if colonia else None,
            city=clean(address.get("city"), "city"),
            state=clean(address.get("state"), "state"),
            postal_code=clean(address.get("zip"), "postal_code"),
            country=country_alpha2(address.get("country"), system=self.system) or "MX",
            tax_id=tax_id,
            tax_system=clean(raw.get("taxSystem"), "tax_system"),
            invoice_use=clean(raw.get("defaultInvoiceUse"), "invoice_use"),
        )

    @override
    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        """Apply the address conventions, the RFC's kind and the default country."""
        shaped = super().shape(customer, truncate=truncate)
        kind = _kind(shaped.tax_id) or shaped.kind
        line1, line2 = shaped.address_line1, shaped.address_line2
        changes = {
            "kind": kind,
            "company_name": shaped.name if kind == "company" else None,
            "address_line1": _join_street(*_split_street(line1)) if line1 else None,
            "address_line2": f"Col. {_colonia(line2)}" if _colonia(line2) else None,
            "country": shaped.country or "MX",
        }
        return shaped.model_copy(update=changes)

    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        """The flat write body; an update sends nulls only to clear optional fields."""
        shaped = self.shape(customer)
        line1 = shaped.address_line1
        street, exterior, interior = _split_street(line1) if line1 else (None, None, None)
        body = {
            "legalName": shaped.name,
            "taxId": shaped.tax_id,
            "taxSystem": shaped.tax_system,
            "email": shaped.email,
            "defaultInvoiceUse": shaped.invoice_use,
            "phone": shaped.phone,
            "addressStreet": street,
            "addressExterior": exterior,
            "addressInterior": interior,
            "addressNeighborhood": _colonia(shaped.address_line2),
            "addressCity": shaped.city,
            "addressMunicipality": shaped.city,
            "addressZip": shaped.postal_code,
            "addressState": shaped.state,
            "addressCountry": country_alpha3(shaped.country) if shaped.country else None,
        }
        clearable = () if create else ("phone", "addressInterior")
        return {k: v for k, v in body.items() if v is not None or k in clearable}

    @override
    def parse_error(self, response: httpx.Response) -> list[tuple[str | None, str]]:
        """Name the field a plain-string message mentions ("... this taxId already exists")."""
        named = [(f, re.compile(rf"\b{f}\b")) for f in self.vendor_fields]
        return [
            (field or next((f for f, word in named if word.search(text)), None), text)
            for field, text in super().parse_error(response)
        ]


def _kind(tax_id: str | None) -> Kind | None:
    """12 characters: a company's RFC; 13: a person's; otherwise unknown."""
    return _KINDS.get(len(tax_id or ""))


def _split_street(line: str) -> tuple[str, str, str | None]:
    """(street, exterior, interior) of "Av. Vallarta 3000 Int. 4"."""
    line, interior = " ".join(line.split()), None
    if found := _INTERIOR.fullmatch(line):
        line, interior = found["rest"], found["int"]
    street, _, last = line.rpartition(" ")
    if street and (last.upper() == "S/N" or any(c.isdigit() for c in last)):
        return street, last, interior
    return line, "S/N", interior  # sin número


def _join_street(street: str | None, exterior: str | None, interior: str | None) -> str:
    parts = [street, exterior or "S/N", f"Int. {interior}" if interior else None]
    return " ".join(p for p in parts if p)


def _colonia(line: str | None) -> str | None:
    return clean(_COLONIA.sub("", " ".join(line.split()))) if line else None


__all__ = ["RFC_PATTERN", "TimbrixConnector", "TimbrixSettings"]
