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
from typing import Literal, Self

from pydantic import SecretStr, field_validator, model_validator
from typing_extensions import override

from connectors import converters as cv
from connectors import mexico as mx
from connectors.auth import HeaderAuth
from connectors.base import Connector, TargetSpec
from connectors.fields import Field, FieldTable, same
from connectors.http import Auth, Response
from connectors.model import Customer
from connectors.pagination import SinglePagePaginator
from connectors.settings import ConnectionSettings

#: SAT's RFC: 3 letters (company) or 4 (person), a yymmdd date, a 3-character homoclave.
RFC_PATTERN = r"[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}"
# Writes send a flat ``address*`` body; reads get a nested ``address`` object. An update
# sends nulls only to clear optional fields (phone, the interior number).
# fmt: off
FIELDS = FieldTable(
    # The street line is rendered from street, exterior and interior number ("Camino Real" → "Camino Real S/N").
    Field("address_line1", "address.street", "addressStreet", mx.street_line, mx.street_part(0), round_trip="derived"),
    Field("address_line1", write="addressExterior", decode=None, encode=mx.street_part(1)),
    Field("address_line1", write="addressInterior", decode=None, encode=mx.street_part(2), clears=True),
    Field("name", "legalName", "legalName", mx.legal_name),
    Field("tax_id", "taxId", "taxId"),
    Field("kind", decode=mx.kind_by_rfc, round_trip="derived"),  # the RFC's length says it
    # The legal name is the company name of a company: nothing of its own.
    Field("company_name", decode=mx.name_of_company, round_trip="folded"),
    same("email"), same("phone", clears=True),
    Field("address_line2", "address.neighborhood", "addressNeighborhood", mx.colonia_line, mx.to_colonia,
          round_trip="derived"),  # the colonia, read back as "Col. …"
    # Written as the municipality too: a municipality of its own is rendered from the city on every write.
    Field("city", "address.city", "addressCity", round_trip="derived"),
    Field("city", write="addressMunicipality", decode=None),  # the municipality is the city outside CDMX
    Field("state", "address.state", "addressState"),
    Field("postal_code", "address.zip", "addressZip"),
    # None is Mexico (shape, and Timbrix itself).
    Field("country", "address.country", "addressCountry", cv.alpha2_or("MX"), cv.to_alpha3, round_trip="derived"),
    Field("tax_system", "taxSystem", "taxSystem"),
    Field("invoice_use", "defaultInvoiceUse", "defaultInvoiceUse"),
    clears=False,
)
# fmt: on


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
    fields = FIELDS
    spec = TargetSpec(
        fields=FIELDS.kept,
        lossy=FIELDS.lossy,
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
    # fmt: on
    paginator = SinglePagePaginator()  # one bare array of every customer
    update_method = "PUT"  # only the fields sent change

    create_path = "/organizations/{organization_id}/customers"
    item_path = "/organizations/{organization_id}/customers/{id}"

    @property
    def tenant(self) -> str:
        """The organization id."""
        return self.settings.organization_id

    def auth(self) -> Auth:
        """``X-API-Key``, or a bearer token when one is configured instead."""
        if self.settings.token is not None:
            return HeaderAuth({"Authorization": f"Bearer {self.settings.token.get_secret_value()}"})
        assert self.settings.api_key is not None  # the settings validator guarantees one
        return HeaderAuth({"X-API-Key": self.settings.api_key.get_secret_value()})

    @override
    def shape(self, customer: Customer, *, truncate: bool = False) -> Customer:
        """Apply the address conventions, the RFC's kind and the default country."""
        return mx.mexican_address(super().shape(customer, truncate=truncate))

    @override
    def parse_error(self, response: Response) -> list[tuple[str | None, str]]:
        """Name the field a plain-string message mentions ("... this taxId already exists")."""
        named = [(f, re.compile(rf"\b{f}\b")) for f in self.vendor_fields]
        return [
            (field or next((f for f, word in named if word.search(text)), None), text)
            for field, text in super().parse_error(response)
        ]


__all__ = ["RFC_PATTERN", "TimbrixConnector", "TimbrixSettings"]
